"""An on-disk, memory-mapped copy of large face matrices, so that a new process searches without reloading.

Reading a million 512-d embeddings out of DuckDB takes seconds; memory-mapping a ``.npy`` file of them takes
milliseconds (and the pages stay in the OS cache between commands). Each ``lookalike search`` is a new
process, so for tables of at least :data:`MIN_ROWS` faces the matrix is saved once per table version under the
cache folder and mapped from there afterwards.

The cache is keyed by the dataset's real path, the table, its version and a signature of its rows (count,
largest and sum of face ids), so a rewritten or replaced dataset never reads a stale copy. Older versions of a
table are deleted when a new one is saved. Set ``LOOKALIKE_CACHE_DIR`` to move the folder (default
``$XDG_CACHE_HOME/lookalike`` or ``~/.cache/lookalike``) and ``LOOKALIKE_MATRIX_CACHE=0`` to turn it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from lookalike.dataset.store import FaceMatrix, TableInfo, load_matrix

#: Tables with fewer embedded faces load from DuckDB directly (well under a second) and are not cached.
MIN_ROWS = 50_000

_ARRAYS = ("matrix", "face_id", "face_index", "bbox")


def cache_root() -> Path | None:
    """The cache folder, or None when the cache is turned off."""
    if os.environ.get("LOOKALIKE_MATRIX_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    explicit = os.environ.get("LOOKALIKE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lookalike"


def _signature(con: duckdb.DuckDBPyConnection, info: TableInfo) -> tuple[int, int, int]:
    row = con.execute(
        f'SELECT count(*), coalesce(max(face_id), 0), coalesce(sum(face_id), 0) FROM "{info.faces_table}" '
        "WHERE embedding IS NOT NULL"
    ).fetchall()[0]
    return int(row[0]), int(row[1]), int(row[2])


def _table_dir(root: Path, dataset_path: str, table: str) -> Path:
    digest = hashlib.sha1(os.path.realpath(dataset_path).encode()).hexdigest()[:16]
    return root / "matrices" / digest / table


def _save(target: Path, fm: FaceMatrix) -> None:
    """Write ``fm`` under ``target`` atomically (a temporary folder renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(fm, name))
        uris = pa.table({"uri": pa.array(fm.uri.tolist(), pa.string())})
        with pa.OSFile(str(tmp / "uri.arrow"), "wb") as sink, pa.ipc.new_file(sink, uris.schema) as writer:
            writer.write_table(uris)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return  # a cache that cannot be written is only slower, never wrong
    for old in target.parent.iterdir():  # older versions of this table
        if old != target and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


def _load(source: Path, info: TableInfo) -> FaceMatrix | None:
    try:
        arrays = {name: np.load(source / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        with pa.memory_map(str(source / "uri.arrow")) as mm:
            uri = np.asarray(pa.ipc.open_file(mm).read_all().column("uri").to_pylist(), dtype=object)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if arrays["matrix"].ndim != 2 or arrays["matrix"].shape[1] != info.dim or len(uri) != len(arrays["face_id"]):
        return None
    return FaceMatrix(table=info.name, version=info.version, uri=uri, **arrays)


def load_cached_matrix(con: duckdb.DuckDBPyConnection, dataset_path: str, info: TableInfo) -> FaceMatrix:
    """The table's face matrix: memory-mapped from the cache when there, else from DuckDB (and cached)."""
    root = cache_root()
    if root is None:
        return load_matrix(con, info)
    count, max_id, sum_id = _signature(con, info)
    if count < MIN_ROWS:
        return load_matrix(con, info)
    target = _table_dir(root, dataset_path, info.name) / f"v{info.version}-{count}-{max_id}-{sum_id}"
    if target.is_dir():
        cached = _load(target, info)
        if cached is not None:
            return cached
        shutil.rmtree(target, ignore_errors=True)
    fm = load_matrix(con, info)
    _save(target, fm)
    return fm


def drop_table(dataset_path: str, table: str) -> int:
    """Delete every cached matrix of ``table`` (after faces were forgotten); returns the folders removed."""
    root = cache_root()
    if root is None:
        return 0
    folder = _table_dir(root, dataset_path, table)
    if not folder.is_dir():
        return 0
    removed = sum(1 for p in folder.iterdir() if p.is_dir())
    shutil.rmtree(folder, ignore_errors=True)
    return removed
