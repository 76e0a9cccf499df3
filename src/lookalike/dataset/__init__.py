"""The dataset: one DuckDB file holding the catalog, the objects and the face rows of every table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from lookalike.dataset.connection import connect, open_connection
from lookalike.dataset.schema import SCHEMA_VERSION, current_version, migrate
from lookalike.errors import DatasetError, DatasetLocked


@contextmanager
def writer(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection with the catalog created or migrated to the current schema."""
    with connect(path) as con:
        migrate(con)
        yield con


@contextmanager
def reader(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to an existing dataset (several processes may read at once).

    A dataset from an older lookalike is migrated first when the file is free for a moment; if another
    process holds it, it is read as it is (everything the core reads exists since schema version 1).
    """
    con = open_connection(path, read_only=True)
    try:
        version = current_version(con)
        if version == 0:
            raise DatasetError(
                f"{str(path)!r} is a DuckDB file but not a lookalike dataset",
                hint="index photos into it first: lookalike index FOLDER --dataset " + str(path),
            )
        if version > SCHEMA_VERSION:
            raise DatasetError(
                f"dataset {str(path)!r} has schema version {version}, newer than this lookalike's {SCHEMA_VERSION}",
                hint="upgrade lookalike",
            )
        if version < SCHEMA_VERSION:
            con.close()
            with contextlib.suppress(DatasetLocked), connect(path, lock_timeout=1.0) as rw:
                migrate(rw)
            con = open_connection(path, read_only=True)
        yield con
    finally:
        con.close()


__all__ = ["reader", "writer"]
