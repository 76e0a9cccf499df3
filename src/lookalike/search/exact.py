"""Exact (brute-force) top-k search with BLAS over a contiguous matrix.

One matrix product ``Q @ X.T`` gives every similarity; :func:`numpy.argpartition` picks the top k per query
without sorting all n. Queries are processed in blocks so the similarity block stays within a memory budget.
For a single query this reads the matrix once, which is the memory-bandwidth floor for exact search.
"""

from __future__ import annotations

import numpy as np

from lookalike.errors import InvalidArgument, SearchError
from lookalike.search.distances import Distance, from_similarity

#: Upper bound on the size of one block of similarities, in float32 values (256 MiB).
_BLOCK_VALUES = 64 * 1024 * 1024


def top_k(
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    distance: Distance = "cosine",
    *,
    row_sq_norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(indices, distances)``, both ``(m, min(k, n))``, nearest first, for each query row.

    ``matrix`` is ``(n, d)`` float32 and ``queries`` ``(m, d)``. Ties keep the lower row index first.
    """
    if k < 1:
        raise InvalidArgument(f"top_k must be at least 1, got {k}")
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    n, d = matrix.shape
    if queries.shape[1] != d:
        raise SearchError(f"query vectors have {queries.shape[1]} dimensions but the table has {d}")
    m = queries.shape[0]
    k = min(k, n)
    if n == 0 or m == 0:
        return np.zeros((m, 0), np.int64), np.zeros((m, 0), np.float32)
    q_sq = np.einsum("ij,ij->i", queries, queries)
    if distance == "euclidean" and row_sq_norms is None:
        row_sq_norms = np.einsum("ij,ij->i", matrix, matrix)
    block = max(1, _BLOCK_VALUES // n)
    out_idx = np.empty((m, k), np.int64)
    out_dist = np.empty((m, k), np.float32)
    for start in range(0, m, block):
        stop = min(m, start + block)
        # (n, b): one pass over the matrix; matrix @ q.T is a plain gemv for one query, the fastest layout
        sim = matrix @ queries[start:stop].T
        if distance == "euclidean":
            assert row_sq_norms is not None
            # rank by 2s - |x|^2, which orders like the euclidean distance for a fixed query
            score = 2.0 * sim - row_sq_norms[:, None]
        else:
            score = sim
        idx = largest_k(score, k)  # (b, k)
        top_sim = sim[idx, np.arange(stop - start)[:, None]]
        x_sq = row_sq_norms[idx] if row_sq_norms is not None else np.ones_like(top_sim)
        out_idx[start:stop] = idx
        out_dist[start:stop] = from_similarity(top_sim, distance, q_sq[start:stop], x_sq)
    return out_idx, out_dist


#: Rows per block when pre-selecting candidates by block maxima.
_CANDIDATE_BLOCK = 256


def largest_k(score: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` largest values of each column of ``score`` (n, b), largest first.

    Ties keep the lower index first. Instead of a full partition of every column, it takes the maximum of
    each block of 256 rows; the k-th largest block maximum is a lower bound for the k-th largest value, so
    only the values at or above it are candidates (typically a few per block that holds a top-k value).
    """
    n, b = score.shape
    blocks = n // _CANDIDATE_BLOCK
    if blocks < 4 * k:
        if k < n:
            cand = np.argpartition(score, n - k, axis=0)[n - k :]  # (k, b), unordered
        else:
            cand = np.broadcast_to(np.arange(n)[:, None], (n, b))
        rows = cand.ravel()
        cols = np.broadcast_to(np.arange(b), cand.shape).ravel()
    else:
        head = score[: blocks * _CANDIDATE_BLOCK].reshape(blocks, _CANDIDATE_BLOCK, b).max(axis=1)  # (blocks, b)
        floor = np.partition(head, blocks - k, axis=0)[blocks - k]  # (b,): k-th largest block maximum
        rows, cols = np.nonzero(score >= floor)
    vals = score[rows, cols]
    order = np.lexsort((rows, -vals, cols))  # by column, then value descending, then row
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(cols, np.arange(b))
    take = starts[:, None] + np.arange(k)
    return rows[take]
