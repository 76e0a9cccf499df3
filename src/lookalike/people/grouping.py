"""``lookalike people cluster``: group a face table's faces into persons, incrementally or in full.

Incremental (the default) looks only at faces in no person. They are clustered together with one node per
existing person (its vector sum), so each face joins the person it is closest to on average, or forms a new
person with other new faces, or stays unassigned while it is an outlier (its group is smaller than
``min_faces``; it is looked at again next time). Existing persons are never merged with each other.

Full (``--full``) recomputes the grouping, but every person a user touched (named, merged, hidden, given a
feature face, or moved faces into or out of) is *confirmed*: it starts as one node with all its faces and keeps
its id, so names, moved faces and merges stay. Two confirmed persons are never merged. The other faces are
grouped afresh, and each new cluster takes the id of the old unconfirmed person it overlaps most (so person ids,
and links to them, survive where the grouping did not change).

Always: two faces of one photo never end up in one person, and a face a user moved out of a person never goes
back to it.

The dataset file is held only to read the faces and to write the result (:func:`run_unlocked`, what
``people.cluster()`` does): the grouping itself runs with the file closed, so other processes can search and index
meanwhile, and a result computed from a table or persons that changed in between is thrown away and computed
again. The write is one transaction: a run killed half-way leaves the previous grouping as it was.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookalike.dataset.connection import transaction
from lookalike.dataset.store import TableInfo, insert_arrow, load_matrix
from lookalike.errors import InvalidArgument
from lookalike.people import cluster
from lookalike.people import store as pstore
from lookalike.search.calibration import grouping_pair, grouping_thresholds

#: A new person needs at least this many faces (immich's default); smaller groups stay unassigned.
DEFAULT_MIN_FACES = 3


@dataclass(frozen=True, slots=True)
class ClusterReport:
    """What a grouping run did."""

    table: str
    mode: str  # "incremental" | "full"
    threshold: float  # average linkage at which large groups still merge
    face_threshold: float  # ... and two single faces
    min_faces: int
    faces: int
    looked_at: int
    assigned: int
    joined_existing: int
    new_persons: int
    removed_persons: int
    persons: int
    unassigned: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


#: Rows summed at once by :func:`_reduce_rows` (bounds the memory of the gathered vectors).
REDUCE_BLOCK = 65_536


def _reduce_rows(rows: np.ndarray, groups: np.ndarray, vectors: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of ``vectors[rows]`` per group (``groups`` aligned with ``rows``) as ``(n_groups, d)`` float32, summed
    in float64 over blocks of :data:`REDUCE_BLOCK` rows (a million assigned faces gathered at once in float64
    would need 3.75 GiB)."""
    acc = np.zeros((n_groups, vectors.shape[1]), np.float64)
    if len(rows):
        order = np.argsort(groups, kind="stable")
        rows, groups = rows[order], groups[order]
        for start in range(0, len(rows), REDUCE_BLOCK):
            r, g = rows[start : start + REDUCE_BLOCK], groups[start : start + REDUCE_BLOCK]
            starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
            acc[g[starts]] += np.add.reduceat(vectors[r], starts, axis=0, dtype=np.float64)
    return acc.astype(np.float32)


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``sorted_ids`` (-1 where absent)."""
    ids = np.asarray(ids, np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def run(
    con: duckdb.DuckDBPyConnection,
    info: TableInfo,
    *,
    full: bool = False,
    min_faces: int = DEFAULT_MIN_FACES,
    threshold: float | None = None,
    neighbours: int = cluster.DEFAULT_NEIGHBOURS,
) -> ClusterReport:
    """Group ``info``'s faces into persons (see the module docstring) and commit the result, all in one
    transaction on ``con`` (:func:`run_unlocked` holds the dataset only to read and to write)."""
    started = time.perf_counter()
    face_linkage, linkage = _thresholds(info, threshold, min_faces)
    with transaction(con):
        snap = _read(con, info)
        plan = _plan(
            snap, full=full, min_faces=min_faces, face_linkage=face_linkage, linkage=linkage, neighbours=neighbours
        )
        del snap
        return _apply(con, info, plan, started)


#: Runs of :func:`run_unlocked` whose table or persons changed while they computed, before one holds the dataset.
UNLOCKED_TRIES = 2


def run_unlocked(
    path: str,
    table: str,
    *,
    full: bool = False,
    min_faces: int = DEFAULT_MIN_FACES,
    threshold: float | None = None,
    neighbours: int = cluster.DEFAULT_NEIGHBOURS,
) -> ClusterReport:
    """:func:`run` on the dataset file at ``path``, holding it only to read the faces and to write the result: the
    grouping itself (minutes for a million faces) runs with the file closed, so other processes search and index
    meanwhile. If the table or its persons changed in between (a new index version, a user's edit), the result is
    thrown away and the run done again, :data:`UNLOCKED_TRIES` times, then once holding the file throughout."""
    from lookalike.dataset import writer
    from lookalike.dataset.store import get_table

    started = time.perf_counter()
    for _ in range(UNLOCKED_TRIES):
        with writer(path) as con:
            info = get_table(con, table)
            face_linkage, linkage = _thresholds(info, threshold, min_faces)
            key = _state(con, info)
            snap = _read(con, info)
        plan = _plan(
            snap, full=full, min_faces=min_faces, face_linkage=face_linkage, linkage=linkage, neighbours=neighbours
        )
        del snap
        with writer(path) as con, transaction(con):
            info = get_table(con, table)
            if _state(con, info) == key:
                return _apply(con, info, plan, started)
    with writer(path) as con:
        return run(
            con, get_table(con, table), full=full, min_faces=min_faces, threshold=threshold, neighbours=neighbours
        )


def _state(con: duckdb.DuckDBPyConnection, info: TableInfo) -> tuple[object, ...]:
    """What must not change between reading and writing a grouping: the table's version (faces added or
    removed), and its persons (every manual decision and every run is a log row)."""
    row = con.execute(
        "SELECT count(*), max(logged_at) FROM lookalike_people_log WHERE tbl = ?", [info.name]
    ).fetchall()[0]
    faces = con.execute("SELECT count(*) FROM lookalike_person_faces WHERE tbl = ?", [info.name]).fetchall()[0][0]
    return (info.version, int(row[0]), str(row[1]), int(faces))


def _thresholds(info: TableInfo, threshold: float | None, min_faces: int) -> tuple[float, float]:
    """``(face, group)`` linkage thresholds of a run, or :class:`InvalidArgument`."""
    if min_faces < 1:
        raise InvalidArgument(f"min_faces must be at least 1, got {min_faces}")
    if threshold is not None and not 0.0 < threshold < 2.0:
        raise InvalidArgument(f"threshold must be a cosine distance between 0 and 2, got {threshold}")
    pair = grouping_pair(threshold) if threshold is not None else grouping_thresholds(info.calibration)
    if pair is None:
        raise InvalidArgument(
            f"table {info.name!r} uses model {info.model!r}, which is not calibrated, so no distance is known to "
            "mean the same person",
            hint="pass --threshold (an average cosine distance), or calibrate the model: lookalike models calibrate",
        )
    return pair


@dataclass(slots=True)
class _Snapshot:
    """What a run reads from the dataset: the faces (sorted by id), their persons and the constraints."""

    face_id: np.ndarray
    vectors: np.ndarray
    assigned: pstore.Assignments
    person_rows: dict[int, pstore.Person]
    pa_ids: np.ndarray
    pb_ids: np.ndarray
    link_faces: np.ndarray
    link_persons: np.ndarray


@dataclass(slots=True)
class _Plan:
    """What a run will write: each looked-at face's person (``-1``: none yet; clusters in ``need`` get fresh ids
    when written)."""

    full: bool
    min_faces: int
    face_linkage: float
    linkage: float
    face_id: np.ndarray
    free_rows: np.ndarray
    new_person: np.ndarray
    loose: np.ndarray
    inverse: np.ndarray
    cluster_person: np.ndarray
    need: np.ndarray
    dropped: list[int]
    joined: int
    link_faces: np.ndarray
    link_persons: np.ndarray


def _read(con: duckdb.DuckDBPyConnection, info: TableInfo) -> _Snapshot:
    fm = load_matrix(con, info)
    if len(fm.face_id) > 1 and not bool(np.all(np.diff(fm.face_id) > 0)):
        order = np.argsort(fm.face_id, kind="stable")
        face_id, vectors = fm.face_id[order], fm.matrix[order]
    else:  # rows come in face-id order: no copy of the matrix
        face_id, vectors = fm.face_id, fm.matrix

    assigned = pstore.assignments(con, info)
    person_rows = {p.person_id: p for p in pstore.persons(con, info)}
    pa_ids, pb_ids = pstore.same_photo_pairs(con, info)
    link_faces, link_persons = pstore.cannot_links(con, info.name)
    return _Snapshot(face_id, vectors, assigned, person_rows, pa_ids, pb_ids, link_faces, link_persons)


def _plan(
    snap: _Snapshot, *, full: bool, min_faces: int, face_linkage: float, linkage: float, neighbours: int
) -> _Plan:
    """The grouping itself (the graph and the agglomeration): no dataset access."""
    face_id, vectors, assigned, person_rows = snap.face_id, snap.vectors, snap.assigned, snap.person_rows
    pa_ids, pb_ids, link_faces, link_persons = snap.pa_ids, snap.pb_ids, snap.link_faces, snap.link_persons
    n = len(face_id)
    arow = _lookup(face_id, assigned.face_id)  # row of each assigned face
    old_person_of_row = np.full(n, -1, np.int64)
    old_person_of_row[arow[arow >= 0]] = assigned.person_id[arow >= 0]

    # seeds: every existing person (incremental) or the confirmed ones (full)
    seed_ids = np.asarray(sorted(pid for pid, p in person_rows.items() if not full or p.confirmed), np.int64)
    seed_of_row = np.full(n, -1, np.int64)
    in_seed = (old_person_of_row >= 0) & np.isin(old_person_of_row, seed_ids)
    seed_of_row[in_seed] = np.searchsorted(seed_ids, old_person_of_row[in_seed])
    free_rows = np.flatnonzero(seed_of_row < 0)
    n_seeds = len(seed_ids)

    # nodes: seeds first, then free faces
    node_of_row = seed_of_row.copy()
    node_of_row[free_rows] = n_seeds + np.arange(len(free_rows))
    seed_rows = np.flatnonzero(seed_of_row >= 0)
    sums = np.empty((n_seeds + len(free_rows), vectors.shape[1]), np.float32)
    sums[:n_seeds] = _reduce_rows(seed_rows, seed_of_row[seed_rows], vectors, n_seeds)
    sums[n_seeds:] = vectors[free_rows]
    counts = np.concatenate(
        [np.bincount(seed_of_row[seed_rows], minlength=n_seeds).astype(np.float64), np.ones(len(free_rows))]
    )
    fixed = np.zeros(n_seeds + len(free_rows), bool)
    fixed[:n_seeds] = True
    nodes = cluster.Nodes(sums=sums, counts=counts, fixed=fixed)

    queries = np.arange(n) if full else free_rows
    qi, bi, _ = cluster.neighbour_graph(vectors if full else vectors[queries], vectors, neighbours, same=False)
    ea, eb = node_of_row[queries[qi]], node_of_row[bi]

    # constraints: two faces of one photo; a face moved out of a person
    ca = [node_of_row[_lookup(face_id, pa_ids)]] if len(pa_ids) else []
    cb = [node_of_row[_lookup(face_id, pb_ids)]] if len(pb_ids) else []
    if len(link_faces):
        frow = _lookup(face_id, link_faces)
        spos = _lookup(seed_ids, link_persons)
        ok = (frow >= 0) & (spos >= 0)
        ca.append(node_of_row[frow[ok]])
        cb.append(spos[ok])
    cannot = (np.concatenate(ca), np.concatenate(cb)) if ca else None

    labels = cluster.agglomerate(nodes, ea, eb, linkage, face_threshold=face_linkage, cannot=cannot, overwrite=True)

    # each cluster: the seed in it (at most one, since seeds never merge), and its free faces
    free_labels = labels[n_seeds:]
    seed_in_label = np.full(len(labels), -1, np.int64)
    seed_in_label[labels[:n_seeds]] = np.arange(n_seeds)
    target_seed = seed_in_label[free_labels]
    new_person = np.full(len(free_rows), -1, np.int64)
    new_person[target_seed >= 0] = seed_ids[target_seed[target_seed >= 0]]
    joined = int((target_seed >= 0).sum())

    # clusters without a seed: persons when big enough
    loose = np.flatnonzero(target_seed < 0)
    uniq, inverse, sizes = np.unique(free_labels[loose], return_inverse=True, return_counts=True)
    big = sizes >= min_faces
    cluster_person = np.full(len(uniq), -1, np.int64)
    dropped: list[int] = []
    if full:
        cluster_person, dropped = _match_old(
            uniq, big, free_labels[loose], old_person_of_row[free_rows[loose]], person_rows
        )
    need = np.flatnonzero(big & (cluster_person < 0))
    return _Plan(
        full,
        min_faces,
        face_linkage,
        linkage,
        face_id,
        free_rows,
        new_person,
        loose,
        inverse,
        cluster_person,
        need,
        dropped,
        joined,
        link_faces,
        link_persons,
    )


def _apply(con: duckdb.DuckDBPyConnection, info: TableInfo, plan: _Plan, started: float) -> ClusterReport:
    """Write ``plan`` (inside the caller's transaction)."""
    removed = pstore.prune(con, info)
    face_id, free_rows, new_person = plan.face_id, plan.free_rows, plan.new_person
    cluster_person, loose, inverse, need = plan.cluster_person, plan.loose, plan.inverse, plan.need
    link_faces, link_persons, dropped = plan.link_faces, plan.link_persons, plan.dropped
    full, min_faces, joined, n = plan.full, plan.min_faces, plan.joined, len(face_id)
    linkage, face_linkage = plan.linkage, plan.face_linkage
    fresh = pstore.new_person_ids(con, len(need))
    cluster_person[need] = fresh
    new_person[loose] = cluster_person[inverse]

    # a face never goes back to a person it was moved out of
    if len(link_faces):
        keys = set(zip(link_faces.tolist(), link_persons.tolist(), strict=True))
        fids = face_id[free_rows]
        for i in np.flatnonzero((new_person >= 0) & np.isin(fids, link_faces)):
            if (int(fids[i]), int(new_person[i])) in keys:
                new_person[i] = -1

    if dropped:
        pstore.drop_persons(con, info.name, dropped)
    pstore.insert_persons(con, info.name, fresh)
    _write_assignments(con, info.name, face_id[free_rows], new_person)
    pstore.prune(con, info)
    total_persons = int(
        con.execute("SELECT count(*) FROM lookalike_persons WHERE tbl = ?", [info.name]).fetchall()[0][0]
    )
    n_assigned = int((new_person >= 0).sum())
    report = ClusterReport(
        table=info.name,
        mode="full" if full else "incremental",
        threshold=round(float(linkage), 4),
        face_threshold=round(float(face_linkage), 4),
        min_faces=min_faces,
        faces=n,
        looked_at=len(free_rows),
        assigned=n_assigned,
        joined_existing=joined,
        new_persons=len(fresh),
        removed_persons=removed + len(dropped),
        persons=total_persons,
        unassigned=len(free_rows) - n_assigned,
        seconds=round(time.perf_counter() - started, 3),
    )
    pstore.log(con, info.name, "cluster", **report.to_dict())
    return report


def _match_old(
    uniq: np.ndarray,
    big: np.ndarray,
    face_labels: np.ndarray,
    old_person: np.ndarray,
    person_rows: dict[int, pstore.Person],
) -> tuple[np.ndarray, list[int]]:
    """Give each big new cluster the id of the unconfirmed old person it shares most faces with (each old id once,
    largest overlaps first). Returns the cluster -> person id array (-1: none) and the old ids left unused."""
    out = np.full(len(uniq), -1, np.int64)
    old_unconfirmed = {pid for pid, p in person_rows.items() if not p.confirmed}
    has_old = old_person >= 0
    pos = np.searchsorted(uniq, face_labels[has_old])
    pairs, overlap = np.unique(np.stack([pos, old_person[has_old]], axis=1), axis=0, return_counts=True)
    used: set[int] = set()
    for k in np.argsort(-overlap, kind="stable"):
        c, pid = int(pairs[k, 0]), int(pairs[k, 1])
        if not big[c] or out[c] >= 0 or pid in used or pid not in old_unconfirmed:
            continue
        out[c] = pid
        used.add(pid)
    return out, sorted(old_unconfirmed - used)


def _write_assignments(
    con: duckdb.DuckDBPyConnection, table: str, face_ids: np.ndarray, person_ids: np.ndarray
) -> None:
    """Replace the automatic assignments of the looked-at faces with the new ones."""
    rows = pa.table({"face_id": pa.array(face_ids, pa.int64()), "person_id": pa.array(person_ids, pa.int64())})
    con.register("_lookalike_people_run", rows)
    try:
        con.execute(
            """DELETE FROM lookalike_person_faces WHERE tbl = ? AND NOT manual
               AND face_id IN (SELECT face_id FROM _lookalike_people_run)""",
            [table],
        )
        keep = rows.filter(pc.greater_equal(rows.column("person_id"), 0))
        keep = keep.append_column("tbl", pa.array([table] * keep.num_rows, pa.string()))
        insert_arrow(con, "lookalike_person_faces", keep)
    finally:
        con.unregister("_lookalike_people_run")
