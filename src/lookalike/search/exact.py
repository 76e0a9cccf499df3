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
        sim = queries[start:stop] @ matrix.T  # (b, n): the one pass over the matrix
        if distance == "euclidean":
            assert row_sq_norms is not None
            # rank by -(|x|^2 - 2s), which orders like the euclidean distance for a fixed query
            score = 2.0 * sim - row_sq_norms[None, :]
        else:
            score = sim
        if k < n:
            # largest k scores; partitioning at n - k avoids negating (copying) the whole block
            part = np.argpartition(score, n - k, axis=1)[:, n - k :]
        else:
            part = np.broadcast_to(np.arange(n), (stop - start, n)).copy()
        part_score = np.take_along_axis(score, part, axis=1)
        order = np.lexsort((part, -part_score), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        top_sim = np.take_along_axis(sim, idx, axis=1)
        x_sq = row_sq_norms[idx] if row_sq_norms is not None else np.ones_like(top_sim)
        out_idx[start:stop] = idx
        out_dist[start:stop] = from_similarity(top_sim, distance, q_sq[start:stop], x_sq)
    return out_idx, out_dist
