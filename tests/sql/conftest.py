"""Fixtures of the SQL tests: the demo script run once over the bundled photos, and small private datasets.

The ``demo`` dataset is shared by the whole session (embedding the 48 photos is the slow part), so tests
that change it use their own names; tests that need a dataset of their own use ``small``.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from sql_support import DATA, DEMO_SQL, REPO, Demo, Small

import lookalike


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("sql-demo") / "demo.duckdb"
    ds = lookalike.open(path)
    with contextlib.chdir(REPO):  # the demo's URIs are relative to the repository root
        results = ds.sql(DEMO_SQL.read_text())
    # the same photos indexed by the core, to compare VECTOR_SEARCH with Dataset.search
    ds.index(str(DATA / "gallery"), str(DATA / "queries"), table="faces")
    return Demo(ds, results)


@pytest.fixture()
def small(tmp_path: Path) -> Small:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(DATA / "gallery/Tony_Blair/Tony_Blair_0001.jpg", photos / "a.jpg")
    shutil.copy(DATA / "gallery/Hugo_Chavez/Hugo_Chavez_0001.jpg", photos / "b.jpg")
    shutil.copy(DATA / "gallery/Tony_Blair/Tony_Blair_0002.jpg", photos / "sub" / "c.jpg")
    ds = lookalike.open(tmp_path / "small.duckdb")
    ds.sql("CREATE SCHEMA s; CREATE MODEL s.m OPTIONS (ENDPOINT = 'default')")
    return Small(ds, photos)
