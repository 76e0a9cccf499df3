"""Face matrices kept as float16: half the memory, searched exactly by faiss's SIMD float16 scan.

numpy has no float16 BLAS (a float16 matrix-vector product was 20x slower than float32), so a float16 matrix
lives inside a faiss ``IndexScalarQuantizer`` (``QT_fp16``), whose codes *are* the float16 values: the
matrix's array is a view of them, and exact search decodes them on the fly. Measured on LFW (1:N, fr-feature):
rank-1 97.80 % in float32 and in float16. Turn it on with ``LOOKALIKE_VECTORS=float16``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lookalike.dataset.store import FaceMatrix
from lookalike.search.distances import Distance, from_similarity
from lookalike.search.vindex._faiss import faiss as load_faiss

#: Rows converted to float16 per block while filling the quantizer.
_BLOCK = 65536


class HalfVectors:
    """A ``(n, d)`` float16 matrix held by a faiss scalar quantizer (see the module docstring)."""

    def __init__(self, matrix: np.ndarray) -> None:
        faiss = load_faiss()
        n, d = matrix.shape
        self.index: Any = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        for start in range(0, n, _BLOCK):
            self.index.add(np.ascontiguousarray(matrix[start : start + _BLOCK], dtype=np.float32))
        codes = faiss.rev_swig_ptr(self.index.codes.data(), n * d * 2) if n else np.zeros(0, np.uint8)
        self.array: np.ndarray = np.asarray(codes).view(np.float16).reshape(n, d)
        self._l2: Any = None

    def _l2_index(self) -> Any:
        """An L2 view of the same codes, made once (on the first euclidean search: it copies the codes)."""
        if self._l2 is None:
            faiss = load_faiss()
            l2: Any = faiss.IndexScalarQuantizer(self.array.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2)
            l2.codes = self.index.codes
            l2.ntotal = self.array.shape[0]
            l2.is_trained = True
            self._l2 = l2
        return self._l2

    def top_k(self, queries: np.ndarray, k: int, distance: Distance) -> tuple[np.ndarray, np.ndarray]:
        """Like :func:`lookalike.search.exact.top_k`, over the float16 rows."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = self.array.shape[0]
        k = min(k, n)
        if n == 0 or queries.shape[0] == 0:
            return np.zeros((queries.shape[0], 0), np.int64), np.zeros((queries.shape[0], 0), np.float32)
        if distance == "euclidean":  # rank by the L2 distance itself (rows are not exactly unit length)
            d2, idx = self._l2_index().search(queries, k)
            return idx.astype(np.int64), np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
        sim, idx = self.index.search(queries, k)
        q_sq = np.einsum("ij,ij->i", queries, queries)
        return idx.astype(np.int64), from_similarity(sim, distance, q_sq, np.ones_like(sim))


def to_half(fm: FaceMatrix) -> FaceMatrix:
    """The same face matrix with its vectors in float16 (the float32 array is released, and so is its second
    mapping for scattered reads: every distance then comes from the float16 rows)."""
    half = HalfVectors(fm.matrix)
    return dataclasses.replace(fm, matrix=half.array, half=half, scattered=None)


def exact_top_k(fm: FaceMatrix, queries: np.ndarray, k: int, distance: Distance) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over a face matrix, float32 or float16."""
    from lookalike.search.exact import top_k

    if isinstance(fm.half, HalfVectors):
        return fm.half.top_k(queries, k, distance)
    return top_k(fm.matrix, queries, k, distance)
