"""Index jobs of the REST API as rows of the dataset (``lookalike_jobs``), so that a restarted server knows them.

A row holds the job's id, its status and its whole record as JSON (sources, table, counts, report, error). The
server only reads the file; the rows are written by the job's own process and, for the states the server
decides (queued, cancelled), by a short child process (:mod:`lookalike.server.job_store`), because DuckDB does
not let one process write a file next to its own read-only connections.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from lookalike.dataset.schema import current_version


def save(con: duckdb.DuckDBPyConnection, record: dict[str, Any]) -> None:
    """Insert or replace the row of the job ``record`` (a dict with at least ``id`` and ``status``)."""
    con.execute(
        """INSERT INTO lookalike_jobs (id, status, record) VALUES (?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record,
           updated_at = now()""",
        [str(record["id"]), str(record["status"]), json.dumps(record)],
    )


def load_all(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every stored job record, oldest first (none in a file older than schema version 5)."""
    if current_version(con) < 5:
        return []
    rows = con.execute("SELECT record FROM lookalike_jobs ORDER BY created_at, id").fetchall()
    return [json.loads(r[0]) for r in rows]
