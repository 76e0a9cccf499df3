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


def test_the_cache_is_written_batch_by_batch(cached: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table is cached straight from DuckDB a few rows at a time (never held whole), and the mapped matrix,
    ids, boxes and URIs are the dataset's own."""
    import pickle

    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery"))
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as con:
        info = store.get_table(con, "faces")
        want = store.load_matrix(con, info)
        monkeypatch.setattr(diskcache, "STREAM_ROWS", 2)
        got = diskcache.load_cached_matrix(con, str(tmp_path / "d.duckdb"), info)
    assert isinstance(got.matrix, np.memmap) and isinstance(got.uri, store.UriColumn)
    order = np.argsort(got.face_id)
    same = np.argsort(want.face_id)
    np.testing.assert_array_equal(np.asarray(got.matrix)[order], want.matrix[same])
    np.testing.assert_array_equal(got.face_id[order], want.face_id[same])
    np.testing.assert_array_equal(got.bbox[order], want.bbox[same])
    assert [got.uri[i] for i in order] == [str(u) for u in want.uri[same]]
    assert got.uri.tolist() == [got.uri[i] for i in range(len(got.uri))]
    assert got.has_uri(got.uri[0]) and not got.has_uri("nowhere/none.jpg")
    assert pickle.loads(pickle.dumps(got.uri)).tolist() == got.uri.tolist()  # pickled with its values
    assert len(_versions(cached)) == 1


def test_a_table_that_changes_while_cached_is_not_cached(
    cached: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows counted before the stream and rows streamed disagree (a writer committed in between): nothing is
    cached, and the matrix comes from the dataset as it is."""
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery"))
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as con:
        info = store.get_table(con, "faces")
        real = diskcache._signature
        monkeypatch.setattr(diskcache, "_signature", lambda c, i: (real(c, i)[0] + 1, *real(c, i)[1:]))
        got = diskcache.load_cached_matrix(con, str(tmp_path / "d.duckdb"), info)
        assert got.size == store.load_matrix(con, info).size
    assert not isinstance(got.matrix, np.memmap)
    assert not list(cached.glob("matrices/*/faces/*")) or all(
        p.name.startswith(".tmp-") for p in cached.glob("matrices/*/faces/*")
    )


def test_dataset_connections_draw_no_progress_bar(tmp_path: Path) -> None:
    """DuckDB draws a progress bar on stdout for queries over ~2 s (streaming a large table into the cache): on
    Lookalike's connections it is off, so `--json` output stays JSON."""
    from lookalike.dataset.connection import open_connection

    for read_only in (False, True):
        con = open_connection(tmp_path / "d.duckdb", read_only=read_only)
        try:
            assert con.execute("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]
        finally:
            con.close()


def test_a_vector_index_reranks_from_the_scattered_mapping(cached: Path, tmp_path: Path) -> None:
    """A cached matrix is mapped twice: as it is, for exact search, and advised for random reads, for a vector
    index's re-rank; both hold the same rows, and an index search that looks at every row is exact search."""
    ds = lookalike.open(tmp_path / "d.duckdb")
    ds.index(str(DATA / "gallery"), cluster=False)
    ds.create_vector_index("faces", index_type="TREE_AH")
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as con:
        info = store.get_table(con, "faces")
        fm = diskcache.load_cached_matrix(con, str(tmp_path / "d.duckdb"), info)
    assert isinstance(fm.scattered, np.memmap) and fm.scattered is not fm.matrix
    np.testing.assert_array_equal(np.asarray(fm.scattered), np.asarray(fm.matrix))
    assert fm.rows_for_gather is fm.scattered
    # and it is read row by row with pread, for the re-rank behind an index's refine codes
    assert fm.reader is not None and fm.reader.shape == fm.matrix.shape
    rows = np.array([len(fm.matrix) - 1, 0, 3])
    np.testing.assert_array_equal(fm.reader[rows], np.asarray(fm.matrix)[rows])
    cache.clear()
    full = ds.search(QUERY, top_k=5, fraction_lists=1.0)
    exact = ds.search(QUERY, top_k=5, exact=True)
    assert full.index_usage is not None and full.index_usage.mode == "FULLY_USED"
    assert [(h.face_id, h.distance) for h in full.hits] == [(h.face_id, h.distance) for h in exact.hits]
