"""Building, refreshing, loading and dropping the index of a catalog row, whatever front end asks.

A caller (the SQL front end, the CLI through the API, the index job) supplies the table's current rows as a
:class:`VectorSource` and commits the catalog row this module returns; only after the commit does it call
:func:`finish`, which deletes the builds the catalog no longer points at.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np

from lookalike.dataset import vindexes
from lookalike.dataset.connection import transaction
from lookalike.dataset.vindexes import IndexRecord
from lookalike.errors import InvalidArgument
from lookalike.search.distances import Distance
from lookalike.search.vindex import build as builder
from lookalike.search.vindex._faiss import faiss as load_faiss
from lookalike.search.vindex.files import (
    BuildRef,
    IndexFileError,
    index_root,
    read_build,
    read_ids,
    remove_others,
    slug,
    write_build,
)
from lookalike.search.vindex.searcher import FULLY_USED, IndexUsage, LoadedIndex, serves, unused
from lookalike.search.vindex.spec import MIN_ROWS, PQ_MIN_ROWS, SearchKnobs

log = logging.getLogger(__name__)

#: BigQuery calls a drift of 0.3 or more "significant": a rebuild then pays off.
DRIFT_REBUILD = 0.3


@dataclass(frozen=True, slots=True)
class VectorSource:
    """The rows an index covers: one id per row and the ``(n, dim)`` float32 vectors as stored."""

    ids: np.ndarray
    matrix: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_record(dataset_path: str, rec: IndexRecord, source: VectorSource) -> IndexRecord:
    """A full build (train and fill) over ``source``; the files are written, the catalog row is the caller's."""
    n = source.rows
    if n < MIN_ROWS:
        return rec.with_build({"too_small": True, "rows": n, "built_at": _now()})
    if rec.spec.index_type == "IVF" and rec.spec.num_lists is not None and rec.spec.num_lists > n:
        raise InvalidArgument(
            f"num_lists {rec.spec.num_lists} is above the {n} vectors of the table",
            hint=f"use num_lists <= {n}, or leave it out to have it chosen from the table size",
        )
    built = builder.build(rec.spec, source.matrix, source.ids)
    ref = write_build(index_root(dataset_path), slug(rec.table_key, rec.name), built.index, built.ids, built.refine)
    return rec.with_build(
        {
            "ref": ref.to_dict(),
            "factory": built.factory,
            "lists": built.lists,
            "unit": built.unit,
            "dim": int(source.matrix.shape[1]),
            "rows": int(built.ids.size),
            "trained_rows": int(built.ids.size),
            "added_since_training": 0,
            "removed_since_training": 0,
            "build_s": round(built.seconds, 3),
            "built_at": _now(),
        }
    )


def refresh_record(dataset_path: str, rec: IndexRecord, source: VectorSource) -> IndexRecord | None:
    """Add the rows the index lacks and remove those gone (a full build when there was none); ``None`` when it
    already holds exactly these rows."""
    b = rec.build
    if b is None or b.get("too_small"):
        if b is not None and source.rows < MIN_ROWS and b.get("rows") == source.rows:
            return None
        return build_record(dataset_path, rec, source)
    if int(b["dim"]) != int(source.matrix.shape[1]):
        return build_record(dataset_path, rec, source)
    if rec.spec.index_type == "TREE_AH" and str(b.get("factory", "")).endswith(",Flat") and source.rows >= PQ_MIN_ROWS:
        return build_record(dataset_path, rec, source)  # grown past exact storage: train the codes
    loaded = load(dataset_path, rec)
    index = _clone(loaded.index)
    started = time.perf_counter()
    up = builder.update(rec.spec, index, loaded.ids, source.matrix, source.ids, loaded.refine)
    held, added, removed = up.ids, up.added, up.removed
    if not added and not removed:
        return None
    if held.size < MIN_ROWS:
        return build_record(dataset_path, rec, source)
    ref = write_build(index_root(dataset_path), slug(rec.table_key, rec.name), index, held, up.refine)
    new = dict(b)
    new.update(
        ref=ref.to_dict(),
        rows=int(held.size),
        added_since_training=int(b.get("added_since_training", 0)) + added,
        removed_since_training=int(b.get("removed_since_training", 0)) + removed,
        refreshed_at=_now(),
        refresh_s=round(time.perf_counter() - started, 3),
    )
    return rec.with_build(new)


def drift(build: dict[str, Any] | None) -> float:
    """Share of the index's rows that were added or removed since it was trained (0 = as trained)."""
    if not build or build.get("too_small"):
        return 0.0
    changed = int(build.get("added_since_training", 0)) + int(build.get("removed_since_training", 0))
    return changed / max(1, int(build.get("trained_rows", 1)))


def _clone(index: Any) -> Any:
    faiss = load_faiss()

    return faiss.clone_index(index)


def finish(dataset_path: str, rec: IndexRecord | None, table_key: str, name: str, *, spare: bool = True) -> None:
    """After the catalog commit: delete every build of the index but the one ``rec`` points at (all when
    ``rec`` is None: the index was dropped) and, with ``spare``, the previous one (for readers mid-swap)."""
    keep = None
    if rec is not None and rec.build is not None and "ref" in rec.build:
        keep = str(rec.build["ref"]["folder"])
    remove_others(index_root(dataset_path), slug(table_key, name), keep, spare=spare)


_LOADED: OrderedDict[tuple[str, str], LoadedIndex] = OrderedDict()
_LOCK = threading.Lock()
_MAX_LOADED = 4


def load(dataset_path: str, rec: IndexRecord) -> LoadedIndex:
    """The index of ``rec`` in memory (cached per build; a build's files never change once written).

    Raises :class:`~lookalike.search.vindex.files.IndexFileError` for a missing or altered file.
    """
    assert rec.build is not None and "ref" in rec.build
    ref = BuildRef.from_dict(rec.build["ref"])
    root = index_root(dataset_path)
    key = (str(root), ref.folder)
    with _LOCK:
        hit = _LOADED.get(key)
        if hit is not None:
            _LOADED.move_to_end(key)
            return hit
    index, ids, refine = read_build(root, ref)
    loaded = LoadedIndex(
        name=rec.name,
        spec=rec.spec,
        index=index,
        ids=ids,
        lists=int(rec.build["lists"]),
        unit=bool(rec.build["unit"]),
        dim=int(rec.build["dim"]),
        refine=refine,
    )
    with _LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > _MAX_LOADED:
            _LOADED.popitem(last=False)
    return loaded


def held_ids(dataset_path: str, rec: IndexRecord) -> np.ndarray:
    """The ids the build of ``rec`` holds: from the loaded index when this process has it, else from the small
    ids file alone (a listing need not read, nor hash, the whole index). :class:`IndexFileError` when broken."""
    assert rec.build is not None and "ref" in rec.build
    ref = BuildRef.from_dict(rec.build["ref"])
    with _LOCK:
        hit = _LOADED.get((str(index_root(dataset_path)), ref.folder))
    return hit.ids if hit is not None else read_ids(index_root(dataset_path), ref)


def commit(con: duckdb.DuckDBPyConnection, dataset_path: str, rec: IndexRecord) -> None:
    """Record ``rec`` (with its new build) in the catalog, then delete the builds it no longer points at."""
    with transaction(con):
        vindexes.save(con, rec)
    finish(dataset_path, rec, rec.table_key, rec.name)


def drop(con: duckdb.DuckDBPyConnection, dataset_path: str, rec: IndexRecord) -> None:
    """Forget the index ``rec``: its catalog row, then its files."""
    with transaction(con):
        vindexes.delete(con, rec.table_key, rec.name)
    finish(dataset_path, None, rec.table_key, rec.name)


def choose(
    dataset_path: str, rec: IndexRecord | None, dim: int, distance: Distance, knobs: SearchKnobs
) -> tuple[LoadedIndex | None, IndexUsage]:
    """The loaded index to search ``dim``-d rows with, or ``None`` and why not (an UNUSED usage, as BigQuery's
    ``indexUnusedReasons`` say it); shared by the API and SQL."""
    if rec is None:
        return None, unused("NO_INDEX", "no vector index on the searched table and column")
    if knobs.use_brute_force:
        return None, unused("INDEX_SUPPRESSED_BY_FUNCTION_OPTION", "exact search was asked for", rec.name)
    b = rec.build
    if not b:
        return None, unused("INDEX_NOT_BUILT", f"index {rec.name} is not built yet: rebuild it", rec.name)
    if b.get("too_small"):
        return None, unused("BASE_TABLE_TOO_SMALL", f"the table had no rows when index {rec.name} was built", rec.name)
    if int(b["dim"]) != int(dim):
        return None, unused(
            "INDEX_DIMENSION_MISMATCH",
            f"index {rec.name} holds {b['dim']}-d vectors, the searched rows {dim}-d: rebuild it",
            rec.name,
        )
    try:
        loaded = load(dataset_path, rec)
    except IndexFileError as err:
        log.warning("%s; searching exactly", err)
        return None, unused("INDEX_FILE_ERROR", err.message + "; searched exactly (rebuild the index)", rec.name)
    why = serves(loaded, distance)
    if why is not None:
        return None, unused("DISTANCE_TYPE_NOT_SERVED", why, rec.name)
    return loaded, IndexUsage(FULLY_USED, rec.name)
