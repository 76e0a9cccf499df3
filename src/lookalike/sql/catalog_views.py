"""BigQuery's ``INFORMATION_SCHEMA`` views, computed from Lookalike's catalog.

``[dataset.]INFORMATION_SCHEMA.VIEW`` in a query is replaced by the view's rows (a temporary Arrow table)
before DuckDB runs it. Register a view with ``@view("NAME")``: a function of the context and the dataset
(schema) named before ``INFORMATION_SCHEMA``, or ``None`` for every dataset. A view that is not registered is
refused with the list of those that are: DuckDB's own ``information_schema`` has other columns and rows, and
would be a silently different answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pyarrow as pa
from sqlglot import exp

from lookalike.errors import SqlNotSupported
from lookalike.sql.context import Context

ViewFunction = Callable[[Context, str | None], pa.Table]
VIEWS: dict[str, ViewFunction] = {}


def view(name: str) -> Callable[[ViewFunction], ViewFunction]:
    def deco(fn: ViewFunction) -> ViewFunction:
        VIEWS[name.upper()] = fn
        return fn

    return deco


def _path(table: exp.Table) -> list[str]:
    parts: list[str] = []
    for key in ("catalog", "db", "this"):
        node = table.args.get(key)
        if isinstance(node, exp.Identifier):
            parts.extend(node.name.split("."))
    return parts


def replace_views(ctx: Context, tree: exp.Expr) -> None:
    """Swap every ``INFORMATION_SCHEMA`` reference in ``tree`` for the view's rows."""
    for table in list(tree.find_all(exp.Table)):
        parts = _path(table)
        upper = [p.upper() for p in parts]
        if "INFORMATION_SCHEMA" not in upper:
            continue
        at = upper.index("INFORMATION_SCHEMA")
        name = upper[at + 1] if at + 1 < len(upper) else ""
        fn = VIEWS.get(name)
        if fn is None:
            raise ctx.error(
                f"INFORMATION_SCHEMA.{name or '?'} is not supported",
                at=table,
                hint="supported views: " + ", ".join(f"INFORMATION_SCHEMA.{v}" for v in sorted(VIEWS)),
                cls=SqlNotSupported,
            )
        schema = parts[at - 1] if at >= 1 else None
        registered = ctx.register(fn(ctx, schema))
        alias = table.args.get("alias")
        table.set("this", exp.to_identifier(registered))
        table.set("db", None)
        table.set("catalog", None)
        if alias is None:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(name.lower())))


_VECTOR_INDEXES = pa.schema(
    [
        ("table_catalog", pa.string()),
        ("table_schema", pa.string()),
        ("table_name", pa.string()),
        ("index_name", pa.string()),
        ("index_status", pa.string()),
        ("creation_time", pa.timestamp("us", tz="UTC")),
        ("last_modification_time", pa.timestamp("us", tz="UTC")),
        ("last_refresh_time", pa.timestamp("us", tz="UTC")),
        ("disable_time", pa.timestamp("us", tz="UTC")),
        ("disable_reason", pa.string()),
        ("ddl", pa.string()),
        ("coverage_percentage", pa.int64()),
        ("unindexed_row_count", pa.int64()),
        ("total_logical_bytes", pa.int64()),
        ("total_storage_bytes", pa.int64()),
        ("index_type", pa.string()),
        ("distance_type", pa.string()),
        ("num_lists", pa.int64()),
        ("drift", pa.float64()),
        ("rebuild_suggested", pa.bool_()),
    ]
)


def _ts(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


@view("VECTOR_INDEXES")
def vector_indexes(ctx: Context, schema: str | None) -> pa.Table:
    """One row per vector index, with BigQuery's columns (and the index type, lists and drift)."""
    from lookalike.sql.vector import describe_indexes

    rows = []
    for d in describe_indexes(ctx, schema):
        rows.append(
            {
                "table_catalog": d["table_catalog"],
                "table_schema": d["table_schema"],
                "table_name": d["table_name"],
                "index_name": d["index_name"],
                "index_status": d["index_status"],
                "creation_time": _ts(d["creation_time"]),
                "last_modification_time": _ts(d["last_refresh_time"]),
                "last_refresh_time": _ts(d["last_refresh_time"]),
                "disable_time": None,
                "disable_reason": d["error"],
                "ddl": d["ddl"],
                "coverage_percentage": int(d["coverage_percentage"]),
                "unindexed_row_count": int(d["unindexed_row_count"]),
                "total_logical_bytes": int(d["total_storage_bytes"]),
                "total_storage_bytes": int(d["total_storage_bytes"]),
                "index_type": d["index_type"],
                "distance_type": d["distance_type"],
                "num_lists": d["lists"],
                "drift": d["drift"],
                "rebuild_suggested": d["rebuild_suggested"],
            }
        )
    return pa.Table.from_pylist(rows, schema=_VECTOR_INDEXES)


# ---------------------------------------------------------------------------------------------- TABLES, COLUMNS

_HIDDEN_SCHEMAS = ("information_schema", "pg_catalog")


def bigquery_type(duck: str) -> str:
    """A DuckDB type written as BigQuery names it (``BIGINT`` -> ``INT64``, ``DOUBLE[]`` -> ``ARRAY<FLOAT64>``)."""
    t = duck.strip().upper()
    if t.endswith("[]"):
        return f"ARRAY<{bigquery_type(t[:-2])}>"
    if t.endswith("]") and "[" in t:  # fixed-size arrays: FLOAT[512]
        return f"ARRAY<{bigquery_type(t[: t.rindex('[')])}>"
    if t.startswith("STRUCT(") and t.endswith(")"):
        fields = _split(t[len("STRUCT(") : -1])
        inner = []
        for f in fields:
            name, _, kind = f.strip().partition(" ")
            inner.append(f"{name.strip(chr(34)).lower()} {bigquery_type(kind)}")
        return "STRUCT<" + ", ".join(inner) + ">"
    if t.startswith("DECIMAL"):
        return "NUMERIC"
    simple = {
        "BIGINT": "INT64", "INTEGER": "INT64", "SMALLINT": "INT64", "TINYINT": "INT64", "HUGEINT": "INT64",
        "UBIGINT": "INT64", "UINTEGER": "INT64", "USMALLINT": "INT64", "UTINYINT": "INT64",
        "DOUBLE": "FLOAT64", "FLOAT": "FLOAT64", "REAL": "FLOAT64", "VARCHAR": "STRING", "BOOLEAN": "BOOL",
        "BLOB": "BYTES", "DATE": "DATE", "TIME": "TIME", "TIMESTAMP": "DATETIME",
        "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "INTERVAL": "INTERVAL", "JSON": "JSON", "UUID": "STRING",
    }  # fmt: skip
    return simple.get(t, t)


def _split(text: str) -> list[str]:
    """Split a type's field list at top-level commas."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [p for p in out if p.strip()]


def _visible_tables(ctx: Context, schema: str | None) -> list[tuple[str, str, str]]:
    """(schema, name, BigQuery table type) of the user's tables and views, and the people views
    (:mod:`lookalike.sql.people`); Lookalike's catalog left out."""
    from lookalike.sql.names import MAIN, relations
    from lookalike.sql.people import SCHEMAS

    external = {
        str(r[0]) for r in ctx.con.execute("SELECT name FROM lookalike_sql_object_tables").fetchall()
    }  # schema.name keys
    kinds = dict(
        ((str(s).lower(), str(n).lower()), k)
        for s, n, k in ctx.con.execute(
            """SELECT schema_name, table_name, 'BASE TABLE' FROM duckdb_tables() WHERE NOT internal
               UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal"""
        ).fetchall()
    )
    out = []
    for key, name in sorted(relations(ctx.con).items()):
        if name.name.startswith("_lookalike_tf_") or name.schema.lower() in _HIDDEN_SCHEMAS:
            continue
        if schema is not None and name.schema.lower() != schema.lower():
            continue
        kind = "EXTERNAL" if key in external else kinds.get((name.schema.lower(), name.name.lower()), "BASE TABLE")
        out.append((name.schema, name.name, kind))
    if schema is None or schema.lower() == MAIN:
        out.extend((MAIN, view, "VIEW") for view in SCHEMAS)
        out.sort(key=lambda t: (t[0].lower(), t[1].lower()))
    return out


@view("SCHEMATA")
def schemata(ctx: Context, schema: str | None) -> pa.Table:
    """One row per dataset (DuckDB schema) of the file."""
    rows = ctx.con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal AND database_name = current_database() "
        "ORDER BY schema_name"
    ).fetchall()
    names = [str(r[0]) for r in rows if str(r[0]).lower() not in _HIDDEN_SCHEMAS]
    return pa.table(
        {
            "catalog_name": pa.array([ctx.catalog] * len(names), pa.string()),
            "schema_name": pa.array(names, pa.string()),
        }
    )


@view("TABLES")
def tables(ctx: Context, schema: str | None) -> pa.Table:
    """One row per table, view or object table (``table_type`` ``BASE TABLE``, ``VIEW`` or ``EXTERNAL``)."""
    found = _visible_tables(ctx, schema)
    return pa.table(
        {
            "table_catalog": pa.array([ctx.catalog] * len(found), pa.string()),
            "table_schema": pa.array([s for s, _, _ in found], pa.string()),
            "table_name": pa.array([n for _, n, _ in found], pa.string()),
            "table_type": pa.array([k for _, _, k in found], pa.string()),
            "is_insertable_into": pa.array(["YES" if k == "BASE TABLE" else "NO" for _, _, k in found], pa.string()),
        }
    )


@view("COLUMNS")
def columns(ctx: Context, schema: str | None) -> pa.Table:
    """One row per column of each table of :func:`tables`, with BigQuery's type names."""
    from lookalike.sql.names import MAIN, Name
    from lookalike.sql.people import SCHEMAS

    out: dict[str, list[object]] = {
        k: [] for k in ("table_catalog", "table_schema", "table_name", "column_name", "ordinal_position",
                        "is_nullable", "data_type")
    }  # fmt: skip
    for sch, name, _ in _visible_tables(ctx, schema):
        people_view = SCHEMAS.get(name) if sch == MAIN else None
        ref = ctx.register(people_view.empty_table()) if people_view is not None else ctx.ref(Name(sch, name))
        described = ctx.con.execute(f"DESCRIBE {ref}").fetchall()
        for pos, row in enumerate(described, start=1):
            out["table_catalog"].append(ctx.catalog)
            out["table_schema"].append(sch)
            out["table_name"].append(name)
            out["column_name"].append(str(row[0]))
            out["ordinal_position"].append(pos)
            out["is_nullable"].append("YES" if str(row[2]).upper() == "YES" else "NO")
            out["data_type"].append(bigquery_type(str(row[1])))
    return pa.table({k: pa.array(v, pa.int64() if k == "ordinal_position" else pa.string()) for k, v in out.items()})
