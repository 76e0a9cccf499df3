"""Opening the dataset's DuckDB file: clear errors, and retry while another process holds the lock.

DuckDB lets one process at a time open a file for writing, and while it does no other process can open it at
all. Lookalike therefore keeps connections short (one per operation or per committed batch) and retries the
open for a while before giving up with :class:`~lookalike.errors.DatasetLocked`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from lookalike.errors import DatasetError, DatasetLocked

#: How long to keep retrying an open that fails because another process holds the file.
DEFAULT_LOCK_TIMEOUT_S = 30.0

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file", "used by another process")


def _is_lock_error(err: Exception) -> bool:
    text = str(err)
    return any(marker in text for marker in _LOCK_MARKERS)


def open_connection(
    path: str | Path, *, read_only: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file at ``path`` (created when missing, unless ``read_only``).

    Raises :class:`DatasetError` for a file that is not a DuckDB database or a folder that does not exist, and
    :class:`DatasetLocked` when another process still holds the file after ``lock_timeout`` seconds.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"dataset path {str(path)!r} is a folder, not a DuckDB file")
    if not path.parent.exists():
        raise DatasetError(
            f"cannot create dataset {str(path)!r}: folder {str(path.parent)!r} does not exist",
            hint="create the folder first or choose another --dataset path",
        )
    if read_only and not path.exists():
        raise DatasetError(
            f"dataset {str(path)!r} does not exist", hint="index some photos first: lookalike index FOLDER"
        )
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(os.fspath(path), read_only=read_only)
            # DuckDB draws a progress bar on stdout for queries over ~2 s (streaming a large table into the
            # matrix cache, say): it would land in the middle of `--json` output
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.Error as err:
            if _is_lock_error(err):
                if time.monotonic() >= deadline:
                    raise DatasetLocked(
                        f"dataset {str(path)!r} is in use by another process",
                        hint="wait for the other lookalike command to finish, or use another --dataset",
                    ) from err
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if "not a valid DuckDB database" in str(err) or "not a DuckDB" in str(err):
                raise DatasetError(
                    f"{str(path)!r} is not a DuckDB database file",
                    hint="point --dataset at a .duckdb file made by lookalike, or at a new path",
                ) from err
            raise DatasetError(f"cannot open dataset {str(path)!r}: {err}") from err


@contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`open_connection` that always closes the connection."""
    con = open_connection(path, read_only=read_only, lock_timeout=lock_timeout)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` on any exception, so a failed batch leaves nothing half-written."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
