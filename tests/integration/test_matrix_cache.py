"""The face matrix across processes: the memory-mapped disk cache, and reading a dataset of an older schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

import lookalike
from lookalike.dataset import store
from lookalike.dataset.schema import SCHEMA_VERSION
from lookalike.search import cache, diskcache

DATA = Path(__file__).resolve().parents[1] / "data"
QUERY = str(DATA / "queries" / "Tony_Blair_0010.jpg")


@pytest.fixture()
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A disk cache in a temporary folder that takes any table size."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(root))
    monkeypatch.setattr(diskcache, "MIN_ROWS", 1)
    cache.clear()
    return root


def _versions(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("matrices/*/faces/*"))


def test_a_new_process_maps_the_saved_matrix(cached: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(photos))
    first = ds.search(QUERY, top_k=3).hits
    assert len(_versions(cached)) == 1

    cache.clear()  # as if a new process: the in-memory cache is empty

    def no_db_load(*args: object) -> None:
        raise AssertionError("the matrix should come from the disk cache")

    monkeypatch.setattr(diskcache, "load_matrix", no_db_load)
    again = ds.search(QUERY, top_k=3).hits
    assert [(h.uri, h.face_id, round(h.distance, 5)) for h in again] == [
        (h.uri, h.face_id, round(h.distance, 5)) for h in first
    ]
    monkeypatch.undo()

    # a write makes a new version: the next search saves it and deletes the old one
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cached))
    monkeypatch.setattr(diskcache, "MIN_ROWS", 1)
    old = _versions(cached)
    (photos / "Tony_Blair" / "Tony_Blair_0001.jpg").unlink()
    ds.index(str(photos))
    hits = ds.search(QUERY, top_k=40).hits
    assert all("Tony_Blair_0001" not in h.uri for h in hits)
    assert len(_versions(cached)) == 1 and _versions(cached) != old


def test_a_damaged_cache_falls_back_to_the_dataset(cached: Path, tmp_path: Path) -> None:
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery"))
    expected = [h.uri for h in ds.search(QUERY, top_k=3).hits]
    (version,) = list(cached.glob("matrices/*/faces/*"))
    (version / "matrix.npy").write_bytes(b"garbage")
    cache.clear()
    assert [h.uri for h in ds.search(QUERY, top_k=3).hits] == expected


def test_cache_can_be_turned_off(cached: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_MATRIX_CACHE", "0")
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery" / "Tony_Blair"))
    assert ds.search(QUERY, top_k=1).hits[0].same_person
    assert not cached.exists()


def test_small_tables_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear()
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery" / "Tony_Blair"))
    ds.search(QUERY, top_k=1)
    assert not (tmp_path / "cache").exists()


def test_dataset_of_an_older_schema_is_migrated_on_read(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    ds = lookalike.open(path)
    ds.index(str(DATA / "gallery" / "Tony_Blair"))
    with duckdb.connect(str(path)) as con:  # turn it back into a schema-1 file
        for name in ("models", "object_tables", "object_cache", "vector_indexes"):
            con.execute(f"DROP TABLE IF EXISTS lookalike_sql_{name}")
        con.execute("UPDATE lookalike_meta SET value = '1' WHERE key = 'schema_version'")
    cache.clear()
    assert ds.search(QUERY, top_k=1).hits[0].same_person
    with duckdb.connect(str(path), read_only=True) as con:
        version = con.execute("SELECT value FROM lookalike_meta WHERE key = 'schema_version'").fetchall()[0][0]
        info = store.get_table(con, "faces")
        assert np.asarray(store.load_matrix(con, info).matrix).shape == (3, info.dim)
    assert int(version) == SCHEMA_VERSION
