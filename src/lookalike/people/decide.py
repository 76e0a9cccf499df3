"""Same-person decisions that use the table's persons, not only one distance.

One distance is weak evidence where a population's different people come close: with fr-feature, photos of two
different K-pop idols can sit at cosine distance 0.38 while a fifth of one idol's own photos sit further apart
than that. No threshold on a single pair separates them. A table's *persons* (:mod:`lookalike.people.grouping`)
are far stronger evidence: a person is a group of faces that are close *on average*, and between two groups of
many faces the average linkage separates people where single pairs don't (see :mod:`lookalike.people.cluster`).
Measured on the labelled sets of ``benchmarks/fairness.py`` (rows of a top-5 search, each photo of the set
searched against the set), deciding by persons keeps true matches that the calibrated threshold had to leave
uncertain, and turns false marks between look-alike persons into "different people".

The query's person:

- a query face that *is* an indexed face (cosine distance at most :data:`SAME_FACE` to its nearest row: the photo
  is in the table, or ``face:ID``) is in that face's person, or in none when the grouping left it unassigned (an
  outlier: the grouping saw it with every other face, and knows better than one query can);
- any other query face joins the person it would join in a grouping run: the candidate person (one of its result
  rows' persons) with the smallest average linkage, when that linkage is within the grouping's limit for a face
  joining a group of that size (:func:`lookalike.people.cluster.merge_limit`);
- otherwise it is in no person.

Each row then:

- query and row in the same person: ``True`` up to the card's threshold; beyond it ``None``. In a table of fewer
  than :data:`CONFIRM_FACES` faces, few faces make weak persons: there the person only keeps a "same person" the
  distance already gave (on 8-photo tables of 3 K-pop idols, persons that may also confirm uncertain rows mark
  0.54 % of different-person pairs, against 0.22 % without);
- query and row in different persons: ``False``; but where the distance alone would say "same person" the persons
  and the distance disagree, so ``None``;
- either in no person: the calibration's verdict on the distance, as before. (Demoting a "same person" to
  ``None`` when the query joins no person but the row is in one was measured: on BLACKPINK's photos it removes
  4 false rows but also 88 true ones, and 0.67 points of LFW's true-match rate; a query's average linkage to
  the row's person does not separate the two.)

A user's threshold (``--threshold``) is a decision on the distance alone and bypasses all of this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lookalike.people.cluster import merge_limit

#: Persons of a table with fewer faces than this (the fewest a table calibrates itself from) only confirm what the
#: distance says; they don't turn an uncertain row into "same person".
CONFIRM_FACES = 30

#: A query face at most this cosine distance from an indexed face is that face (the same photo, re-embedded).
SAME_FACE = 0.01

#: Why a row is uncertain when the persons and the distance disagree.
DISAGREE_REASON = (
    "the distance says same person, but the query and this face are in different persons of the table "
    "(lookalike people): look-alike people come this close in this population"
)
#: Why a row is uncertain when it is in the query's person but far from it.
FAR_IN_PERSON_REASON = "in the query's person, but farther from the query than the model's same-person threshold"


@dataclass(frozen=True, slots=True)
class PersonSums:
    """Vector sums and face counts of some persons, by person id."""

    ids: np.ndarray  # (p,) int64, sorted
    sums: np.ndarray  # (p, d) float32
    counts: np.ndarray  # (p,) int64


class PersonRows:
    """Which matrix rows each person's faces are on: built once per (assignments, matrix) pair and cached, so that
    a search pays ``O(faces of the persons it needs x log n)`` rather than a pass over a million assignments."""

    def __init__(self, face_ids: np.ndarray, person_ids: np.ndarray, matrix_face_ids: np.ndarray) -> None:
        order = np.argsort(person_ids, kind="stable")
        self._persons = person_ids[order]
        self._faces = face_ids[order]
        self._matrix_order = np.argsort(matrix_face_ids, kind="stable")
        self._matrix_faces = matrix_face_ids[self._matrix_order]

    def rows(self, person_id: int) -> np.ndarray:
        """The matrix rows of one person's faces."""
        lo, hi = np.searchsorted(self._persons, [person_id, person_id + 1])
        faces = self._faces[lo:hi]
        if len(self._matrix_faces) == 0 or len(faces) == 0:
            return np.zeros(0, np.int64)
        pos = np.clip(np.searchsorted(self._matrix_faces, faces), 0, len(self._matrix_faces) - 1)
        return self._matrix_order[pos[self._matrix_faces[pos] == faces]]  # faces no longer in the matrix drop

    def sums(self, ids: np.ndarray, vectors: np.ndarray) -> PersonSums:
        """Vector sums (float64 accumulation) and face counts of the persons ``ids`` over ``vectors`` (the matrix)."""
        keep: list[int] = []
        sums: list[np.ndarray] = []
        counts: list[int] = []
        for pid in np.unique(ids):
            rows = self.rows(int(pid))
            if len(rows):
                keep.append(int(pid))
                sums.append(vectors[rows].sum(axis=0, dtype=np.float64))
                counts.append(len(rows))
        dim = vectors.shape[1]
        return PersonSums(
            ids=np.asarray(keep, np.int64),
            sums=np.stack(sums).astype(np.float32) if sums else np.zeros((0, dim), np.float32),
            counts=np.asarray(counts, np.int64),
        )


_ROWS_CACHE: dict[tuple[int, int, int, int], tuple[PersonRows, tuple[np.ndarray, ...]]] = {}
_ROWS_CACHE_SIZE = 4
_ROWS_LOCK = threading.Lock()


def person_rows_for(face_ids: np.ndarray, person_ids: np.ndarray, matrix_face_ids: np.ndarray) -> PersonRows:
    """:class:`PersonRows` for these arrays, from a small cache keyed by the arrays themselves (a server keeps its
    snapshots' arrays while they are current; the cache holds them too, so a key is never reused by other
    arrays)."""
    key = (id(face_ids), id(person_ids), id(matrix_face_ids), len(face_ids))
    with _ROWS_LOCK:  # a server searches from several threads
        hit = _ROWS_CACHE.get(key)
    if hit is not None:
        return hit[0]
    built = PersonRows(face_ids, person_ids, matrix_face_ids)
    with _ROWS_LOCK:
        while len(_ROWS_CACHE) >= _ROWS_CACHE_SIZE:
            _ROWS_CACHE.pop(next(iter(_ROWS_CACHE)))
        _ROWS_CACHE[key] = (built, (face_ids, person_ids, matrix_face_ids))
    return built


def query_persons(
    queries: np.ndarray,
    nearest_distance: np.ndarray,
    row_person: np.ndarray,
    sums_of: Callable[[np.ndarray], PersonSums],
    threshold: float,
    face_threshold: float,
) -> np.ndarray:
    """The person of each query face (-1: none), see the module docstring.

    ``queries``: ``(q, d)`` unit vectors. ``nearest_distance``: ``(q,)`` cosine distance of each query's first
    row. ``row_person``: ``(q, k)`` person of each result row (-1: none). ``sums_of(ids)`` gives the persons' vector
    sums. ``threshold`` / ``face_threshold``: the grouping's (:func:`lookalike.search.calibration.grouping_pair`).
    """
    n = len(queries)
    out = np.full(n, -1, np.int64)
    if n == 0 or row_person.size == 0:
        return out
    itself = nearest_distance <= SAME_FACE  # an indexed face: in its person, or in none if the grouping left it out
    out[itself] = row_person[itself, 0]
    rest = np.flatnonzero(~itself & (row_person >= 0).any(axis=1))
    if len(rest) == 0:
        return out
    candidates = np.unique(row_person[rest][row_person[rest] >= 0])
    ps = sums_of(candidates)
    if len(ps.ids) == 0:
        return out
    # average linkage of each query face to each candidate person: 1 - q . sum / count
    link = 1.0 - (queries[rest] @ ps.sums.T) / np.maximum(ps.counts, 1)[None, :]
    allowed = link <= merge_limit(ps.counts.astype(np.float64), threshold, face_threshold)[None, :]
    mine = np.zeros_like(allowed)
    for j, qi in enumerate(rest):  # a query may only join a person among its own rows
        mine[j] = np.isin(ps.ids, row_person[qi])
    link = np.where(allowed & mine, link, np.inf)
    best = np.argmin(link, axis=1)
    found = np.isfinite(link[np.arange(len(rest)), best])
    out[rest[found]] = ps.ids[best[found]]
    return out


@dataclass(frozen=True, slots=True)
class Verdicts:
    """``(q, k)`` nested lists: each row's ``same_person``, what decided it (``"person"`` when query and row are
    both in persons, else ``"distance"``), and why it is uncertain when the persons made it so (else ``None``)."""

    same_person: list[list[bool | None]]
    basis: list[list[str]]
    reasons: list[list[str | None]]

    @classmethod
    def by_distance(cls, verdicts: list[list[bool | None]]) -> Verdicts:
        return cls(verdicts, [["distance"] * len(r) for r in verdicts], [[None] * len(r) for r in verdicts])


def person_verdicts(
    verdicts: list[list[bool | None]],
    cosine: np.ndarray,
    query_person: np.ndarray,
    row_person: np.ndarray,
    card_threshold: float,
    *,
    confirm: bool = True,
) -> Verdicts:
    """The rows' verdicts with the persons taken into account (module docstring). ``verdicts``: the calibration's
    on the distances, ``(q, k)``; ``cosine``: the rows' cosine distances; ``row_person``: -1 for none.
    ``confirm=False`` (a table of fewer than :data:`CONFIRM_FACES` faces): a person turns no row into "same
    person" that the distance left uncertain; it can still say "different people"."""
    out = Verdicts.by_distance([list(r) for r in verdicts])
    for qi, row in enumerate(out.same_person):
        qp = int(query_person[qi])
        for j, base in enumerate(row):
            rp = int(row_person[qi, j])
            if rp < 0:
                continue
            if qp < 0:  # the query is in no person: the distance decides (module docstring)
                continue
            out.basis[qi][j] = "person"
            if qp == rp:
                if cosine[qi, j] > card_threshold:
                    row[j], out.reasons[qi][j] = None, FAR_IN_PERSON_REASON
                elif confirm or base is True:
                    row[j] = True
                else:
                    out.basis[qi][j] = "distance"  # left as the distance said: uncertain
            elif base is True:
                row[j], out.reasons[qi][j] = None, DISAGREE_REASON
            else:
                row[j] = False
    return out
