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
