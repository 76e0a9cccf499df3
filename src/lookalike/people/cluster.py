"""Grouping face vectors into persons: average-linkage agglomeration over a nearest-neighbour graph.

The measured choice (``benchmarks/cluster_lfw.py``): average linkage with cosine distance, stopped at a linkage
threshold, is the most accurate of the candidates on LFW, and it needs no pairwise matrix. The average cosine
distance between two clusters ``A`` and ``B`` is exactly ``1 - (sum A) . (sum B) / (|A| |B|)`` for unit vectors,
so a cluster is its vector sum and its size, and the linkage of any two clusters costs one dot product.

Which pairs of clusters are looked at comes from a k-nearest-neighbour graph over the faces (exact below
:data:`EXACT_LIMIT` faces, an inverted-file index above it). The agglomeration runs in rounds, all in numpy: each
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

    sums: np.ndarray  # (n, d) float64
    counts: np.ndarray  # (n,) float64
    fixed: np.ndarray  # (n,) bool

    @classmethod
    def faces(cls, vectors: np.ndarray) -> Nodes:
        n = len(vectors)
        return cls(np.asarray(vectors, np.float64), np.ones(n), np.zeros(n, bool))


def _faiss():  # type: ignore[no-untyped-def]
    from lookalike.search.vindex import _faiss

    return _faiss.faiss()


def neighbour_graph(
    queries: np.ndarray, base: np.ndarray, k: int = DEFAULT_NEIGHBOURS, *, same: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest ``base`` rows (inner product on unit vectors) of each query row.

    Returns ``(query_row, base_row, distance)`` arrays, one entry per edge, without self edges when ``same`` (the
    queries are the base). Exact up to :data:`EXACT_LIMIT` base rows, an IVF index (about 4 sqrt(n) lists, 1/32 of
    them probed) above it.
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
        nlist = int(4 * np.sqrt(len(b)))
        quantizer = faiss.IndexFlatIP(b.shape[1])
        index = faiss.IndexIVFFlat(quantizer, b.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        train = b[np.sort(rng.choice(len(b), min(len(b), nlist * 40), replace=False))]
        index.train(train)
        index.add(b)
        index.nprobe = max(8, nlist // 32)
        sims, idx = index.search(q, kk)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), kk)
    cols = idx.reshape(-1).astype(np.int64)
    dist = (1.0 - sims.reshape(-1)).astype(np.float32)
    keep = cols >= 0
    if same:
        keep &= cols != rows
    return rows[keep], cols[keep], dist[keep]


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


def agglomerate(
    nodes: Nodes,
    edge_a: np.ndarray,
    edge_b: np.ndarray,
    threshold: float,
    *,
    cannot: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Average-linkage clusters of ``nodes`` over the candidate edges, merged while the linkage is at most
    ``threshold`` (a cosine distance). Returns each node's cluster label (the index of one of its nodes)."""
    n = len(nodes.counts)
    labels = np.arange(n, dtype=np.int64)
    if n == 0:
        return labels
    sums = nodes.sums.astype(np.float64, copy=True)
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
        ok = (link <= threshold) & ~(fixed[a] & fixed[b])
        if len(ca):
            la, lb = labels[ca], labels[cb]
            forbidden = np.unique(_pair_keys(la, lb, n))
            ok &= ~np.isin(a * n + b, forbidden)
        # an edge above the threshold never comes back: a merged cluster's linkage to a third one is the weighted
        # mean of its parts' linkages, which the parts' own edges carry
        a, b, link = a[ok], b[ok], link[ok]
        if len(a) == 0:
            break
        best = np.full(n, np.inf)
        np.minimum.at(best, a, link)
        np.minimum.at(best, b, link)
        mutual = (link == best[a]) & (link == best[b])
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
