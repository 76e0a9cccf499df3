"""Exact top-k search: results must equal a naive reference computation for every distance."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import InvalidArgument, SearchError
from lookalike.search.distances import parse_distance, threshold_for
from lookalike.search.exact import top_k


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference(matrix: np.ndarray, q: np.ndarray, k: int, distance: str) -> tuple[np.ndarray, np.ndarray]:
    if distance == "cosine":
        d = 1 - q @ matrix.T
    elif distance == "dot":
        d = -(q @ matrix.T)
    else:
        d = np.linalg.norm(q[:, None, :] - matrix[None, :, :], axis=2)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot"])
def test_top_k_matches_reference(distance: str) -> None:
    rng = np.random.default_rng(0)
    matrix = _unit(rng, 500, 32)
    queries = _unit(rng, 7, 32)
    idx, dist = top_k(matrix, queries, 5, parse_distance(distance))
    ref_idx, ref_dist = _reference(matrix, queries, 5, distance)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)
    assert np.all(np.diff(dist, axis=1) >= 0), "results must be sorted nearest first"


def test_euclidean_ranks_unnormalised_rows_correctly() -> None:
    matrix = np.array([[10.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    idx, dist = top_k(matrix, np.array([[1.0, 0.0]], np.float32), 3, "euclidean")
    assert idx[0].tolist() == [1, 2, 0]
    np.testing.assert_allclose(dist[0], [0.0, np.sqrt(2), 9.0], atol=1e-5)


def test_k_larger_than_table_and_blocks() -> None:
    rng = np.random.default_rng(1)
    matrix = _unit(rng, 3, 8)
    idx, dist = top_k(matrix, _unit(rng, 2, 8), 10)
    assert idx.shape == (2, 3) and dist.shape == (2, 3)
    assert sorted(idx[0].tolist()) == [0, 1, 2]


def test_query_is_its_own_nearest_neighbour() -> None:
    rng = np.random.default_rng(2)
    matrix = _unit(rng, 1000, 64)
    idx, dist = top_k(matrix, matrix[[3, 500, 999]], 1)
    assert idx[:, 0].tolist() == [3, 500, 999]
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-5)


def test_empty_table_and_errors() -> None:
    idx, _ = top_k(np.zeros((0, 4), np.float32), np.ones((2, 4), np.float32), 5)
    assert idx.shape == (2, 0)
    with pytest.raises(InvalidArgument):
        top_k(np.ones((3, 4), np.float32), np.ones((1, 4), np.float32), 0)
    with pytest.raises(SearchError, match="dimensions"):
        top_k(np.ones((3, 4), np.float32), np.ones((1, 5), np.float32), 1)
    with pytest.raises(InvalidArgument, match="unknown distance"):
        parse_distance("manhattan")


def test_threshold_conversions_agree() -> None:
    """A pair exactly at the cosine threshold sits exactly at the converted threshold in every distance."""
    cos_thr = 0.6
    a = np.array([1.0, 0.0], np.float32)
    sim = 1 - cos_thr
    b = np.array([sim, np.sqrt(1 - sim**2)], np.float32)
    assert abs((1 - a @ b) - threshold_for("cosine", cos_thr)) < 1e-6
    assert abs(-(a @ b) - threshold_for("dot", cos_thr)) < 1e-6
    assert abs(np.linalg.norm(a - b) - threshold_for("euclidean", cos_thr)) < 1e-6
    assert parse_distance("DOT_PRODUCT") == "dot" and parse_distance("EUCLIDEAN") == "euclidean"


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot"])
@pytest.mark.parametrize("k", [1, 5, 37])
def test_block_candidate_path_matches_reference(distance: str, k: int) -> None:
    """Large tables take the block-maxima pre-selection; it must give exactly the reference top-k."""
    rng = np.random.default_rng(k)
    matrix = _unit(rng, 30_000, 16)
    matrix[100:110] = matrix[5]  # exact ties: lower index first
    queries = np.vstack([_unit(rng, 6, 16), matrix[5:6]])
    idx, dist = top_k(matrix, queries, k, parse_distance(distance))
    ref_idx, ref_dist = _reference(matrix, queries, k, distance)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-4)
    np.testing.assert_array_equal(idx[:-1], ref_idx[:-1])
    if k > 1:
        assert idx[-1, : min(k, 11)].tolist() == [5, *range(100, 110)][: min(k, 11)]
