"""The server's view of the dataset: readable while another process writes to it.

DuckDB lets one process at a time hold a database file open for writing, and while it does, no other process
can open the file at all, not even read-only. ``lookalike index`` (or an index job started through the API)
opens the file at most once a second (once per commit), so the file is free most of the time but locked in
short windows.

The :class:`Catalog` therefore

* opens a short read-only connection per look (never holding one between requests), with a short lock
  timeout, and only every ``refresh_interval`` seconds per table;
* keeps, per table, a :class:`TableSnapshot`: the table's catalog row and its face matrix (from the per-process
  matrix cache, :mod:`lookalike.search.cache`, keyed by table version);
* when the file is locked, answers from the last snapshot it could read (``stale=True``) instead of waiting;
  the next look after the lock is gone sees the new table version and reloads the matrix.

Only when it has never read a table does it wait longer (``cold_lock_timeout``) for the lock to go away.

People (:mod:`lookalike.people`) change without a new table version (a rename, a merge), so they are not part of
the table snapshot. Search rows name each face's person from a :class:`PeopleSnapshot`, reloaded when the
table's people log or version moved; the people routes read the file itself (:meth:`Catalog.read_people`). After
an edit by this server, :meth:`Catalog.people_changed` and :meth:`Catalog.faces_forgotten` make the next look
read the file again, and a forgotten face is refused at once, even while the file is busy.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb
import numpy as np

from lookalike import config
from lookalike.api import Dataset, Query, SearchHit, SearchResult
from lookalike.dataset import store
from lookalike.dataset.connection import connect
from lookalike.dataset.schema import SCHEMA_VERSION, current_version
from lookalike.dataset.vindexes import IndexRecord
from lookalike.errors import DatasetError, DatasetLocked, InvalidArgument, TableNotFound
from lookalike.people import store as pstore
from lookalike.records import QueryFace
from lookalike.search import cache
from lookalike.search.diskcache import load_cached_matrix
from lookalike.search.vindex import faces as face_indexes
from lookalike.server.errors import NotFound

T = TypeVar("T")

#: Seconds to wait for the lock when a stale answer is available (then the stale answer is used).
DEFAULT_LOCK_TIMEOUT_S = 0.25
#: Seconds to wait for the lock when there is nothing to fall back on yet.
DEFAULT_COLD_LOCK_TIMEOUT_S = 5.0
#: Seconds during which a table's snapshot is used without looking at the file again.
DEFAULT_REFRESH_INTERVAL_S = 0.5
#: The schema version that added persons (``lookalike_persons`` and its neighbours).
PEOPLE_SCHEMA_VERSION = 6


@dataclass(frozen=True, slots=True)
class TableSnapshot:
    """One table as last read: its catalog row and its face matrix (rows ordered by ``face_id``).

    ``stale`` is true when the last attempt to look at the file found it locked, so newer rows may exist.
    """

    info: store.TableInfo
    matrix: store.FaceMatrix
    checked_at: float
    stale: bool = False
    #: The table's vector index as last read (an index can be rebuilt without the table changing).
    vindex: IndexRecord | None = None

    def row_of(self, face_id: int) -> int | None:
        """The matrix row of ``face_id``, or ``None`` when this table has no such (embedded) face."""
        ids = self.matrix.face_id
        pos = int(np.searchsorted(ids, face_id))
        if pos < len(ids) and int(ids[pos]) == face_id:
            return pos
        return None

    def face(self, row: int) -> dict[str, object]:
        """The public description of the face at matrix row ``row``."""
        bbox = self.matrix.bbox[row]
        return {
            "face_id": int(self.matrix.face_id[row]),
            "uri": str(self.matrix.uri[row]),
            "face": int(self.matrix.face_index[row]),
            "bbox": [round(float(v), 1) for v in bbox],
        }


@dataclass(frozen=True, slots=True)
class PeopleSnapshot:
    """Who is in which person in one table, as last read: what search rows need (``person_id``, ``person_name``).

    ``stamp`` (table version, people-log length, last log time) says which state it shows; the snapshot is read
    again only when the stamp moved.
    """

    face_id: np.ndarray  # (n,) int64, sorted
    person_id: np.ndarray  # (n,) int64, aligned with face_id
    names: dict[int, str]
    stamp: tuple[object, ...]
    checked_at: float
    stale: bool = False

    @classmethod
    def empty(cls, stamp: tuple[object, ...] = ()) -> PeopleSnapshot:
        none = np.zeros(0, np.int64)
        return cls(face_id=none, person_id=none, names={}, stamp=stamp, checked_at=time.monotonic())

    def owners(self, face_ids: list[int]) -> dict[int, tuple[int, str | None]]:
        """``face_id -> (person_id, name)`` for those of ``face_ids`` that are in a person."""
        if not face_ids or not len(self.face_id):
            return {}
        ids = np.asarray(face_ids, np.int64)
        pos = np.clip(np.searchsorted(self.face_id, ids), 0, len(self.face_id) - 1)
        out: dict[int, tuple[int, str | None]] = {}
        for fid, p in zip(ids.tolist(), pos.tolist(), strict=True):
            if int(self.face_id[p]) == fid:
                pid = int(self.person_id[p])
                out[fid] = (pid, self.names.get(pid))
        return out


class Catalog:
    """Tables, faces and objects of one dataset file, for a long-running server (thread-safe)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        cold_lock_timeout: float = DEFAULT_COLD_LOCK_TIMEOUT_S,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL_S,
    ) -> None:
        self.path = os.fspath(path)
        self.lock_timeout = lock_timeout
        self.cold_lock_timeout = cold_lock_timeout
        self.refresh_interval = refresh_interval
        self._snapshots: dict[str, TableSnapshot] = {}
        self._table_locks: dict[str, threading.Lock] = {}
        self._stats: list[dict[str, object]] | None = None
        self._stats_at = 0.0
        self._stats_lock = threading.Lock()
        self._lock = threading.Lock()
        self._people: dict[str, PeopleSnapshot] = {}
        #: Faces this server forgot, per table: refused even by a snapshot read before the forget.
        self._forgotten: dict[str, set[int]] = {}

    # -------------------------------------------------------------------------------------- connections

    @contextmanager
    def _connect(self, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-only connection; :class:`DatasetLocked` after ``timeout`` seconds of lock."""
        with connect(self.path, read_only=True, lock_timeout=timeout) as con:
            version = current_version(con)
            if version > SCHEMA_VERSION:  # older versions have every table the server reads
                raise DatasetError(
                    f"dataset {self.path!r} has schema version {version}, this lookalike uses {SCHEMA_VERSION}",
                    hint="upgrade lookalike",
                )
            yield con

    def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, fallback: bool) -> T | None:
        """``fn(con)`` on a fresh connection; ``None`` when locked and the caller has a ``fallback``."""
        try:
            with self._connect(self.lock_timeout if fallback else self.cold_lock_timeout) as con:
                return fn(con)
        except DatasetLocked:
            if fallback:
                return None
            raise

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    # -------------------------------------------------------------------------------------- tables

    def tables(self) -> list[dict[str, object]]:
        """Every table with its model, dimension, version and counts (the last known while locked)."""
        if not self.exists():
            return []
        with self._stats_lock:
            if self._stats is not None and time.monotonic() - self._stats_at < self.refresh_interval:
                return self._stats
            fresh = self._read(_table_stats, fallback=self._stats is not None)
            self._stats_at = time.monotonic()
            if fresh is not None:
                self._stats = fresh
            assert self._stats is not None
            return self._stats

    def table_names(self) -> list[str]:
        return [str(t["name"]) for t in self.tables()]

    def snapshot(self, table: str) -> TableSnapshot:
        """The table's snapshot, refreshed when older than ``refresh_interval`` and the file is free.

        Raises :class:`TableNotFound` for a table that does not exist (as of the last successful read).
        """
        snap = self._snapshots.get(table)
        if snap is not None and time.monotonic() - snap.checked_at < self.refresh_interval:
            return snap
        if not self.exists():
            raise TableNotFound(
                f"no table {table!r}: the dataset {self.path!r} is empty",
                hint="index photos first: POST /v1/index or lookalike index FOLDER",
            )
        with self._table_lock(table):  # one refresh per table at a time; the others then reuse its result
            snap = self._snapshots.get(table)
            if snap is not None and time.monotonic() - snap.checked_at < self.refresh_interval:
                return snap
            try:
                fresh = self._read(lambda con: self._load(con, table, snap), fallback=snap is not None)
            except TableNotFound:
                self._snapshots.pop(table, None)
                raise
            if fresh is None:  # locked: keep answering from the last version we read
                assert snap is not None
                fresh = dataclasses.replace(snap, checked_at=time.monotonic(), stale=True)
            self._snapshots[table] = fresh
            return fresh

    def _table_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._table_locks.setdefault(key, threading.Lock())

    def _load(self, con: duckdb.DuckDBPyConnection, table: str, old: TableSnapshot | None) -> TableSnapshot:
        if current_version(con) == 0:
            raise TableNotFound(
                f"no table {table!r}: the dataset has no tables yet",
                hint="index photos first: POST /v1/index or lookalike index FOLDER",
            )
        info = store.get_table(con, table)
        now = time.monotonic()
        recs = face_indexes.indexes(con, info)
        vindex = recs[0] if recs else None
        if old is not None and old.info.version == info.version:
            return dataclasses.replace(old, info=info, checked_at=now, stale=False, vindex=vindex)
        matrix = cache.get_matrix(self.path, table, info.version, lambda: load_cached_matrix(con, self.path, info))
        return TableSnapshot(info=info, matrix=matrix, checked_at=now, vindex=vindex)

    # -------------------------------------------------------------------------------------- faces, objects

    def find_face(self, face_id: int, table: str | None = None) -> tuple[TableSnapshot, int]:
        """The snapshot and matrix row of an indexed face (face ids are unique across a dataset's tables)."""
        names = [table] if table is not None else self.table_names()
        for name in names:
            snap = self.snapshot(name)
            row = snap.row_of(face_id)
            if row is not None and not self.is_forgotten(name, face_id):
                return snap, row
        where = f"table {table!r}" if table is not None else "any table"
        raise NotFound(f"no indexed face with id {face_id} in {where}")

    def has_object(self, table: str, uri: str) -> bool:
        """Whether ``uri`` is an object of ``table`` (exact match; with or without faces)."""
        snap = self.snapshot(table)

        def lookup(con: duckdb.DuckDBPyConnection) -> bool:
            row = con.execute(
                "SELECT count(*) FROM lookalike_objects WHERE tbl = ? AND uri = ?", [table, uri]
            ).fetchone()
            return bool(row and row[0])

        found = self._read(lookup, fallback=True)
        if found is None:  # locked: objects with faces are in the matrix
            return snap.matrix.has_uri(uri)
        return found

    # -------------------------------------------------------------------------------------- people

    def read_people(
        self, table: str, fn: Callable[[duckdb.DuckDBPyConnection, store.TableInfo], T], empty: Callable[[], T]
    ) -> T:
        """``fn(con, info)`` on a fresh read-only connection (people reads are never answered from a snapshot:
        an edit must show at once). Waits up to ``cold_lock_timeout`` for a writer, then :class:`DatasetLocked`
        (409). A dataset from before people existed gives ``empty()``."""
        if not self.exists():
            raise TableNotFound(
                f"no table {table!r}: the dataset {self.path!r} is empty",
                hint="index photos first: POST /v1/index or lookalike index FOLDER",
            )

        def run(con: duckdb.DuckDBPyConnection) -> T:
            if current_version(con) == 0:
                raise TableNotFound(
                    f"no table {table!r}: the dataset has no tables yet",
                    hint="index photos first: POST /v1/index or lookalike index FOLDER",
                )
            info = store.get_table(con, table)
            if current_version(con) < PEOPLE_SCHEMA_VERSION:
                return empty()
            return fn(con, info)

        result = self._read(run, fallback=False)
        assert result is not None
        return result

    def people(self, table: str) -> PeopleSnapshot:
        """The table's people snapshot, looked at again after ``refresh_interval``; the last one read while the
        file is busy (``stale``)."""
        snap = self._people.get(table)
        if snap is not None and time.monotonic() - snap.checked_at < self.refresh_interval:
            return snap
        with self._table_lock("\0people\0" + table):
            snap = self._people.get(table)
            if snap is not None and time.monotonic() - snap.checked_at < self.refresh_interval:
                return snap
            fresh = self._read(lambda con: _load_people(con, table, snap), fallback=snap is not None)
            if fresh is None:
                assert snap is not None
                fresh = dataclasses.replace(snap, checked_at=time.monotonic(), stale=True)
            self._people[table] = fresh
            return fresh

    def people_changed(self, table: str) -> None:
        """Persons of ``table`` were edited: the next look reads them from the file."""
        self._people.pop(table, None)

    def faces_forgotten(self, table: str, face_ids: list[int]) -> None:
        """Faces of ``table`` were deleted for good (``people forget``): refuse them from now on, and read the
        table again (waiting up to ``cold_lock_timeout`` for the file; a snapshot from before stays only while
        the file is busy, with the forgotten faces refused by :meth:`find_face` and left out of searches)."""
        with self._lock:
            self._forgotten.setdefault(table, set()).update(int(f) for f in face_ids)
        self.people_changed(table)
        with self._table_lock(table):
            snap = self._snapshots.get(table)
            if snap is None:
                return
            try:
                fresh = self._read(lambda con: self._load(con, table, None), fallback=False)
            except TableNotFound:
                self._snapshots.pop(table, None)
                return
            except DatasetLocked:  # busy: keep the old snapshot, but look at the file again on the next use
                fresh = dataclasses.replace(snap, checked_at=float("-inf"), stale=True)
            assert fresh is not None
            self._snapshots[table] = fresh

    def is_forgotten(self, table: str, face_id: int) -> bool:
        """Whether this server forgot face ``face_id`` of ``table``."""
        return int(face_id) in self.forgotten(table)

    def forgotten(self, table: str) -> frozenset[int]:
        """The faces of ``table`` this server forgot."""
        with self._lock:
            return frozenset(self._forgotten.get(table, ()))


def _load_people(con: duckdb.DuckDBPyConnection, table: str, old: PeopleSnapshot | None) -> PeopleSnapshot:
    """The people snapshot of ``table`` (``old`` again, re-dated, when nothing changed since)."""
    if current_version(con) < PEOPLE_SCHEMA_VERSION:
        return PeopleSnapshot.empty()
    info = store.get_table(con, table)
    row = con.execute("SELECT count(*), max(logged_at) FROM lookalike_people_log WHERE tbl = ?", [info.name]).fetchone()
    stamp: tuple[object, ...] = (info.version, *(row or ()))
    if old is not None and old.stamp == stamp:
        return dataclasses.replace(old, checked_at=time.monotonic(), stale=False)
    assigned = pstore.assignments(con, info)
    names = {
        int(r[0]): str(r[1])
        for r in con.execute(
            "SELECT person_id, name FROM lookalike_persons WHERE tbl = ? AND name IS NOT NULL", [info.name]
        ).fetchall()
    }
    return PeopleSnapshot(
        face_id=assigned.face_id,
        person_id=assigned.person_id,
        names=names,
        stamp=stamp,
        checked_at=time.monotonic(),
    )


def _table_stats(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    if current_version(con) == 0:
        return []
    stats = store.table_stats(con)
    for s in stats:
        s["threshold"] = s["calibration"]["threshold"]  # type: ignore[index]
    return stats


class ServingDataset(Dataset):
    """A :class:`~lookalike.api.Dataset` whose searches read tables through a :class:`Catalog`.

    ``Dataset.search`` does the work (so the rows are exactly the CLI's); only where it gets a table's matrix
    and an indexed face's embedding differs: from the catalog's snapshot, which keeps answering while another
    process holds the file. One instance per request: :attr:`snapshot` is the table version it searched.
    """

    def __init__(self, catalog: Catalog, *, max_pixels: int) -> None:
        super().__init__(catalog.path, max_pixels=max_pixels)
        self.catalog = catalog
        self.snapshot: TableSnapshot | None = None

    def _matrix(self, table: str) -> tuple[store.TableInfo, store.FaceMatrix]:
        self.snapshot = self.catalog.snapshot(table)
        return self.snapshot.info, self.snapshot.matrix

    def _table_info(self, table: str) -> store.TableInfo:
        return self._matrix(table)[0]

    def _vector_index(self, info: store.TableInfo) -> IndexRecord | None:
        snap = self.snapshot if self.snapshot is not None else self.catalog.snapshot(info.name)
        return snap.vindex

    def search(self, queries: Query | Sequence[Query], **kwargs: Any) -> SearchResult:
        """:meth:`Dataset.search <lookalike.api.Dataset.search>`, leaving out faces this server just forgot when
        the file was too busy to read the table again (see :meth:`Catalog.faces_forgotten`)."""
        result = super().search(queries, **kwargs)
        gone = self.catalog.forgotten(str(kwargs.get("table", config.DEFAULT_TABLE)))
        if not gone or not any(hit.face_id in gone for hit in result.hits):
            return result
        kept: list[SearchHit] = []
        ranks: dict[tuple[str, int], int] = {}
        for hit in result.hits:
            if hit.face_id in gone:
                continue
            key = (hit.query_uri, hit.query_face)
            ranks[key] = ranks.get(key, 0) + 1
            kept.append(dataclasses.replace(hit, rank=ranks[key]))
        return dataclasses.replace(result, hits=kept)

    def _persons_for(self, info: store.TableInfo, face_ids: list[int]) -> dict[int, tuple[int, str | None]]:
        return self.catalog.people(info.name).owners(face_ids)

    def _person_assignments(self, info: store.TableInfo) -> tuple[np.ndarray, np.ndarray]:
        snap = self.catalog.people(info.name)
        return snap.face_id, snap.person_id

    def _indexed_face(self, info: store.TableInfo, query: str) -> QueryFace:
        raw = query.removeprefix("face:")
        if not raw.isdigit():
            raise InvalidArgument(f"bad face reference {query!r}", hint="use a numeric face id")
        snap, row = self.catalog.find_face(int(raw), info.name)
        bbox = snap.matrix.bbox[row]
        return QueryFace(
            uri=str(snap.matrix.uri[row]),
            face_index=int(snap.matrix.face_index[row]),
            bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
            embedding=snap.matrix.matrix[row],
        )
