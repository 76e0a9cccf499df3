"""Searching with an index, never missing a row: index candidates re-ranked exactly, merged with the rows the
index does not hold.

For a search over the current rows of a table (``matrix`` with one id per row):

1. rows whose id the index does not hold (written after its build) are searched exactly;
2. the index is searched with an id selector that admits only ids present among the current rows, so rows
   deleted since the build, or left out by a pre-filter, never take a place in the top k;
3. every candidate's distance is computed from the stored vector (never from a compressed code), and the
   two parts are merged into the top k, nearest first (ties: lower row first, as exact search).

So an index changes which rows are looked at, never a distance; with ``fraction_lists_to_search`` 1.0 the
answer is the exact one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.search.distances import Distance
from lookalike.search.exact import top_k as exact_top_k
from lookalike.search.vindex._faiss import faiss as load_faiss
from lookalike.search.vindex.flatscan import flat_scan
from lookalike.search.vindex.ids import in_sorted
from lookalike.search.vindex.spec import (
    DEFAULT_FRACTION_LISTS,
    DISTANCE_NAMES,
    HNSW_COARSE_FROM,
    REFINE_EXACT_MIN,
    REFINE_EXACT_PER_K,
    RERANK_MIN,
    RERANK_PER_K,
    RERANK_ROWS,
    RERANK_STEEP_EXP,
    RERANK_STEEP_FROM,
    IndexSpec,
    SearchKnobs,
)

FULLY_USED = "FULLY_USED"
PARTIALLY_USED = "PARTIALLY_USED"
UNUSED = "UNUSED"

#: Gathered candidate vectors per block, in float32 values (64 MiB).
_GATHER_VALUES = 16 * 1024 * 1024


@dataclass(slots=True)
class LoadedIndex:
    """A built index in memory, with what the searcher needs to know about it."""

    name: str
    spec: IndexSpec
    index: Any  # faiss.Index
    ids: np.ndarray  # sorted unique ids it holds
    lists: int
    unit: bool
    dim: int
    #: the codes as a plain fast-scan index (see :mod:`~lookalike.search.vindex.flatscan`): None until first
    #: asked for, False when the index has none
    flat: Any = None
    #: 4-bit scalar codes in the list's order (``build.wants_refine``), or None
    refine: Any = None


@dataclass(frozen=True, slots=True)
class IndexUsage:
    """How one search used (or did not use) an index, as BigQuery's ``vectorSearchStatistics`` says it."""

    mode: str
    index_name: str | None = None
    reasons: tuple[tuple[str, str], ...] = ()  # (code, message)
    indexed_rows: int = 0
    unindexed_rows: int = 0
    fraction_lists_to_search: float | None = None
    candidates: int | None = None
    #: of the candidates, how many were re-ranked with the stored vectors (the best by the refine codes)
    reranked_exactly: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "index_usage_mode": self.mode,
            "index_name": self.index_name,
            "index_unused_reasons": [{"code": c, "message": m} for c, m in self.reasons],
            "indexed_rows": self.indexed_rows,
            "unindexed_rows": self.unindexed_rows,
            "fraction_lists_to_search": self.fraction_lists_to_search,
            "candidates_reranked": self.candidates,
            "candidates_reranked_exactly": self.reranked_exactly,
        }

    def summary(self) -> str:
        """One line for the CLI's stderr and SQL notices."""
        if self.mode == UNUSED:
            why = "; ".join(m for _, m in self.reasons) or "no index"
            return f"vector index: UNUSED ({why}); searched exactly"
        text = f"vector index {self.index_name}: {self.mode}"
        if self.fraction_lists_to_search is not None:
            text += f", fraction_lists_to_search {self.fraction_lists_to_search:g}"
        if self.unindexed_rows:
            text += f", {self.unindexed_rows} rows not yet in the index searched exactly"
        return text


def unused(code: str, message: str, index_name: str | None = None) -> IndexUsage:
    return IndexUsage(UNUSED, index_name, ((code, message),))


@dataclass(slots=True)
class Delta:
    """The current rows against the index: which ids it can return, which rows it lacks (cacheable per table
    version)."""

    order: np.ndarray  # row numbers sorted by id
    sorted_ids: np.ndarray
    unindexed: np.ndarray  # row numbers the index does not hold
    allowed: np.ndarray | None  # index ids present among the rows (None: all of them)
    #: id -> row for unique ids that are dense enough (face ids from a sequence): one gather instead of a search
    lookup: np.ndarray | None = None
    #: the unindexed rows as one contiguous float32 matrix, made on first use
    sub: np.ndarray | None = None
    #: faiss's id selector over ``allowed``, made on first use by an IVF search
    selector: Any = None

    def rows_of(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding each id in ``labels`` (several for a duplicated vector), and which label each is."""
        if self.lookup is not None:
            rows = self.lookup[labels]
            return rows, np.arange(labels.size)
        left = np.searchsorted(self.sorted_ids, labels, "left")
        cnt = np.searchsorted(self.sorted_ids, labels, "right") - left
        total = int(cnt.sum())
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        return self.order[np.repeat(left, cnt) + offs], np.repeat(np.arange(labels.size), cnt)


def _first_of_runs(ordered: np.ndarray) -> np.ndarray:
    """A sorted array without its repeats."""
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 ids by one sort (numpy 2's hashing ``np.unique`` took 1.7 s on 3M ids here)."""
    return _first_of_runs(np.sort(np.asarray(values, np.int64), kind="stable"))


def delta(loaded: LoadedIndex, ids: np.ndarray) -> Delta:
    ids = np.asarray(ids, np.int64)
    ascending = ids.size < 2 or bool(np.all(ids[1:] > ids[:-1]))  # rows in id order: no sort needed
    order = np.arange(ids.size) if ascending else np.argsort(ids, kind="stable")
    sorted_ids = ids if ascending else ids[order]
    if sorted_ids.size == loaded.ids.size and np.array_equal(sorted_ids, loaded.ids):
        # the index holds exactly these rows (the usual case: it was refreshed with them), found in one compare;
        # the search below took 0.7 s of a 3M-row CLI search here
        held = np.ones(ids.size, bool)
        allowed = None
    else:
        # everything from the sorted ids, in linear passes (searching sorted keys, no hashing: see sorted_unique)
        held_sorted = in_sorted(loaded.ids, sorted_ids)
        held = np.empty(ids.size, bool)
        held[order] = held_sorted
        present = _first_of_runs(sorted_ids[held_sorted])
        allowed = None if present.size == loaded.ids.size else present
    lookup = None
    unique = ids.size < 2 or bool(np.all(sorted_ids[1:] != sorted_ids[:-1]))
    if unique and ids.size and sorted_ids[0] >= 0 and sorted_ids[-1] < 4 * ids.size + 1024:
        lookup = np.full(int(sorted_ids[-1]) + 1, -1, np.int64)
        lookup[ids] = np.arange(ids.size)
        order = sorted_ids = np.zeros(0, np.int64)  # rows_of needs only the lookup (16 bytes a row less)
    return Delta(order, sorted_ids, np.flatnonzero(~held), allowed, lookup)


def serves(loaded: LoadedIndex, distance: Distance) -> str | None:
    """Why ``loaded`` cannot rank by ``distance`` (None when it can)."""
    if loaded.spec.distance == distance or loaded.unit:
        return None  # unit vectors rank alike under all three distances
    return (
        f"index {loaded.name} ranks by {loaded.spec.distance_type}, the search asks for {DISTANCE_NAMES[distance]} "
        "and the vectors are not of unit length"
    )


def _rerank_each(
    matrix: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int, distance: Distance, q_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The common case made short: each query's candidate rows (unique, all current) re-ranked exactly."""
    m = rows.shape[0]
    out_r = np.empty((m, k), np.int64)
    out_d = np.empty((m, k), np.float32)
    for qi in range(m):
        r = rows[qi]
        picked = np.asarray(matrix[r], np.float32)
        sims = (picked @ queries[qi : qi + 1].T)[:, 0]
        x_sq = np.einsum("ij,ij->i", picked, picked) if distance == "euclidean" else np.ones(r.size)
        dist = _distances(sims, distance, q_sq[qi], x_sq)
        order = np.lexsort((r, dist))[:k]
        out_r[qi] = r[order]
        out_d[qi] = dist[order]
    return out_r, out_d


def rerank_candidates(k: int, rows: int) -> int:
    """How many TREE_AH candidates are re-ranked with the stored vectors for a top-``k`` over ``rows`` rows."""
    base = max(RERANK_MIN, RERANK_PER_K * k)
    scale = rows / RERANK_ROWS
    steep = max(1.0, scale / RERANK_STEEP_FROM) ** RERANK_STEEP_EXP
    return round(base * math.sqrt(max(1.0, min(scale, RERANK_STEEP_FROM))) * steep)


def exact_rerank_rows(k: int) -> int:
    """Of a TREE_AH index's candidates ranked by its refine codes, how many are re-ranked exactly."""
    return max(REFINE_EXACT_MIN, REFINE_EXACT_PER_K * k)


def _distances(sim: np.ndarray, distance: Distance, q_sq: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    if distance == "cosine":
        return np.maximum(1.0 - sim, 0.0).astype(np.float32)
    if distance == "dot":
        return (0.0 - sim).astype(np.float32)  # 0 - s: never a negative zero
    return np.sqrt(np.maximum(q_sq + x_sq - 2.0 * sim, 0.0)).astype(np.float32)


def search_rows(
    loaded: LoadedIndex,
    matrix: np.ndarray,
    ids: np.ndarray,
    queries: np.ndarray,
    k: int,
    distance: Distance,
    knobs: SearchKnobs,
    *,
    cached: Delta | None = None,
    scan: np.ndarray | None = None,
    reader: Any = None,
) -> tuple[np.ndarray, np.ndarray, IndexUsage]:
    """``(rows, distances, usage)`` like :func:`lookalike.search.exact.top_k`, using the index.

    ``matrix`` holds the current rows (for COSINE, of unit length), ``ids`` their ids; ``queries`` is
    ``(m, d)``. The caller has checked :func:`serves` and the dimension. ``scan``: the same rows to read
    whole where a search falls back to exact search (a mapping that reads ahead; default ``matrix``), when
    ``matrix`` is mapped for scattered reads. ``reader``: the same rows as a
    :class:`~lookalike.search.rowreader.RowReader`, which the exact re-rank reads from where the index narrowed
    its candidates with refine codes (a few dozen rows a query; read so, they stay out of this process's memory).
    """

    def whole() -> np.ndarray:  # made only on a fallback: for float16 rows it is a float32 copy
        return np.asarray(matrix if scan is None else scan, np.float32)

    d = delta(loaded, ids) if cached is None else cached
    n = int(matrix.shape[0])
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    m = queries.shape[0]
    k = min(k, n)
    spec = loaded.spec
    fraction = knobs.fraction_lists_to_search
    if spec.index_type == "IVF":
        f = DEFAULT_FRACTION_LISTS if fraction is None else float(fraction)
        nprobe = max(1, min(loaded.lists, round(f * loaded.lists)))
        cand = k
    else:
        f = 1.0 if loaded.lists == 1 and fraction is None else (fraction or DEFAULT_FRACTION_LISTS)
        nprobe = max(1, min(loaded.lists, round(f * loaded.lists)))
        cand = n if fraction == 1.0 else rerank_candidates(k, n)
    indexed = n - d.unindexed.size
    if cand >= indexed and spec.index_type == "TREE_AH":
        # every row would be re-ranked: that is exact search, done directly
        idx, dists = exact_top_k(whole(), queries, k, distance)
        return (
            idx,
            dists,
            IndexUsage(
                FULLY_USED if not d.unindexed.size else PARTIALLY_USED,
                loaded.name,
                indexed_rows=indexed,
                unindexed_rows=int(d.unindexed.size),
                fraction_lists_to_search=float(f),
                candidates=indexed,
            ),
        )
    if d.allowed is not None and d.allowed.size <= RERANK_MIN and 4 * d.allowed.size < loaded.ids.size:
        # a selective pre-filter left a few hundred rows: searching them exactly is cheaper, and exact
        idx, dists = exact_top_k(whole(), queries, k, distance)
        return idx, dists, unused("FEW_ROWS_AFTER_FILTER", f"{n} rows to search: searched exactly", loaded.name)
    cand = min(cand, max(indexed, 1))
    # ids the index holds that must not come back (deleted since the build, or left out by a pre-filter)
    excluded = 0 if d.allowed is None else int(loaded.ids.size - d.allowed.size)
    view = flat_scan(loaded) if nprobe >= loaded.lists and excluded <= cand else None
    keep = min(cand, exact_rerank_rows(k)) if view is not None and view.refine is not None else cand
    gather = reader if reader is not None and keep < cand else matrix  # where the exact re-rank reads rows
    q_sq = np.einsum("ij,ij->i", queries, queries)
    parts_q: list[np.ndarray] = []
    parts_r: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    usage = IndexUsage(
        PARTIALLY_USED if d.unindexed.size else FULLY_USED,
        loaded.name,
        indexed_rows=indexed,
        unindexed_rows=int(d.unindexed.size),
        fraction_lists_to_search=float(f),
        candidates=int(cand) if spec.index_type == "TREE_AH" else None,
        reranked_exactly=int(keep) if spec.index_type == "TREE_AH" else None,
    )
    if indexed > 0:
        probe = queries if not (spec.distance == "cosine" or spec.normalization == "L2") else _unit(queries)
        if view is not None:
            # the plain scan, faster for many candidates; asked for `excluded` more, its first `cand` admitted
            # ones are those the IVF's id selector would give (with refine codes: the best `keep` of those by the
            # refine codes)
            if keep < cand:
                labels = view.search_refined(probe, cand + excluded, keep, d.allowed)
            else:
                labels = view.search(probe, cand + excluded)
                if d.allowed is not None:
                    labels = _admitted(labels, d.allowed, keep)
        else:
            _, labels = loaded.index.search(probe, cand, params=_ivf_params(loaded, d, nprobe))
        if d.lookup is not None and not d.unindexed.size and keep >= k and bool((labels >= 0).all()):
            return (*_rerank_each(gather, queries, d.lookup[labels], k, distance, q_sq), usage)
        valid = labels >= 0
        qidx = np.nonzero(valid)[0]
        rows, which = d.rows_of(labels[valid])
        qrow = qidx[which]
        total = int(rows.size)
        # one matrix-vector product per query, shaped as exact search shapes it, so that a row's distance is
        # bit-for-bit the one exact search gives
        sims = np.empty(total, np.float32)
        euclidean = distance == "euclidean"
        x_sq = np.empty(total, np.float32) if euclidean else np.ones(total)
        bounds = np.searchsorted(qrow, np.arange(m + 1))
        for qi in range(m):
            lo, hi = bounds[qi], bounds[qi + 1]
            if hi > lo:
                picked = np.asarray(gather[rows[lo:hi]], np.float32)  # each row read once
                sims[lo:hi] = (picked @ queries[qi : qi + 1].T)[:, 0]
                if euclidean:
                    x_sq[lo:hi] = np.einsum("ij,ij->i", picked, picked)
        parts_q.append(qrow)
        parts_r.append(rows)
        parts_d.append(_distances(sims, distance, q_sq[qrow], x_sq))
    if d.unindexed.size:
        if d.sub is None:
            d.sub = np.ascontiguousarray(matrix[d.unindexed], dtype=np.float32)
        sub = d.sub
        idx, dist = exact_top_k(sub, queries, k, distance)
        parts_q.append(np.repeat(np.arange(m), idx.shape[1]))
        parts_r.append(d.unindexed[idx.reshape(-1)])
        parts_d.append(dist.reshape(-1))
    qall = np.concatenate(parts_q)
    rall = np.concatenate(parts_r)
    dall = np.concatenate(parts_d)
    order = np.lexsort((rall, dall, qall))
    qall, rall, dall = qall[order], rall[order], dall[order]
    starts = np.searchsorted(qall, np.arange(m))
    counts = np.searchsorted(qall, np.arange(m), "right") - starts
    take = starts[:, None] + np.minimum(np.arange(k), np.maximum(counts[:, None] - 1, 0))
    out_r = rall[take] if rall.size else np.zeros((m, k), np.int64)
    out_d = dall[take] if dall.size else np.zeros((m, k), np.float32)
    short = np.flatnonzero(counts < k)
    if short.size:  # too few candidates (few lists probed, or a selective pre-filter): never return fewer rows
        out_r[short], out_d[short] = exact_top_k(whole(), queries[short], k, distance)
    return out_r, out_d, usage


def _ivf_params(loaded: LoadedIndex, d: Delta, nprobe: int) -> Any:
    """Search parameters for the IVF: ``nprobe`` lists, and an id selector admitting only ``d.allowed`` (made
    once per :class:`Delta`: a selector of 1M ids took 78 ms to build)."""
    faiss = load_faiss()

    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    if d.allowed is not None:
        if d.selector is None:
            d.selector = faiss.IDSelectorBatch(d.allowed)
        params.sel = d.selector
    if loaded.lists > HNSW_COARSE_FROM:  # the HNSW graph over the centroids must return all nprobe lists
        coarse = faiss.SearchParametersHNSW()
        coarse.efSearch = max(nprobe, 64)
        params.quantizer_params = coarse
    return params


def _admitted(labels: np.ndarray, allowed: np.ndarray, keep: int) -> np.ndarray:
    """Per row of ``labels``, the first ``keep`` that are in the sorted ``allowed`` ids, in order (-1 after)."""
    out = np.full((labels.shape[0], keep), -1, np.int64)
    ok = (labels >= 0) & in_sorted(allowed, labels)
    rank = np.cumsum(ok, axis=1)
    ok &= rank <= keep
    r, c = np.nonzero(ok)
    out[r, rank[r, c] - 1] = labels[r, c]
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30))
