"""The grouping algorithm (:mod:`lookalike.people.cluster`) against a plain, slow average linkage written here."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.people import cluster


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _people(
    n_people: int, per: int, dim: int = 32, noise: float = 0.35, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_people, dim)))
    labels = np.repeat(np.arange(n_people), per)
    x = centres[labels] + noise * rng.normal(size=(len(labels), dim)) / np.sqrt(dim)
    return _unit(x), labels


def _naive_average_linkage(x: np.ndarray, threshold: float) -> list[set[int]]:
    """Textbook agglomeration: merge the closest pair of clusters (mean pairwise cosine distance) until none is
    within ``threshold``."""
    d = 1.0 - x.astype(np.float64) @ x.T.astype(np.float64)
    clusters = [{i} for i in range(len(x))]
    while True:
        best, pair = np.inf, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                link = np.mean([d[a, b] for a in clusters[i] for b in clusters[j]])
                if link < best:
                    best, pair = link, (i, j)
        if pair is None or best > threshold:
            return clusters
        i, j = pair
        clusters[i] |= clusters.pop(j)


def _groups(labels: np.ndarray) -> set[frozenset[int]]:
    out: dict[int, set[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        out.setdefault(lab, set()).add(i)
    return {frozenset(g) for g in out.values()}


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9])
def test_same_clusters_as_textbook_average_linkage(threshold: float) -> None:
    x, _ = _people(8, 6, noise=0.9, seed=1)
    a, b, _ = cluster.neighbour_graph(x, x, k=len(x) - 1, same=True)  # full graph: must equal the textbook result
    labels = cluster.agglomerate(cluster.Nodes.faces(x), a, b, threshold)
    assert _groups(labels) == {frozenset(c) for c in _naive_average_linkage(x, threshold)}


def test_sparse_graph_finds_the_people() -> None:
    x, truth = _people(40, 5, dim=64, noise=0.5)
    a, b, _ = cluster.neighbour_graph(x, x, k=8, same=True)
    labels = cluster.agglomerate(cluster.Nodes.faces(x), a, b, 0.6)
    assert _groups(labels) == _groups(truth)


def test_cannot_link_pairs_are_never_merged() -> None:
    x, _ = _people(2, 4, noise=0.2)
    a, b, _ = cluster.neighbour_graph(x, x, k=7, same=True)
    free = cluster.agglomerate(cluster.Nodes.faces(x), a, b, 0.5)
    assert len(_groups(free)) == 2  # without the constraint: two groups of 4
    labels = cluster.agglomerate(cluster.Nodes.faces(x), a, b, 0.5, cannot=(np.asarray([0]), np.asarray([1])))
    assert labels[0] != labels[1]


def test_fixed_nodes_never_merge_with_each_other() -> None:
    x, _ = _people(1, 4, noise=0.1)
    nodes = cluster.Nodes(sums=x.astype(np.float64), counts=np.ones(4), fixed=np.asarray([True, True, False, False]))
    a, b, _ = cluster.neighbour_graph(x, x, k=3, same=True)
    labels = cluster.agglomerate(nodes, a, b, 0.5)
    assert labels[0] != labels[1]
    assert labels[2] in (labels[0], labels[1]) and labels[3] in (labels[0], labels[1])


def test_nothing_merges_above_the_threshold() -> None:
    x = _unit(np.eye(6, 16) + 0.01)
    a, b, _ = cluster.neighbour_graph(x, x, k=5, same=True)
    assert len(_groups(cluster.agglomerate(cluster.Nodes.faces(x), a, b, 0.5))) == 6


def test_person_nodes_join_by_their_average() -> None:
    """A person node (vector sum, count) links to a face by the mean distance to all its faces."""
    x, _ = _people(2, 5, noise=0.3, seed=3)
    person = x[:4].astype(np.float64).sum(axis=0)
    nodes = cluster.Nodes(
        sums=np.vstack([person, x[4:].astype(np.float64)]),
        counts=np.asarray([4.0] + [1.0] * 6),
        fixed=np.asarray([True] + [False] * 6),
    )
    a = np.zeros(6, np.int64)
    b = np.arange(1, 7)
    labels = cluster.agglomerate(nodes, a, b, 0.6)
    assert labels[1] == labels[0]  # the fifth face of person 0 joins it
    assert all(labels[i] != labels[0] for i in range(2, 7))  # the other person's faces don't


def test_large_graph_uses_an_index_and_still_finds_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "EXACT_LIMIT", 100)
    x, truth = _people(60, 5, dim=64, noise=0.5, seed=4)
    a, b, _ = cluster.neighbour_graph(x, x, k=6, same=True)
    labels = cluster.agglomerate(cluster.Nodes.faces(x), a, b, 0.6)
    assert _groups(labels) == _groups(truth)


def _two_groups(per: int, between: float, dim: int = 64, seed: int = 3) -> np.ndarray:
    """Two groups of ``per`` unit vectors, tight inside, whose average linkage is about ``between``."""
    rng = np.random.default_rng(seed)
    u = _unit(rng.normal(size=(2, dim)))
    # centres at cosine 1 - between (tight groups keep the average linkage close to the centres' distance)
    v = (1.0 - between) * u[0] + np.sqrt(1.0 - (1.0 - between) ** 2) * _unit(u[1:2] - (u[1:2] @ u[0]) * u[0])[0]
    centres = np.stack([u[0], v])
    x = np.repeat(centres, per, axis=0) + 0.02 * rng.normal(size=(2 * per, dim)) / np.sqrt(dim)
    return _unit(x)


def test_large_groups_merge_at_a_looser_linkage_than_single_faces() -> None:
    """Face threshold 0.5, group threshold 0.625: two single faces at 0.55 stay apart, but two groups of 8 at an
    average linkage of 0.55 merge (8 x 8 faces allow up to 0.625 - 0.125 / 8)."""
    singles = _two_groups(1, 0.55)
    a, b, _ = cluster.neighbour_graph(singles, singles, k=1, same=True)
    assert len(_groups(cluster.agglomerate(cluster.Nodes.faces(singles), a, b, 0.625, face_threshold=0.5))) == 2
    groups = _two_groups(8, 0.55)
    a, b, _ = cluster.neighbour_graph(groups, groups, k=15, same=True)
    d = 1.0 - groups[:8].astype(np.float64) @ groups[8:].T.astype(np.float64)
    assert 0.5 < d.mean() < 0.6
    assert len(_groups(cluster.agglomerate(cluster.Nodes.faces(groups), a, b, 0.625, face_threshold=0.5))) == 1
    # with a flat cut-off at the face threshold they stay two
    assert len(_groups(cluster.agglomerate(cluster.Nodes.faces(groups), a, b, 0.5))) == 2
    # and no size makes a linkage above the group threshold merge
    far = _two_groups(8, 0.7)
    a, b, _ = cluster.neighbour_graph(far, far, k=15, same=True)
    assert len(_groups(cluster.agglomerate(cluster.Nodes.faces(far), a, b, 0.625, face_threshold=0.5))) == 2


def test_a_face_threshold_above_the_group_threshold_is_refused() -> None:
    x = _two_groups(2, 0.3)
    with pytest.raises(ValueError, match="face_threshold"):
        cluster.agglomerate(cluster.Nodes.faces(x), np.array([0]), np.array([1]), 0.5, face_threshold=0.6)


def test_group_sums_are_the_same_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.people import grouping

    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    rows = rng.choice(500, 300, replace=False)
    groups = rng.integers(0, 40, 300)
    want = np.zeros((40, 16))
    np.add.at(want, groups, vectors[rows].astype(np.float64))
    whole = grouping._reduce_rows(rows, groups, vectors, 40)
    monkeypatch.setattr(grouping, "REDUCE_BLOCK", 7)  # groups cut across blocks
    blocked = grouping._reduce_rows(rows, groups, vectors, 40)
    assert np.allclose(whole, want, atol=1e-5) and np.allclose(blocked, want, atol=1e-5)
