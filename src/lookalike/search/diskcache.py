"""An on-disk, memory-mapped copy of large face matrices, so that a new process searches without reloading.

Reading a million 512-d embeddings out of DuckDB takes seconds; memory-mapping a ``.npy`` file of them takes
milliseconds (and the pages stay in the OS cache between commands). Each ``lookalike search`` is a new
process, so for tables of at least :data:`MIN_ROWS` faces the matrix is written once per table version under the
cache folder and mapped from there, the first time too. It is written straight from DuckDB a batch of
:data:`STREAM_ROWS` rows at a time, and the URIs stay in an Arrow file (:class:`UriColumn`), so a table of ten
million faces (20 GB of embeddings) is cached and searched without ever being held in memory whole.

The cache is keyed by the dataset's real path, the table, its version and a signature of its rows (count,
largest and sum of face ids), so a rewritten or replaced dataset never reads a stale copy. Older versions of a
table are deleted when a new one is saved. Set ``LOOKALIKE_CACHE_DIR`` to move the folder (default
``$XDG_CACHE_HOME/lookalike`` or ``~/.cache/lookalike``) and ``LOOKALIKE_MATRIX_CACHE=0`` to turn it off.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from lookalike.dataset.store import FaceMatrix, TableInfo, UriColumn, fixed_to_numpy, load_matrix
from lookalike.search.rowreader import RowReader

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


#: Rows read from DuckDB and written to the cache at a time (200 MB of 512-d embeddings).
STREAM_ROWS = 100_000
#: DuckDB's memory limit while a table streams into the cache. DuckDB keeps the blocks a scan reads in its buffer
#: pool up to its limit (80 % of the machine by default): 6.4 GB for a 3M-face table here, against 1.1 GB with
#: this limit, which a scan never needs more than.
STREAM_MEMORY_LIMIT = "1GB"


def _npy_writer(path: Path, dtype: type, shape: tuple[int, ...]) -> BinaryIO:
    """An ``.npy`` file of ``dtype`` and ``shape``, opened for writing its rows in order (plain writes, so the
    pages go to the OS cache and never count in this process's memory, as a writable memory map's would)."""
    header = np.lib.format.open_memmap(path, "w+", dtype, shape)
    offset = header.offset
    del header
    fh = open(path, "r+b")  # noqa: SIM115 (closed by _stream)
    fh.seek(offset)
    return fh


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """DuckDB's memory limit set to ``limit`` for the block, then put back."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def _stream(con: duckdb.DuckDBPyConnection, info: TableInfo, target: Path, count: int) -> bool:
    """Write the table's matrix to the cache folder ``target`` straight from DuckDB, :data:`STREAM_ROWS` rows at a
    time, so that a table larger than memory is cached without ever being held whole; ``False`` (nothing
    written) when the table no longer has ``count`` embedded faces (a writer committed in between)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    files: dict[str, BinaryIO] = {}
    try:
        files["matrix"] = _npy_writer(tmp / "matrix.npy", np.float32, (count, info.dim))
        files["face_id"] = _npy_writer(tmp / "face_id.npy", np.int64, (count,))
        files["face_index"] = _npy_writer(tmp / "face_index.npy", np.int32, (count,))
        files["bbox"] = _npy_writer(tmp / "bbox.npy", np.float32, (count, 4))
        pos = 0
        schema = pa.schema([("uri", pa.string())])
        with (
            _memory_limit(con, STREAM_MEMORY_LIMIT),
            pa.OSFile(str(tmp / "uri.arrow"), "wb") as sink,
            pa.ipc.new_file(sink, schema) as writer,
        ):
            reader = con.sql(
                f"""SELECT face_id, uri, face_index, bbox, embedding FROM "{info.faces_table}"
                    WHERE embedding IS NOT NULL"""
            ).to_arrow_reader(STREAM_ROWS)
            for batch in reader:
                pos += batch.num_rows
                if pos > count:
                    raise _Changed
                batch.column("face_id").to_numpy(zero_copy_only=False).astype(np.int64).tofile(files["face_id"])
                batch.column("face_index").to_numpy(zero_copy_only=False).astype(np.int32).tofile(files["face_index"])
                fixed_to_numpy(batch.column("bbox"), 4).tofile(files["bbox"])
                fixed_to_numpy(batch.column("embedding"), info.dim).tofile(files["matrix"])
                writer.write_batch(pa.record_batch([batch.column("uri").cast(pa.string())], schema=schema))
        if pos != count:
            raise _Changed
        for fh in files.values():
            fh.close()
        os.rename(tmp, target)
    except (_Changed, OSError, duckdb.Error):
        # a table that changed as it was read is not cached; a cache that cannot be written is only slower (and
        # a read that failed fails again, with its own message, where the caller reads the table directly)
        for fh in files.values():
            fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    _remove_older(target)
    return True


class _Changed(Exception):
    """The table's row count moved while it was being cached."""


def _remove_older(target: Path) -> None:
    for old in target.parent.iterdir():  # older versions of this table
        if old != target and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


def _load(source: Path, info: TableInfo) -> FaceMatrix | None:
    try:
        arrays = {name: np.load(source / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        mm = pa.memory_map(str(source / "uri.arrow"))  # stays open with the column that lives in it
        uri = UriColumn(pa.ipc.open_file(mm).read_all().column("uri"), keep=mm)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if arrays["matrix"].ndim != 2 or arrays["matrix"].shape[1] != info.dim or len(uri) != len(arrays["face_id"]):
        return None
    return FaceMatrix(
        table=info.name,
        version=info.version,
        uri=uri,
        scattered=_scattered(source),
        reader=_reader(source, arrays["matrix"]),
        **arrays,
    )


def _reader(source: Path, matrix: np.ndarray) -> RowReader | None:
    """The matrix file as a :class:`RowReader` (``None`` where it cannot be read so, or is not ``matrix``)."""
    try:
        reader = RowReader(source / "matrix.npy")
    except (OSError, ValueError):
        return None
    if reader.shape != tuple(matrix.shape) or reader.dtype != matrix.dtype:
        return None
    return reader


def _scattered(source: Path) -> np.ndarray | None:
    """The matrix mapped again, advised for random access (``MADV_RANDOM``): a vector index re-ranks a few
    thousand scattered rows, and without it each page fault on a file that is not in the OS cache also reads
    ahead the next pages, which no one wants. A search on a 3M-face table with nothing cached took 7.1-9.1 s,
    and 3.0-3.7 s with it (``benchmarks/scale_search.py``'s table, caches dropped). Exact search keeps the normal
    mapping, which reads ahead as a scan should. ``None`` where the platform has no such advice."""
    advice = getattr(mmap, "MADV_RANDOM", None)
    if advice is None:
        return None
    try:
        view = np.load(source / "matrix.npy", mmap_mode="r")
        handle = getattr(view, "_mmap", None)
        if handle is None:
            return None
        handle.madvise(advice)
    except (OSError, ValueError):
        return None
    return view


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
    if _stream(con, info, target, count):
        streamed = _load(target, info)
        if streamed is not None:
            return streamed
    return load_matrix(con, info)  # the table changed as it was read, or the cache can't be written: not cached


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
