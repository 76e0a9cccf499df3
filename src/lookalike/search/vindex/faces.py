"""Vector indexes on face tables (the ones ``lookalike index`` fills): create, rebuild, drop, refresh, search.

A face table ``t`` is the relation ``main.faces_t``; its index covers column ``embedding`` and names rows by
``face_id``. Everything here runs on a connection the caller opened (a writer for changes) and returns plain
records; :mod:`lookalike.api` and the index job call it, and the SQL front end shares
:mod:`~lookalike.search.vindex.manage` underneath.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import duckdb
import numpy as np

from lookalike.dataset import vindexes
from lookalike.dataset.store import FaceMatrix, TableInfo
from lookalike.dataset.vindexes import IndexRecord
from lookalike.errors import InvalidArgument, LookalikeError, SearchError
from lookalike.search.diskcache import load_cached_matrix
from lookalike.search.distances import Distance
from lookalike.search.half import exact_top_k
from lookalike.search.vindex import manage
from lookalike.search.vindex.files import IndexFileError
from lookalike.search.vindex.searcher import (
    Delta,
    IndexUsage,
    delta,
    search_rows,
    sorted_unique,
    unused,
)
from lookalike.search.vindex.spec import IndexSpec, SearchKnobs

log = logging.getLogger(__name__)

COLUMN = "embedding"
ID_COLUMN = "face_id"


def table_key(info: TableInfo) -> str:
    return f"main.{info.faces_table.lower()}"


def default_name(info: TableInfo) -> str:
    return f"{info.name}_index"


def source(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo) -> manage.VectorSource:
    """The table's vectors and ids, from the matrix cache (memory-mapped for large tables, so that a build or
    refresh over ten million faces never holds them all: :mod:`lookalike.search.diskcache`)."""
    fm = load_cached_matrix(con, dataset_path, info)
    return manage.VectorSource(fm.face_id, fm.matrix)


def indexes(con: duckdb.DuckDBPyConnection, info: TableInfo) -> list[IndexRecord]:
    return vindexes.list_indexes(con, table_key(info))


def create(
    con: duckdb.DuckDBPyConnection,
    dataset_path: str,
    info: TableInfo,
    spec: IndexSpec,
    *,
    name: str | None = None,
    replace: bool = False,
    if_not_exists: bool = False,
) -> IndexRecord:
    """Build an index on the face table ``info`` and record it (one index per table)."""
    name = name or default_name(info)
    key = table_key(info)
    existing = vindexes.list_indexes(con, key)
    same = [r for r in existing if r.key == name.lower()]
    if same and if_not_exists:
        return same[0]
    if existing and not replace:
        raise InvalidArgument(
            f"table {info.name!r} already has vector index {existing[0].name}",
            hint="rebuild it (lookalike vector-index rebuild), or replace it (--replace)",
        )
    rec = IndexRecord(key, name, COLUMN, spec, id_column=ID_COLUMN)
    rec = manage.build_record(dataset_path, rec, source(con, dataset_path, info))
    for old in existing:
        if old.key != rec.key:
            manage.drop(con, dataset_path, old)
    manage.commit(con, dataset_path, rec)
    return rec


def find(con: duckdb.DuckDBPyConnection, info: TableInfo, name: str | None = None) -> IndexRecord:
    recs = indexes(con, info)
    if name is not None:
        recs = [r for r in recs if r.key == name.lower()]
    if not recs:
        raise InvalidArgument(
            f"table {info.name!r} has no vector index" + (f" {name!r}" if name else ""),
            hint=f"create one: lookalike vector-index create --table {info.name}",
        )
    return recs[0]


def rebuild(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo, name: str | None = None) -> IndexRecord:
    """Train the index again over the table as it is now (a new build swapped in when complete)."""
    rec = find(con, info, name)
    rec = manage.build_record(dataset_path, rec.with_build(None), source(con, dataset_path, info))
    manage.commit(con, dataset_path, rec)
    return rec


def drop(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo, name: str | None = None) -> IndexRecord:
    rec = find(con, info, name)
    manage.drop(con, dataset_path, rec)
    return rec


def drop_all(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo) -> None:
    """Forget every index of a table that is being dropped (catalog rows, then files)."""
    for rec in indexes(con, info):
        manage.drop(con, dataset_path, rec)


def refresh(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo) -> list[tuple[IndexRecord, bool]]:
    """Bring every index of the table up to its rows (new faces added, deleted ones removed)."""
    out: list[tuple[IndexRecord, bool]] = []
    recs = indexes(con, info)
    if not recs:
        return out
    src = source(con, dataset_path, info)
    for rec in recs:
        try:
            new = manage.refresh_record(dataset_path, rec, src)
        except IndexFileError as err:
            log.warning("%s; rebuilding it", err)
            new = manage.build_record(dataset_path, rec.with_build(None), src)
        if new is not None:
            manage.commit(con, dataset_path, new)
        out.append((new or rec, new is not None))
    return out


def purge(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo) -> int:
    """Refresh every index of the table, then delete all their older builds (which may still hold rows that were
    deleted for good, such as forgotten faces). Returns how many index entries were removed."""
    before = {rec.name: held_ids(dataset_path, rec)[0] for rec in indexes(con, info)}
    removed = 0
    for rec, _changed in refresh(con, dataset_path, info):
        after, _ = held_ids(dataset_path, rec)
        old = before.get(rec.name)
        if old is not None and after is not None:
            removed += int(np.setdiff1d(old, after).size)
        manage.finish(dataset_path, rec, rec.table_key, rec.name, spare=False)
    return removed


def held_ids(dataset_path: str, rec: IndexRecord) -> tuple[np.ndarray | None, str | None]:
    """The ids the index holds (``None`` before a build) and, for a broken build, why it cannot be read."""
    b = rec.build
    if not b or "ref" not in b:
        return None, None
    try:
        return manage.held_ids(dataset_path, rec), None
    except IndexFileError as err:
        return None, err.message


def describe(dataset_path: str, rec: IndexRecord, current_ids: np.ndarray, table: str) -> dict[str, Any]:
    """What ``INFORMATION_SCHEMA.VECTOR_INDEXES`` and ``lookalike vector-index list`` show for an index."""
    b = rec.build or {}
    held, broken = held_ids(dataset_path, rec)
    cur = sorted_unique(current_ids)
    covered = 0 if held is None else int(np.isin(cur, held, assume_unique=True).sum())
    total = int(cur.size)
    d = manage.drift(b)
    return {
        "table_name": table,
        "index_name": rec.name,
        "index_column": rec.column,
        "index_status": "BROKEN" if broken else rec.status,
        "index_type": rec.spec.index_type,
        "distance_type": rec.spec.distance_type,
        "coverage_percentage": 100.0 if total == 0 else round(100.0 * covered / total, 2),
        "unindexed_row_count": total - covered,
        "indexed_row_count": covered,
        "total_storage_bytes": int(b["ref"]["bytes"]) if "ref" in b else 0,
        "lists": b.get("lists"),
        "factory": b.get("factory"),
        "drift": round(d, 4),
        "rebuild_suggested": d >= manage.DRIFT_REBUILD,
        "too_small": bool(b.get("too_small")),
        "error": broken,
        "creation_time": rec.created_at.isoformat() if rec.created_at else None,
        "last_refresh_time": rec.last_refresh_time.isoformat() if rec.last_refresh_time else None,
        "ddl": ddl(rec, table),
    }


def ddl(rec: IndexRecord, table: str) -> str:
    storing = f" STORING({', '.join(rec.storing)})" if rec.storing else ""
    return f"CREATE VECTOR INDEX {rec.name} ON {table}({rec.column}){storing} {rec.spec.options_sql()}"


# ---------------------------------------------------------------------------------------------- search

_DELTAS: dict[tuple[str, str, int, str], Delta] = {}
_DELTA_LOCK = threading.Lock()


def search(
    dataset_path: str,
    rec: IndexRecord | None,
    fm: FaceMatrix,
    queries: np.ndarray,
    k: int,
    distance: Distance,
    knobs: SearchKnobs,
) -> tuple[np.ndarray, np.ndarray, IndexUsage]:
    """Top-k rows of ``fm`` for ``queries``: through the table's index when it can serve, else exactly."""
    loaded, usage = manage.choose(dataset_path, rec, int(fm.matrix.shape[1]), distance, knobs)
    if loaded is None:
        idx, dists = exact_top_k(fm, queries, k, distance)
        return idx, dists, usage
    assert rec is not None and rec.build is not None
    key = (dataset_path, fm.table, fm.version, str(rec.build["ref"]["folder"]))
    with _DELTA_LOCK:
        cached = _DELTAS.get(key)
    if cached is None:
        cached = delta(loaded, fm.face_id)
        with _DELTA_LOCK:
            _DELTAS[key] = cached
            while len(_DELTAS) > 4:
                _DELTAS.pop(next(iter(_DELTAS)))
    try:
        return search_rows(
            loaded,
            fm.rows_for_gather,
            fm.face_id,
            queries,
            k,
            distance,
            knobs,
            cached=cached,
            scan=fm.matrix,
            reader=fm.reader,
        )
    except (RuntimeError, LookalikeError) as err:  # a faiss failure must not become a wrong answer
        if isinstance(err, SearchError) and "dimensions" in err.message:
            raise
        log.warning("vector index %s failed (%s); searching exactly", rec.name, err)
        idx, dists = exact_top_k(fm, queries, k, distance)
        return idx, dists, unused("INDEX_FILE_ERROR", f"index {rec.name} failed: {err}", rec.name)
