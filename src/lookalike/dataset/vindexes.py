"""The catalog rows of vector indexes (``lookalike_sql_vector_indexes``): read, write, delete.

One row per index, keyed by the table's ``schema.name`` key (lower case) and the index name. A face table made
by ``lookalike index`` is the relation ``main.faces_<table>``, so an index made by the CLI and one made by
``CREATE VECTOR INDEX ... ON faces_<table>(embedding)`` are the same row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import duckdb

from lookalike.dataset.schema import current_version
from lookalike.search.vindex.spec import IndexSpec, parse_index_options


@dataclass(frozen=True, slots=True)
class IndexRecord:
    table_key: str
    name: str  # as the user spelled it
    column: str
    spec: IndexSpec
    storing: tuple[str, ...] = ()
    id_column: str | None = None  # None: rows are named by a hash of their vector
    build: dict[str, Any] | None = None  # files, checksums, lists, rows...; None before the first build
    status: str = "ACTIVE"
    created_at: datetime | None = None
    last_refresh_time: datetime | None = None

    @property
    def key(self) -> str:
        return self.name.lower()

    def with_build(self, build: dict[str, Any] | None) -> IndexRecord:
        return replace(self, build=build)


_SELECT = """SELECT tbl, display_name, column_name, storing, index_type, distance_type, options, spec, id_column,
    build, status, created_at, last_refresh_time FROM lookalike_sql_vector_indexes"""


def _record(row: tuple[Any, ...]) -> IndexRecord:
    if row[7]:
        spec = IndexSpec.from_json(row[7])
    else:  # defined before version 4: rebuild the spec from the stored options
        options: dict[str, Any] = {"index_type": row[4], "distance_type": row[5]}
        details = json.loads(row[6]) if row[6] else {}
        if details:
            options["ivf_options" if row[4] == "IVF" else "tree_ah_options"] = details
        spec = parse_index_options(options)
    return IndexRecord(
        table_key=str(row[0]),
        name=str(row[1]),
        column=str(row[2]),
        spec=spec,
        storing=tuple(row[3] or ()),
        id_column=row[8],
        build=json.loads(row[9]) if row[9] else None,
        status=str(row[10] or "ACTIVE"),
        created_at=row[11],
        last_refresh_time=row[12],
    )


def _built_indexes(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has schema version 4 (a reader may see an older file that another process holds)."""
    return current_version(con) >= 4


def list_indexes(con: duckdb.DuckDBPyConnection, table_key: str | None = None) -> list[IndexRecord]:
    if not _built_indexes(con):
        return []
    if table_key is None:
        rows = con.execute(_SELECT + " ORDER BY tbl, name").fetchall()
    else:
        rows = con.execute(_SELECT + " WHERE tbl = ? ORDER BY name", [table_key]).fetchall()
    return [_record(r) for r in rows]


def find(con: duckdb.DuckDBPyConnection, table_key: str, name: str) -> IndexRecord | None:
    if not _built_indexes(con):
        return None
    rows = con.execute(_SELECT + " WHERE tbl = ? AND name = ?", [table_key, name.lower()]).fetchall()
    return _record(rows[0]) if rows else None


def on_column(con: duckdb.DuckDBPyConnection, table_key: str, column: str) -> IndexRecord | None:
    if not _built_indexes(con):
        return None
    rows = con.execute(_SELECT + " WHERE tbl = ? AND lower(column_name) = lower(?)", [table_key, column]).fetchall()
    return _record(rows[0]) if rows else None


def save(con: duckdb.DuckDBPyConnection, rec: IndexRecord) -> None:
    """Insert or replace the row of ``rec`` (its build and refresh time included)."""
    details: dict[str, Any] = {}
    if rec.spec.num_lists is not None:
        details["num_lists"] = rec.spec.num_lists
    if rec.spec.leaf_node_embedding_count is not None:
        details["leaf_node_embedding_count"] = rec.spec.leaf_node_embedding_count
    con.execute("DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ? AND name = ?", [rec.table_key, rec.key])
    con.execute(
        """INSERT INTO lookalike_sql_vector_indexes
           (tbl, name, display_name, column_name, storing, index_type, distance_type, options, spec, id_column,
            build, status, created_at, last_refresh_time)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, current_timestamp), current_timestamp)""",
        [
            rec.table_key,
            rec.key,
            rec.name,
            rec.column,
            list(rec.storing),
            rec.spec.index_type,
            rec.spec.distance_type,
            json.dumps(details),
            rec.spec.to_json(),
            rec.id_column,
            json.dumps(rec.build) if rec.build is not None else None,
            rec.status,
            rec.created_at,
        ],
    )


def delete(con: duckdb.DuckDBPyConnection, table_key: str, name: str | None = None) -> None:
    """Delete one index row, or every index row of the table."""
    if name is None:
        con.execute("DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ?", [table_key])
    else:
        con.execute("DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ? AND name = ?", [table_key, name.lower()])
