"""Every statement that is not one of Lookalike's own forms: transpiled to DuckDB and run there.

``SELECT``, ``WITH``, joins, ``CREATE TABLE [AS]``, ``INSERT``, ``DELETE``, ``UPDATE``, ``DROP``,
``CREATE SCHEMA``, functions...: sqlglot translates BigQuery's dialect to DuckDB's. Before that, the
statement's object tables are refreshed if their metadata cache is stale, its table names are checked (with
a did-you-mean hint) and its table functions are computed (:mod:`lookalike.sql.rewrite`). Dropping or
replacing a table also forgets what Lookalike's catalog held about it (object table, vector indexes). Writing to
the people views or tables is refused (:mod:`lookalike.sql.people`).
"""

from __future__ import annotations

import contextlib

import duckdb
import pyarrow as pa
from sqlglot import exp

from lookalike.dataset import vindexes
from lookalike.sql import models, objects, people, vector
from lookalike.sql.context import Context, Outcome, to_duckdb
from lookalike.sql.names import name_of
from lookalike.sql.parse import ParsedStatement
from lookalike.sql.registry import TABLE_FUNCTIONS, statement
from lookalike.sql.rewrite import function_name, prepare

#: Statements that return rows (everything else returns a count or nothing).
_ROW_STATEMENTS = (exp.Query, exp.Describe, exp.Show, exp.Pragma)


@statement("query")
def run(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """Run one general statement (see the module docstring)."""
    tree = parsed.tree
    assert tree is not None
    people.refuse_writes(ctx, tree)
    early = _object_table_ddl(ctx, tree)
    if early is not None:
        return early
    objects.ensure_fresh(ctx, tree)
    _create_dataset(ctx, tree)
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "VIEW":
        call = tree.find(*TABLE_FUNCTIONS)
        if call is not None:
            raise ctx.error(
                f"a view cannot hold {function_name(call)}: it runs once, when the statement runs",
                at=call,
                hint="store its rows with CREATE TABLE ... AS SELECT instead",
            )
    prepare(ctx, tree)
    _replace_object_table(ctx, tree)
    table = _run(ctx, tree)
    _after(ctx, tree)
    if isinstance(tree, _ROW_STATEMENTS):
        assert table is not None
        table = bigquery_types(table)
        return Outcome(table, f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}")
    return Outcome(None, _message(tree, table.to_pylist() if table is not None else []))


def _bq_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type BigQuery would give: INT64 for every integer (DuckDB's INTEGER, and the HUGEINT of its
    integer sums, which arrives as DECIMAL(38, 0)), FLOAT64 for every float; nested types likewise."""
    if pa.types.is_integer(t) or (pa.types.is_decimal(t) and t.scale == 0 and t.precision == 38):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_bq_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _bq_type(f.type), f.nullable) for f in t])
    return t


def bigquery_types(table: pa.Table) -> pa.Table:
    """``table`` with BigQuery's types (see :func:`_bq_type`); a column whose values do not fit stays as it is."""
    columns = []
    for col in table.columns:
        target = _bq_type(col.type)
        if target != col.type:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                col = col.cast(target)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def _run(ctx: Context, tree: exp.Expr) -> pa.Table | None:
    """Run the (rewritten) statement on DuckDB; its rows, or ``None`` when it gives none."""
    try:
        rel = ctx.con.sql(to_duckdb(tree))
        return rel.to_arrow_table() if rel is not None else None
    except duckdb.Error as err:
        raise ctx.duckdb_error(err, tree) from None


def _create_dataset(ctx: Context, tree: exp.Expr) -> None:
    """``CREATE TABLE / VIEW dataset.name``: make the dataset (schema) first if there is none yet."""
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() in ("TABLE", "VIEW"):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table) and target.args.get("db") is not None:
            ctx.ensure_schema(name_of(target).schema)


def _object_table_ddl(ctx: Context, tree: exp.Expr) -> Outcome | None:
    """``DROP TABLE`` of object tables drops them (their view and catalog rows)."""
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind") or "").upper() in ("TABLE", "VIEW"):
        refs = list(tree.find_all(exp.Table))
        found = [objects.find(ctx, name_of(t)) for t in refs]
        if refs and all(f is not None for f in found):
            messages = [objects.drop(ctx, f).message for f in found if f is not None]
            return Outcome(None, "; ".join(messages))
    return None


def _replace_object_table(ctx: Context, tree: exp.Expr) -> None:
    """``CREATE OR REPLACE TABLE`` over an object table: drop the object table (its view) first."""
    if isinstance(tree, exp.Create) and tree.args.get("replace"):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            table = objects.find(ctx, name_of(target))
            if table is not None:
                objects.drop(ctx, table)


def _after(ctx: Context, tree: exp.Expr) -> None:
    """Keep Lookalike's catalog in step with a DROP or CREATE OR REPLACE that succeeded."""
    kind = str(tree.args.get("kind") or "").upper()
    if isinstance(tree, exp.Drop) and kind == "SCHEMA":
        for ref in tree.find_all(exp.Table):
            schema = ref.args.get("db") or ref.this
            schema_name = schema.name if isinstance(schema, exp.Expr) else str(schema)
            objects.forget_schema(ctx, schema_name)
            models.forget_schema(ctx, schema_name)
            for key in {r.table_key for r in vindexes.list_indexes(ctx.con)}:
                if key.startswith(schema_name.lower() + "."):
                    vector.forget_table(ctx, key)
    elif isinstance(tree, exp.Drop) and kind in ("TABLE", "VIEW"):
        for ref in tree.find_all(exp.Table):
            vector.forget_table(ctx, name_of(ref).key)
    elif isinstance(tree, (exp.Insert, exp.Delete, exp.Update, exp.Merge)):
        target = tree.this if isinstance(tree, (exp.Insert, exp.Merge)) else tree.find(exp.Table)
        if isinstance(target, exp.Schema):
            target = target.this
        if isinstance(target, exp.Table) and isinstance(target.this, exp.Identifier):
            vector.refresh_table(ctx, name_of(target))
    elif isinstance(tree, exp.Create) and tree.args.get("replace") and kind == "TABLE":
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            vector.forget_table(ctx, name_of(target).key)


def _message(tree: exp.Expr, rows: list[dict[str, object]]) -> str:
    """A one-line account of a statement without rows: what it did, and how many rows it touched."""
    count = rows[0].get("Count") if rows and "Count" in rows[0] else None
    if isinstance(tree, (exp.Create, exp.Drop)):
        kind = str(tree.args.get("kind") or "").lower()
        target = tree.this if isinstance(tree, exp.Create) else tree.find(exp.Table)
        if isinstance(target, exp.Schema):
            target = target.this
        if isinstance(target, exp.Table):
            shown = name_of(target).display if target.name else str(target.args.get("db") or "")
        else:
            shown = ""
        if isinstance(tree, exp.Create):
            verb = "created or replaced" if tree.args.get("replace") else "created"
        else:
            verb = "dropped"
        text = f"{verb} {kind} {shown}".strip()
        return (
            f"{text} ({count} rows)" if count is not None and kind == "table" and isinstance(tree, exp.Create) else text
        )
    verbs = {exp.Insert: "inserted", exp.Delete: "deleted", exp.Update: "updated", exp.Merge: "merged"}
    for cls, verb in verbs.items():
        if isinstance(tree, cls):
            return f"{verb} {count if count is not None else 0} rows"
    return "done"
