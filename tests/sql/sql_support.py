"""Shared helpers of the SQL tests (a module of its own: test files cannot import conftest reliably)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lookalike
from lookalike.sql import SqlResult

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
DEMO_SQL = REPO / "examples" / "demo.sql"


@dataclass
class Demo:
    """The dataset made by examples/demo.sql, its results, and a plain Lookalike index of the same photos."""

    ds: lookalike.Dataset
    results: list[SqlResult]
    index_table: str = "faces"

    def sql(self, text: str) -> list[SqlResult]:
        return self.ds.sql(text)

    def rows(self, text: str) -> list[dict[str, object]]:
        """The last statement's rows."""
        return self.ds.sql(text)[-1].to_pylist()


@dataclass
class Small:
    """A private dataset with a folder of three photos (two people) and a model ``s.m``."""

    ds: lookalike.Dataset
    photos: Path

    def sql(self, text: str) -> list[SqlResult]:
        return self.ds.sql(text)

    def rows(self, text: str) -> list[dict[str, object]]:
        return self.ds.sql(text)[-1].to_pylist()
