"""Building a faiss index for an :class:`~lookalike.search.vindex.spec.IndexSpec`, and keeping it current."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import InvalidArgument
from lookalike.search.vindex._faiss import faiss as load_faiss
from lookalike.search.vindex.refine import codes_view
from lookalike.search.vindex.spec import HNSW_COARSE_FROM, MIN_ROWS, PQ_MIN_ROWS, REFINE_FROM_ROWS, IndexSpec

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
    #: 4-bit scalar codes of every vector, in the one list's order (see :func:`wants_refine`), or None
    refine: Any = None


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


def wants_refine(factory: str, rows: int) -> bool:
    """Whether an index built as ``factory`` over ``rows`` vectors gets a second set of codes to narrow its
    candidates with.

    A one-list PQ fast-scan index (the default TREE_AH) scans every 4-bit PQ code and keeps thousands of
    candidates at 10M rows. Re-ranking them all from the stored float32 vectors reads one scattered page per
    candidate: at 10M rows 5,600 a query, and over many queries the whole 20 GB table ends up in memory (a
    search process's RSS measured 20.8 GB). 4-bit scalar codes (256 bytes a 512-d vector, mapped from their
    file) rank those candidates almost as the exact vectors do, so only the best few dozen are read back for the
    exact distances: the same process peaked at 3.55 GB (``REFINE_*`` in :mod:`~lookalike.search.vindex.spec`).
    From ``REFINE_FROM_ROWS`` vectors (50k), where the float32 matrix outgrows the CPU's cache, the codes also
    make the search faster: 500 candidates' scattered rows cost more than their codes and 50 rows.
    """
    return rows >= REFINE_FROM_ROWS and factory.startswith("IVF1,PQ") and factory.endswith("fs")


def new_refine(dim: int, spec: IndexSpec) -> Any:
    """An empty (untrained) 4-bit scalar quantizer index for :func:`wants_refine`."""
    faiss = load_faiss()

    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_4bit, metric(spec))


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
    training = rows(slice(0, count)) if sample >= count else rows(np.sort(rng.choice(count, sample, replace=False)))
    index.train(training)
    refine = new_refine(dim, spec) if wants_refine(factory, count) else None
    if refine is not None:
        refine.train(training)
    del training
    labels = uniq if dedup else ids.astype(np.int64)
    for start in range(0, count, _ADD_ROWS):
        part = slice(start, min(count, start + _ADD_ROWS))
        prepared = rows(part)
        index.add_with_ids(prepared, labels[part])
        if refine is not None:  # in the same order as the list's (one list: the order of adding)
            refine.add(prepared)
    return Built(index, uniq.astype(np.int64), lists, factory, unit, time.perf_counter() - started, refine)


def _quiet_training(index: Any) -> None:
    """Let k-means train on small tables without faiss's "please provide more training points" warnings (the
    exact re-rank, not the codebook, decides the distances)."""
    faiss = load_faiss()

    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.min_points_per_centroid = 1
    pq = getattr(ivf, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1


@dataclass(frozen=True, slots=True)
class Updated:
    ids: np.ndarray  # the sorted ids the index now holds
    added: int
    removed: int
    refine: Any = None  # the refine codes in the list's new order


def update(
    spec: IndexSpec, index: Any, held: np.ndarray, matrix: np.ndarray, ids: np.ndarray, refine: Any = None
) -> Updated:
    """Bring ``index`` (holding sorted ``held`` ids) to exactly the rows ``(matrix, ids)``: remove ids no longer
    present, add new ones. ``refine`` (the codes of :func:`wants_refine`, in the list's order) is left as it
    is; the result holds new ones in the list's new order (removing ids moves others within the list)."""
    faiss = load_faiss()

    uniq, first = np.unique(ids, return_index=True)
    gone = np.setdiff1d(held, uniq, assume_unique=True)
    new_mask = ~np.isin(uniq, held, assume_unique=True)
    before = list_ids(index) if refine is not None else None
    if gone.size:
        index.remove_ids(faiss.IDSelectorBatch(gone))
    if new_mask.any():
        rows = first[new_mask]
        index.add_with_ids(prepare(spec, matrix[rows]), uniq[new_mask])
    new_refine = None
    if refine is not None and before is not None and (gone.size or new_mask.any()):
        new_refine = _realign(spec, refine, before, list_ids(index), uniq, first, matrix)
    elif refine is not None:
        new_refine = refine
    return Updated(uniq.astype(np.int64), int(new_mask.sum()), int(gone.size), new_refine)


def list_ids(index: Any) -> np.ndarray:
    """The ids of a one-list IVF index, in the list's order (a copy)."""
    faiss = load_faiss()

    ivf = faiss.extract_index_ivf(index)
    size = int(ivf.invlists.list_size(0))
    if size == 0:
        return np.zeros(0, np.int64)
    return np.array(faiss.rev_swig_ptr(ivf.invlists.get_ids(0), size), dtype=np.int64, copy=True)


def _realign(
    spec: IndexSpec,
    refine: Any,
    before: np.ndarray,
    after: np.ndarray,
    uniq: np.ndarray,
    first: np.ndarray,
    matrix: np.ndarray,
) -> Any:
    """The refine codes of the ids ``after`` (the list's new order): those held ``before`` moved, new ones
    encoded from ``matrix`` (``uniq``/``first``: the rows' sorted unique ids and the first row of each)."""
    faiss = load_faiss()

    size = int(refine.code_size)
    old = codes_view(refine, int(refine.ntotal))
    order = np.argsort(before, kind="stable")
    ordered = before[order]
    pos = np.minimum(np.searchsorted(ordered, after), max(before.size - 1, 0))
    found = ordered[pos] == after if before.size else np.zeros(after.size, bool)
    del ordered
    # the new codes are written in place into the new index's own memory (at 10M faces a copy is 2.6 GB)
    out = faiss.IndexScalarQuantizer(int(refine.d), refine.sq.qtype, refine.metric_type)
    out.sq = refine.sq  # the trained ranges
    out.is_trained = True
    out.codes.resize(int(after.size) * size)
    codes = codes_view(out, int(after.size))
    source = order[pos]
    for start in range(0, after.size, _ADD_ROWS):  # a chunk at a time: no whole-size temporary
        part = slice(start, min(after.size, start + _ADD_ROWS))
        keep = found[part]
        codes[part][keep] = old[source[part][keep]]
    fresh = after[~found]
    if fresh.size:
        rows = first[np.searchsorted(uniq, fresh)]
        codes[~found] = refine.sa_encode(prepare(spec, matrix[rows])).reshape(-1, size)
    out.ntotal = int(after.size)
    return out
