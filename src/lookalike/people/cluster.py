"""Grouping face vectors into persons: average-linkage agglomeration over a nearest-neighbour graph.

The measured choice (``benchmarks/cluster_lfw.py``): average linkage with cosine distance, stopped at a linkage
threshold that depends on the size of the two clusters, is the most accurate of the candidates on LFW and on the
other labelled sets measured, and it needs no pairwise matrix.

Why the threshold moves with size: two single faces are one pair, and one pair is weak evidence; the same
cut-off that keeps different people apart for single faces splits a person with many photos into several groups
(pose, age, lighting). Between large groups the average linkage is an average over many pairs, and it separates
people far more clearly: on every labelled set measured, the average linkage between two halves of one person
stays below about 0.57 (fr-feature), and between two different people above 0.62, whatever the population, even
where single different-person pairs come much closer. So clusters of ``m`` and ``n`` faces merge when their
average linkage is at most ``threshold - (threshold - face_threshold) / sqrt(m n)``: ``face_threshold`` for two
single faces, rising towards ``threshold`` for large groups. The average cosine
distance between two clusters ``A`` and ``B`` is exactly ``1 - (sum A) . (sum B) / (|A| |B|)`` for unit vectors,
so a cluster is its vector sum and its size, and the linkage of any two clusters costs one dot product.

Which pairs of clusters are looked at comes from a k-nearest-neighbour graph over the faces (exact below
:data:`EXACT_LIMIT` faces; above it, each face against its nearest k-means cells, as matrix products). The
agglomeration runs in rounds, all in numpy: each
cluster finds its nearest neighbouring cluster (smallest average linkage among the clusters its faces link to),
and every pair of clusters that are each other's nearest merges. Average linkage is *reducible*, so merging
reciprocal nearest neighbours gives the same tree as merging the globally closest pair one at a time; on LFW the
result is identical to SciPy's dense average linkage.

Constraints, kept in every round:

- ``cannot``: pairs of nodes that must never end up in one cluster (two faces of one photo; a face a user moved
  out of a person and that person). A pair of clusters holding such a pair is never merged.
- ``fixed``: nodes (existing or named persons) of which no two may be merged with each other.

Nodes may be single faces or whole persons (a vector sum and a count), so an incremental run is the same
algorithm over the unassigned faces plus one node per existing person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Up to this many vectors the neighbour graph is exact (faiss brute force, blocked BLAS).
EXACT_LIMIT = 60_000
#: Neighbours per face in the graph.
DEFAULT_NEIGHBOURS = 16
#: Safety stop for the rounds (each round merges at least one pair; real data needs about 100).
MAX_ROUNDS = 10_000


@dataclass(frozen=True, slots=True)
class Nodes:
    """What is clustered: ``sums[i]`` is the vector sum of node ``i`` (a face: its unit vector), ``counts[i]``
    how many faces it holds, ``fixed[i]`` whether it is a person that must not merge with another fixed node."""

    sums: np.ndarray  # (n, d) float32 (float32 keeps a million 512-d faces in 2 GB; linkages stay exact to ~1e-6)
    counts: np.ndarray  # (n,) float64
    fixed: np.ndarray  # (n,) bool

    @classmethod
    def faces(cls, vectors: np.ndarray) -> Nodes:
        n = len(vectors)
        return cls(np.asarray(vectors, np.float32), np.ones(n), np.zeros(n, bool))


def _faiss():  # type: ignore[no-untyped-def]
    from lookalike.search.vindex import _faiss

    return _faiss.faiss()


def neighbour_graph(
    queries: np.ndarray, base: np.ndarray, k: int = DEFAULT_NEIGHBOURS, *, same: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest ``base`` rows (inner product on unit vectors) of each query row.

    Returns ``(query_row, base_row, distance)`` arrays, one entry per edge, without self edges when ``same`` (the
    queries are the base). Exact up to :data:`EXACT_LIMIT` base rows, blocked by k-means cells above it
    (:func:`_blocked_knn`).
    """
    faiss = _faiss()
    q = np.ascontiguousarray(queries, np.float32)
    b = np.ascontiguousarray(base, np.float32)
    kk = min(k + (1 if same else 0), len(b))
    if len(q) == 0 or kk == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    if len(b) <= EXACT_LIMIT:
        sims, idx = faiss.knn(q, b, kk, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        sims, idx = _blocked_knn(q, b, kk)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), kk)
    cols = idx.reshape(-1).astype(np.int64)
    dist = (1.0 - sims.reshape(-1)).astype(np.float32)
    keep = cols >= 0
    if same:
        keep &= cols != rows
    return rows[keep], cols[keep], dist[keep]


#: Above :data:`EXACT_LIMIT`: coarse cells of about this many vectors ...
CELL_SIZE = 1_000
#: ... and each query is compared with the vectors of its this many nearest cells.
CELL_PROBE = 8
#: Queries of one cell multiplied at once (a cell many queries probe is done in blocks of this many).
QUERY_BLOCK = 4096


def _blocked_knn(q: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours by inner product, as matrix products: k-means cells over ``b``; each query
    is compared with the vectors of its :data:`CELL_PROBE` nearest cells, one BLAS product per cell (all the
    queries that probe a cell at once), keeping a running top ``k`` per query.

    Faiss' IVF scan compares one query at a time (no BLAS): 173 s for a 200k-face graph here at the same share of
    cells probed.
    """
    faiss = _faiss()
    n, dim = b.shape
    cells = max(2, n // CELL_SIZE)
    probe = min(CELL_PROBE, cells)
    rng = np.random.default_rng(0)
    train = b[np.sort(rng.choice(n, min(n, cells * 50), replace=False))]
    kmeans = faiss.Kmeans(dim, cells, niter=10, seed=1, spherical=True, verbose=False)
    kmeans.train(train)
    centroids = np.ascontiguousarray(kmeans.centroids, np.float32)
    _, b_cell = faiss.knn(b, centroids, 1, metric=faiss.METRIC_INNER_PRODUCT)
    _, q_cells = faiss.knn(q, centroids, probe, metric=faiss.METRIC_INNER_PRODUCT)
    b_order = np.argsort(b_cell[:, 0], kind="stable")
    b_start = np.searchsorted(b_cell[b_order, 0], np.arange(cells + 1))
    flat = q_cells.reshape(-1)
    q_order = np.argsort(flat, kind="stable")
    q_start = np.searchsorted(flat[q_order], np.arange(cells + 1))
    sims = np.full((len(q), k), -np.inf, np.float32)
    idx = np.full((len(q), k), -1, np.int64)
    for c in range(cells):
        cand = b_order[b_start[c] : b_start[c + 1]]
        probing = q_order[q_start[c] : q_start[c + 1]] // probe
        if len(probing) == 0 or len(cand) == 0:
            continue
        cand_vectors = b[cand]
        kk = min(k, len(cand))
        for start in range(0, len(probing), QUERY_BLOCK):  # a popular cell's queries in blocks: bounded memory
            rows = probing[start : start + QUERY_BLOCK]
            s = q[rows] @ cand_vectors.T
            if kk < len(cand):
                top = np.argpartition(s, len(cand) - kk, axis=1)[:, len(cand) - kk :]
            else:
                top = np.broadcast_to(np.arange(kk), (len(rows), kk))
            both_s = np.concatenate([sims[rows], np.take_along_axis(s, top, axis=1)], axis=1)
            both_i = np.concatenate([idx[rows], cand[top]], axis=1)
            best = np.argpartition(both_s, both_s.shape[1] - k, axis=1)[:, both_s.shape[1] - k :]
            sims[rows] = np.take_along_axis(both_s, best, axis=1)
            idx[rows] = np.take_along_axis(both_i, best, axis=1)
    order = np.argsort(-sims, axis=1)
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    return lo * n + hi


#: Edges whose linkage is computed at once (bounds the memory of the gathered cluster sums).
LINK_BLOCK = 32_768


def _links(sums: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Average cosine distance between clusters ``a[i]`` and ``b[i]`` (from their vector sums), in blocks."""
    out = np.empty(len(a), np.float64)
    for start in range(0, len(a), LINK_BLOCK):
        sa, sb = a[start : start + LINK_BLOCK], b[start : start + LINK_BLOCK]
        out[start : start + LINK_BLOCK] = 1.0 - np.einsum("ij,ij->i", sums[sa], sums[sb]) / (counts[sa] * counts[sb])
    return out


def merge_limit(size_product: np.ndarray, threshold: float, face_threshold: float) -> np.ndarray:
    """The largest average linkage at which clusters whose sizes multiply to ``size_product`` merge:
    ``threshold - (threshold - face_threshold) / sqrt(m n)`` (module docstring)."""
    return threshold - (threshold - face_threshold) / np.sqrt(np.asarray(size_product, np.float64))


def agglomerate(
    nodes: Nodes,
    edge_a: np.ndarray,
    edge_b: np.ndarray,
    threshold: float,
    *,
    face_threshold: float | None = None,
    cannot: tuple[np.ndarray, np.ndarray] | None = None,
    overwrite: bool = False,
) -> np.ndarray:
    """Average-linkage clusters of ``nodes`` over the candidate edges. Clusters of ``m`` and ``n`` faces merge
    while their linkage (a cosine distance) is at most ``threshold - (threshold - face_threshold) / sqrt(m n)``
    (see the module docstring); ``face_threshold`` defaults to ``threshold``, a flat cut-off. Returns each node's
    cluster label (the index of one of its nodes). ``overwrite=True`` lets it sum merged clusters into
    ``nodes.sums`` in place instead of a copy."""
    low = threshold if face_threshold is None else float(face_threshold)
    if low > threshold:
        raise ValueError(f"face_threshold {low} is above threshold {threshold}")
    n = len(nodes.counts)
    labels = np.arange(n, dtype=np.int64)
    if n == 0:
        return labels
    sums = nodes.sums if overwrite and nodes.sums.dtype == np.float32 else nodes.sums.astype(np.float32, copy=True)
    counts = nodes.counts.astype(np.float64, copy=True)
    fixed = nodes.fixed.copy()
    keys = np.unique(_pair_keys(np.asarray(edge_a), np.asarray(edge_b), n))
    a, b = keys // n, keys % n
    keep = a != b
    a, b = a[keep], b[keep]
    ca = cb = np.zeros(0, np.int64)
    if cannot is not None and len(cannot[0]):
        ca, cb = np.asarray(cannot[0], np.int64), np.asarray(cannot[1], np.int64)
    link = _links(sums, counts, a, b)
    for _ in range(MAX_ROUNDS):
        if len(a) == 0:
            break
        keep = (link <= threshold) & ~(fixed[a] & fixed[b])
        if len(ca):
            la, lb = labels[ca], labels[cb]
            forbidden = np.unique(_pair_keys(la, lb, n))
            keep &= ~np.isin(a * n + b, forbidden)
        # an edge above the largest threshold never comes back: a merged cluster's linkage to a third one is the
        # weighted mean of its parts' linkages, which the parts' own edges carry
        a, b, link = a[keep], b[keep], link[keep]
        # kept edges are all under the flat threshold; the size-aware one is stricter for small groups
        ok = link <= merge_limit(counts[a] * counts[b], threshold, low) if low < threshold else np.ones(len(a), bool)
        if not ok.any():
            break
        best = np.full(n, np.inf)
        np.minimum.at(best, a[ok], link[ok])
        np.minimum.at(best, b[ok], link[ok])
        mutual = ok & (link == best[a]) & (link == best[b])
        ma, mb = a[mutual], b[mutual]
        # ties: each cluster merges at most once per round
        _, first = np.unique(ma, return_index=True)
        ma, mb = ma[first], mb[first]
        _, first = np.unique(mb, return_index=True)
        ma, mb = ma[first], mb[first]
        chained = np.isin(mb, ma) | np.isin(ma, mb)
        if chained.all():
            chained[0] = False
        ma, mb = ma[~chained], mb[~chained]
        sums[ma] += sums[mb]
        counts[ma] += counts[mb]
        fixed[ma] |= fixed[mb]
        relabel = np.arange(n, dtype=np.int64)
        relabel[mb] = ma
        labels = relabel[labels]
        # the graph between the clusters that are left; only edges of merged clusters need a new linkage
        a, b = relabel[a], relabel[b]
        keys, first = np.unique(_pair_keys(a, b, n), return_index=True)
        a, b, link = keys // n, keys % n, link[first]
        keep = a != b
        a, b, link = a[keep], b[keep], link[keep]
        grown = np.zeros(n, bool)
        grown[ma] = True
        dirty = grown[a] | grown[b]
        link[dirty] = _links(sums, counts, a[dirty], b[dirty])
    return labels
