"""Persons in SQL: ``lookalike_people`` and ``lookalike_person_faces``, read-only views of :mod:`lookalike.people`.

The face tables that ``lookalike index`` fills are DuckDB tables of the ``main`` dataset (``faces_<table>``), so
the people views sit beside them, in ``main``: ``lookalike_people`` (or ``main.lookalike_people``).

- ``lookalike_people``: one row per person of every face table: ``table_name`` (the Lookalike table, as
  ``lookalike people --table`` takes it; its SQL table is ``faces_<table_name>``), ``person_id``, ``name``,
  ``hidden``, ``confirmed``, ``faces``, ``photos``, ``feature_face_id``.
- ``lookalike_person_faces``: one row per face in a person: ``table_name``, ``face_id``, ``person_id``,
  ``manual`` (a user put it there). Face and person ids are unique across tables, so
  ``JOIN lookalike_person_faces USING (face_id)`` and ``JOIN lookalike_people USING (person_id)`` need no
  ``table_name``.

Like BigQuery's ``INFORMATION_SCHEMA`` views (:mod:`lookalike.sql.catalog_views`), a reference is replaced by the
view's rows (a temporary Arrow table) before DuckDB runs the statement, and the rows come from the same functions
the CLI and the REST API read persons with (:mod:`lookalike.people.store`). Faces of a person that were deleted
from their table are left out, as ``lookalike people`` leaves them out.

People are changed with the people commands (``lookalike people name|merge|move|hide|forget``, ``ds.people``),
which keep every manual decision: writing to these views, or to the people tables behind them, is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa
from sqlglot import exp

from lookalike.dataset import store as dstore
from lookalike.people import store as pstore
from lookalike.sql.context import Context
from lookalike.sql.names import MAIN, Name, name_of, relations

PEOPLE = "lookalike_people"
PERSON_FACES = "lookalike_person_faces"

SCHEMAS: dict[str, pa.Schema] = {
    PEOPLE: pa.schema(
        [
            ("table_name", pa.string()),
            ("person_id", pa.int64()),
            ("name", pa.string()),
            ("hidden", pa.bool_()),
            ("confirmed", pa.bool_()),
            ("faces", pa.int64()),
            ("photos", pa.int64()),
            ("feature_face_id", pa.int64()),
        ]
    ),
    PERSON_FACES: pa.schema(
        [("table_name", pa.string()), ("face_id", pa.int64()), ("person_id", pa.int64()), ("manual", pa.bool_())]
    ),
}

#: The people tables of the catalog (schema version 6): readable from SQL, never written from it.
STORED = (
    "lookalike_persons",
    "lookalike_person_faces",
    "lookalike_person_cannot_link",
    "lookalike_people_forgotten",
    "lookalike_people_log",
)

_READ_ONLY = frozenset((*SCHEMAS, *STORED))


def _tables(con: duckdb.DuckDBPyConnection) -> list[dstore.TableInfo]:
    return [info for name in dstore.table_names(con) if (info := dstore.find_table(con, name)) is not None]


def people_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The rows of ``lookalike_people``: every person of every face table."""
    rows = [
        {"table_name": info.name, **{k: v for k, v in p.to_dict().items() if k in SCHEMAS[PEOPLE].names}}
        for info in _tables(con)
        for p in pstore.persons(con, info)
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMAS[PEOPLE])


def person_face_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The rows of ``lookalike_person_faces``: every face of every face table that is in a person."""
    parts = []
    for info in _tables(con):
        a = pstore.assignments(con, info)
        parts.append(
            pa.table(
                {
                    "table_name": pa.array([info.name] * len(a.face_id), pa.string()),
                    "face_id": pa.array(a.face_id, pa.int64()),
                    "person_id": pa.array(a.person_id, pa.int64()),
                    "manual": pa.array(a.manual, pa.bool_()),
                },
                schema=SCHEMAS[PERSON_FACES],
            )
        )
    return pa.concat_tables(parts) if parts else SCHEMAS[PERSON_FACES].empty_table()


ROWS: dict[str, Callable[[duckdb.DuckDBPyConnection], pa.Table]] = {PEOPLE: people_rows, PERSON_FACES: person_face_rows}


def _is_people_name(name: Name) -> bool:
    return name.schema.lower() == MAIN and name.name.lower() in _READ_ONLY


def _written(tree: exp.Expr) -> list[exp.Table]:
    """The tables a statement writes, creates, alters or drops (not those it only reads)."""
    if isinstance(tree, (exp.Create, exp.Drop)) and str(tree.args.get("kind") or "").upper() == "SCHEMA":
        return []
    if not isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
                             exp.TruncateTable)):  # fmt: skip
        return []
    keys = ("this", "tables", "expressions") if isinstance(tree, exp.TruncateTable) else ("this", "tables")
    out: list[exp.Table] = []
    for key in keys:
        value = tree.args.get(key)
        for node in value if isinstance(value, list) else [value]:
            if isinstance(node, exp.Schema):
                node = node.this
            if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
                out.append(node)
    return out


def check_writable(ctx: Context, table: exp.Table) -> None:
    """Refuse a statement that would write ``table`` when it is one of the people views or tables."""
    name = name_of(table)
    if not _is_people_name(name):
        return
    raise ctx.error(
        f"{name.name} is read-only: people are changed with the people commands, which keep every manual decision",
        at=table,
        hint="lookalike people name|merge|move|hide|feature|forget (ds.people in Python); "
        "CREATE TABLE mine AS SELECT * FROM lookalike_people makes a copy you can change",
    )


def refuse_writes(ctx: Context, tree: exp.Expr) -> None:
    """Raise a :class:`SqlError` for ``INSERT``/``UPDATE``/``DELETE``/``MERGE``/DDL on the people views or tables,
    and for a view that would hold ``lookalike_people`` (its rows are computed when a statement runs)."""
    for table in _written(tree):
        check_writable(ctx, table)
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "VIEW":
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            name = name_of(table)
            if table is tree.this or (table.args.get("db") is None and name.name.lower() in ctes):
                continue
            if name.schema.lower() == MAIN and name.name.lower() in SCHEMAS:
                raise ctx.error(
                    f"a view cannot hold {name.name}: its rows are computed when a statement runs",
                    at=table,
                    hint="query it directly, or store its rows with CREATE TABLE ... AS SELECT",
                )


def replace_people(ctx: Context, tree: exp.Expr) -> None:
    """Swap every reference to ``lookalike_people`` and ``lookalike_person_faces`` in ``tree`` for the view's rows.

    An unqualified name that is a CTE of the statement stays the CTE. A name qualified with another dataset
    (``face_search.lookalike_people``) is a table of that dataset when there is one; otherwise it is an error
    that says where the views are.
    """
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    aliases = {a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name}
    registered: dict[str, str] = {}
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier) or table.name.lower() not in SCHEMAS:
            continue
        view = table.name.lower()
        name = name_of(table)
        has_db = table.args.get("db") is not None
        if not has_db and view in ctes:
            continue
        if has_db and name.schema.lower() != MAIN:
            if name.schema.lower() in aliases | ctes or name.key in relations(ctx.con, internal=True):
                continue  # a path through an alias, or the user's own table of that name
            raise ctx.error(
                f"table {name.display} was not found: {view} is in the main dataset, beside the face tables",
                at=table,
                hint=f"write {view} (or main.{view})",
            )
        if view not in registered:
            registered[view] = ctx.register(ROWS[view](ctx.con))
        alias = table.args.get("alias")
        table.set("this", exp.to_identifier(registered[view]))
        table.set("db", None)
        table.set("catalog", None)
        if alias is None:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(view)))
