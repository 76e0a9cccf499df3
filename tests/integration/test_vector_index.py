"""Vector indexes on a face table, end to end on a real DuckDB file, real photos and real faiss files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lookalike
from lookalike import ingest
from lookalike.errors import InvalidArgument
from lookalike.search.vindex import files

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
QUERIES = sorted(str(p) for p in (DATA / "queries").glob("*.jpg"))


@pytest.fixture()
def ds(tmp_path: Path, photos: Path) -> lookalike.Dataset:
    d = lookalike.open(tmp_path / "t.duckdb")
    d.index(str(photos))
    return d


def _rows(result: lookalike.api.SearchResult) -> list[tuple[str, int, int]]:
    return [(h.query_uri, h.rank, h.face_id) for h in result.hits]


@pytest.mark.parametrize("index_type", ["TREE_AH", "IVF"])
def test_index_serves_searches_like_exact(ds: lookalike.Dataset, index_type: str) -> None:
    info = ds.create_vector_index(index_type=index_type)
    assert info["coverage_percentage"] == 100.0 and info["unindexed_row_count"] == 0
    assert info["ddl"].startswith(
        f"CREATE VECTOR INDEX faces_index ON faces(embedding) OPTIONS(index_type = '{index_type}'"
    )
    exact = ds.search(QUERIES, top_k=5, largest=True, exact=True)
    assert exact.index_usage is not None and exact.index_usage.reasons[0][0] == "INDEX_SUPPRESSED_BY_FUNCTION_OPTION"
    full = ds.search(QUERIES, top_k=5, largest=True, fraction_lists=1.0)
    assert full.index_usage is not None and full.index_usage.mode == "FULLY_USED"
    assert _rows(full) == _rows(exact)
    assert [h.same_person for h in full.hits] == [h.same_person for h in exact.hits]
    default = ds.search(QUERIES, top_k=1, largest=True)
    assert default.index_usage is not None and default.index_usage.mode == "FULLY_USED"
    assert [h.face_id for h in default.hits] == [h.face_id for h in exact.hits if h.rank == 1]


def test_faces_added_before_a_refresh_are_found_and_index_runs_refresh(
    ds: lookalike.Dataset, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(photos / "Serena_Williams")
    ds.index(str(photos))
    ds.create_vector_index()
    shutil.copytree(DATA / "gallery" / "Serena_Williams", photos / "Serena_Williams")
    shutil.rmtree(photos / "Tony_Blair")
    # a job that committed its faces but died before it refreshed the index
    monkeypatch.setattr(ingest, "refresh_vector_indexes", lambda path, table: [])
    ds.index(str(photos))
    (listed,) = ds.vector_indexes()
    assert listed["unindexed_row_count"] == 3 and listed["coverage_percentage"] < 100
    serena = str(DATA / "queries" / "Serena_Williams_0010.jpg")
    found = ds.search(serena, top_k=3, largest=True)
    assert found.index_usage is not None and found.index_usage.mode == "PARTIALLY_USED"
    assert found.index_usage.unindexed_rows == 3
    assert all("Serena_Williams" in h.uri for h in found.hits)
    blair = ds.search(str(DATA / "queries" / "Tony_Blair_0010.jpg"), top_k=10, largest=True)
    assert not any("Tony_Blair" in h.uri for h in blair.hits)  # deleted faces never come back
    monkeypatch.undo()
    report = ds.index(str(photos))  # nothing new to embed, but the index catches up
    assert report.vector_indexes == [{"name": "faces_index", "refreshed": True, "rows": 33}]
    (listed,) = ds.vector_indexes()
    assert listed["coverage_percentage"] == 100.0 and listed["drift"] > 0
    again = ds.search(serena, top_k=3, largest=True)
    assert again.index_usage is not None and again.index_usage.mode == "FULLY_USED"
    assert [h.face_id for h in again.hits] == [h.face_id for h in found.hits]


def test_a_broken_index_file_falls_back_to_exact_search(ds: lookalike.Dataset, tmp_path: Path) -> None:
    ds.create_vector_index()
    exact = ds.search(QUERIES, top_k=3, largest=True, exact=True)
    root = files.index_root(ds.path)
    (index_file,) = root.glob("*/*/index.faiss")
    index_file.write_bytes(index_file.read_bytes()[:100])  # truncated
    from lookalike.search.vindex import manage

    manage._LOADED.clear()  # a new process
    result = ds.search(QUERIES, top_k=3, largest=True)
    assert result.index_usage is not None and result.index_usage.mode == "UNUSED"
    assert result.index_usage.reasons[0][0] == "INDEX_FILE_ERROR"
    assert _rows(result) == _rows(exact)
    (listed,) = ds.vector_indexes()
    assert listed["index_status"] == "BROKEN" and "checksum" in listed["error"]
    rebuilt = ds.rebuild_vector_index()
    assert rebuilt["index_status"] == "ACTIVE"
    assert ds.search(QUERIES, top_k=3, largest=True).index_usage.mode == "FULLY_USED"  # type: ignore[union-attr]
    for path in root.glob("*/*/index.faiss"):  # missing (the new build's, and the previous one kept beside it)
        os.remove(path)
    manage._LOADED.clear()
    assert ds.search(QUERIES[:1], top_k=3, largest=True).index_usage.mode == "UNUSED"  # type: ignore[union-attr]


def test_a_build_killed_half_way_keeps_the_previous_index(
    ds: lookalike.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ds.create_vector_index(index_type="IVF")
    from lookalike.search.vindex import _faiss

    real = _faiss.faiss()

    class Dies:
        def __getattr__(self, name: str) -> object:
            if name == "write_index":

                def write_index(index: object, path: str) -> None:
                    Path(path).write_bytes(b"half an index")
                    raise KeyboardInterrupt  # killed while writing

                return write_index
            return getattr(real, name)

    monkeypatch.setattr(files, "load_faiss", lambda: Dies())
    with pytest.raises(KeyboardInterrupt):
        ds.rebuild_vector_index()
    monkeypatch.undo()
    (listed,) = ds.vector_indexes()
    assert listed["index_type"] == "IVF" and listed["ddl"] == first["ddl"] and listed["index_status"] == "ACTIVE"
    assert ds.search(QUERIES[:2], top_k=2, largest=True).index_usage.mode == "FULLY_USED"  # type: ignore[union-attr]
    assert not list(files.index_root(ds.path).glob("*/.tmp-*"))  # the half-written folder was removed


def test_bad_requests_and_small_tables(ds: lookalike.Dataset, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="num_lists 500 is above the 36 vectors"):
        ds.create_vector_index(index_type="IVF", num_lists=500)
    with pytest.raises(InvalidArgument, match="has no vector index"):
        ds.rebuild_vector_index()
    ds.create_vector_index()
    with pytest.raises(InvalidArgument, match="already has vector index faces_index"):
        ds.create_vector_index(index_type="IVF")
    small = lookalike.open(tmp_path / "small.duckdb")
    small.index(str(DATA / "gallery" / "Tony_Blair"))
    info = small.create_vector_index()  # 3 faces: the index keeps them exact
    assert info["factory"] == "IVF1,Flat" and info["coverage_percentage"] == 100.0
    found = small.search(QUERIES[-1], top_k=2, largest=True)
    assert found.index_usage is not None and found.index_usage.mode == "FULLY_USED"
    small.index(str(DATA / "gallery"))  # grown past 64 faces? no: 36, still exact storage
    assert small.vector_indexes()[0]["factory"] == "IVF1,Flat"
    ds.drop_table("faces")
    assert not any(files.index_root(ds.path).glob("*/*"))  # dropping the table deleted its index files


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_cli_vector_index_commands(ds: lookalike.Dataset) -> None:
    made = _cli("vector-index", "create", "--dataset", ds.path, "--type", "tree_ah", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["index_name"] == "faces_index"
    listed = _cli("vector-index", "list", "--dataset", ds.path)
    assert "faces_index" in listed.stdout and "TREE_AH" in listed.stdout
    tables = _cli("tables", "--dataset", ds.path)
    assert "faces_index TREE_AH 100%" in tables.stdout
    searched = _cli("search", QUERIES[0], "--dataset", ds.path, "--largest", "--json", "--fraction-lists", "1")
    assert searched.returncode == 0, searched.stderr
    assert "vector index faces_index: FULLY_USED" in searched.stderr
    assert len(json.loads(searched.stdout)) == 5  # the JSON rows are as they were
    exact = _cli("search", QUERIES[0], "--dataset", ds.path, "--largest", "--json", "--exact")
    assert json.loads(exact.stdout) == json.loads(searched.stdout)
    bad = _cli("vector-index", "create", "--dataset", ds.path, "--type", "IVF", "--num-lists", "900")
    assert bad.returncode == 1 and "already has vector index" in bad.stderr
    dropped = _cli("vector-index", "drop", "--dataset", ds.path)
    assert dropped.returncode == 0 and "dropped vector index faces_index" in dropped.stdout


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot"])
def test_float16_vectors_search_like_float32(
    ds: lookalike.Dataset, monkeypatch: pytest.MonkeyPatch, distance: str
) -> None:
    from lookalike.search import cache

    full = ds.search(QUERIES, top_k=5, largest=True, distance=distance)
    monkeypatch.setenv("LOOKALIKE_VECTORS", "float16")
    cache.clear()
    half = ds.search(QUERIES, top_k=5, largest=True, distance=distance)
    assert [h.face_id for h in half.hits if h.rank == 1] == [h.face_id for h in full.hits if h.rank == 1]
    assert max(abs(a.distance - b.distance) for a, b in zip(half.hits, full.hits, strict=True)) < 2e-3
    ds.create_vector_index()
    indexed = ds.search(QUERIES, top_k=5, largest=True, distance=distance)
    assert indexed.index_usage is not None and indexed.index_usage.mode == "FULLY_USED"
    assert [h.face_id for h in indexed.hits if h.rank == 1] == [h.face_id for h in full.hits if h.rank == 1]
    cache.clear()
