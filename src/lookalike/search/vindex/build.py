"""Building a faiss index for an :class:`~lookalike.search.vindex.spec.IndexSpec`, and keeping it current."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import InvalidArgument
from lookalike.search.vindex._faiss import faiss as load_faiss
from lookalike.search.vindex.spec import HNSW_COARSE_FROM, MIN_ROWS, PQ_MIN_ROWS, IndexSpec

#: Training points per list, and at most this many in all (a random, seeded sample of the table).
_TRAIN_PER_LIST = 64
_TRAIN_MAX = 100_000
_TRAIN_MIN = 20_000
#: Vectors prepared and added at a time, so that a build never holds a second copy of a large table.
_ADD_ROWS = 1 << 18


@dataclass(frozen=True, slots=True)
class Built:
    index: Any  # faiss.Index
    ids: np.ndarray  # sorted unique ids it holds
    lists: int
    factory: str
    unit: bool  # every vector had unit length (then all three distances rank alike)
    seconds: float


def pq_subquantizers(dim: int) -> int:
    """Sub-quantizers for 4-bit PQ codes: one per 8 dimensions (32 bytes for 512-d), at least 32 for small
    dimensions (16 bytes), and dividing ``dim``."""
    for m in range(max(1, dim // 8, min(dim // 2, 32)), 0, -1):
        if dim % m == 0 and m % 2 == 0:
            return m
    return 1


def factory_string(spec: IndexSpec, dim: int, lists: int, rows: int = PQ_MIN_ROWS) -> str:
    coarse = f"IVF{lists}_HNSW32" if lists > HNSW_COARSE_FROM else f"IVF{lists}"
    if spec.index_type == "IVF" or rows < PQ_MIN_ROWS:
        return f"{coarse},Flat"
    return f"{coarse},PQ{pq_subquantizers(dim)}x4fs"


def metric(spec: IndexSpec) -> int:
    faiss = load_faiss()

    return int(faiss.METRIC_L2 if spec.distance == "euclidean" else faiss.METRIC_INNER_PRODUCT)


def prepare(spec: IndexSpec, matrix: np.ndarray) -> np.ndarray:
    """The vectors as the index sees them: unit rows for COSINE (or TREE_AH's L2 normalisation)."""
    mat = np.ascontiguousarray(matrix, dtype=np.float32)
    if spec.distance == "cosine" or spec.normalization == "L2":
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        mat = np.ascontiguousarray(mat / np.maximum(norms, 1e-30))
    return mat


def build(spec: IndexSpec, matrix: np.ndarray, ids: np.ndarray) -> Built:
    """Train and fill an index over ``matrix`` rows named by ``ids`` (duplicate ids are stored once)."""
    faiss = load_faiss()

    n = int(matrix.shape[0])
    if n < MIN_ROWS:
        raise InvalidArgument(
            f"a vector index needs at least {MIN_ROWS} vector; the table has {n}",
            hint="an empty table is searched exactly; the index is built when it has rows",
        )
    dim = int(matrix.shape[1])
    lists = spec.lists_for(n) if n >= PQ_MIN_ROWS or spec.index_type == "IVF" else 1
    if lists > n:
        raise InvalidArgument(f"num_lists {lists} is above the table's {n} vectors", hint=f"use num_lists <= {n}")
    started = time.perf_counter()
    uniq, first = np.unique(ids, return_index=True)
    dedup = len(uniq) != n
    count = len(uniq)
    norms = np.linalg.norm(np.asarray(matrix[: min(n, 10_000)], np.float32), axis=1)
    unit = bool(np.all(np.abs(norms - 1.0) < 1e-3))
    factory = factory_string(spec, dim, lists, count)
    index = faiss.index_factory(dim, factory, metric(spec))
    _quiet_training(index)

    def rows(picked: np.ndarray | slice) -> np.ndarray:
        """The prepared vectors of the ``picked`` unique ids (read from ``matrix`` only now: it may be a
        memory-mapped file far larger than memory)."""
        return prepare(spec, matrix[first[picked]] if dedup else matrix[picked])

    sample = min(count, max(_TRAIN_MIN, _TRAIN_PER_LIST * lists), _TRAIN_MAX)
    rng = np.random.default_rng(0)
    index.train(rows(slice(0, count)) if sample >= count else rows(np.sort(rng.choice(count, sample, replace=False))))
    labels = uniq if dedup else ids.astype(np.int64)
    for start in range(0, count, _ADD_ROWS):
        part = slice(start, min(count, start + _ADD_ROWS))
        index.add_with_ids(rows(part), labels[part])
    return Built(index, uniq.astype(np.int64), lists, factory, unit, time.perf_counter() - started)


def _quiet_training(index: Any) -> None:
    """Let k-means train on small tables without faiss's "please provide more training points" warnings (the
    exact re-rank, not the codebook, decides the distances)."""
    faiss = load_faiss()

    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.min_points_per_centroid = 1
    pq = getattr(ivf, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1


def update(
    spec: IndexSpec, index: Any, held: np.ndarray, matrix: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, int, int]:
    """Bring ``index`` (holding sorted ``held`` ids) to exactly the rows ``(matrix, ids)``: remove ids no longer
    present, add new ones. Returns the new sorted ids, and how many were added and removed."""
    faiss = load_faiss()

    uniq, first = np.unique(ids, return_index=True)
    gone = np.setdiff1d(held, uniq, assume_unique=True)
    new_mask = ~np.isin(uniq, held, assume_unique=True)
    if gone.size:
        index.remove_ids(faiss.IDSelectorBatch(gone))
    if new_mask.any():
        rows = first[new_mask]
        index.add_with_ids(prepare(spec, matrix[rows]), uniq[new_mask])
    return uniq.astype(np.int64), int(new_mask.sum()), int(gone.size)
