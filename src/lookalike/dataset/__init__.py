"""The dataset: one DuckDB file holding the catalog, the objects and the face rows of every table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from lookalike.dataset.connection import connect
from lookalike.dataset.schema import SCHEMA_VERSION, current_version, migrate
from lookalike.errors import DatasetError


@contextmanager
def writer(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection with the catalog created or migrated to the current schema."""
    with connect(path) as con:
        migrate(con)
        yield con


@contextmanager
def reader(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to an existing dataset (several processes may read at once)."""
    with connect(path, read_only=True) as con:
        version = current_version(con)
        if version == 0:
            raise DatasetError(
                f"{str(path)!r} is a DuckDB file but not a lookalike dataset",
                hint="index photos into it first: lookalike index FOLDER --dataset " + str(path),
            )
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"dataset {str(path)!r} has schema version {version}, this lookalike uses {SCHEMA_VERSION}",
                hint="run any write command (e.g. lookalike index) once to migrate it",
            )
        yield con


__all__ = ["reader", "writer"]
