"""Refine codes through the index life cycle of :mod:`lookalike.search.vindex.manage`: built with a large table,
written beside the index, loaded with it, carried over a refresh (re-aligned with the list), and used by a search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lookalike.search.vindex.build as build_mod
from lookalike.dataset.vindexes import IndexRecord
from lookalike.search.exact import top_k
from lookalike.search.vindex import manage
from lookalike.search.vindex.build import list_ids
from lookalike.search.vindex.searcher import search_rows
from lookalike.search.vindex.spec import SearchKnobs, parse_index_options


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_refine_codes_are_built_loaded_and_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod, "REFINE_FROM_ROWS", 1000)  # a "large" table for this test (default 50k)
    rng = np.random.default_rng(3)
    x = _unit(rng.standard_normal((5000, 64)))
    q = _unit(x[:30] + 0.5 * rng.standard_normal((30, 64)))
    ids = np.arange(5000, dtype=np.int64) * 3 + 1
    dataset = str(tmp_path / "d.duckdb")
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    rec = IndexRecord("main.faces", "faces_index", "embedding", spec)
    rec = manage.build_record(dataset, rec, manage.VectorSource(ids[:4000], x[:4000]))
    assert rec.build is not None and "refine.faiss" in rec.build["ref"]["sha256"]
    loaded = manage.load(dataset, rec)
    assert loaded.refine is not None and loaded.refine.ntotal == 4000
    # a refresh: 500 rows gone, 1,000 new ones
    cur = np.r_[np.arange(500, 5000)]
    fresh = manage.refresh_record(dataset, rec, manage.VectorSource(ids[cur], x[cur]))
    assert fresh is not None and fresh.build is not None and "refine.faiss" in fresh.build["ref"]["sha256"]
    again = manage.load(dataset, fresh)
    assert again.refine is not None and again.refine.ntotal == cur.size
    decoded = again.refine.reconstruct_n(0, cur.size)
    truth = x[(list_ids(again.index) - 1) // 3]
    assert (np.einsum("ij,ij->i", decoded, truth) / np.linalg.norm(decoded, axis=1)).min() > 0.9
    rows, dist, usage = search_rows(again, x[cur], ids[cur], q, 10, "cosine", SearchKnobs())
    assert usage.reranked_exactly == 50 and usage.to_dict()["candidates_reranked_exactly"] == 50
    # the exact re-rank can read its rows with pread: the same answer
    from lookalike.search.rowreader import RowReader

    np.save(tmp_path / "rows.npy", x[cur])
    read = search_rows(again, x[cur], ids[cur], q, 10, "cosine", SearchKnobs(), reader=RowReader(tmp_path / "rows.npy"))
    assert np.array_equal(read[0], rows) and np.array_equal(read[1], dist)
    exact, exact_d = top_k(x[cur], q, 10, "cosine")
    assert (rows[:, 0] == exact[:, 0]).mean() >= 0.95
    assert np.allclose(dist[:, 0][rows[:, 0] == exact[:, 0]], exact_d[:, 0][rows[:, 0] == exact[:, 0]], atol=1e-6)
