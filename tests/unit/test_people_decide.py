"""Same-person decisions by the table's persons (``lookalike.people.decide``), on small hand-made vectors."""

from __future__ import annotations

import numpy as np

from lookalike.people.decide import (
    DISAGREE_REASON,
    FAR_IN_PERSON_REASON,
    PersonSums,
    person_rows_for,
    person_verdicts,
    query_persons,
)


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _sums(vectors: dict[int, np.ndarray]):  # type: ignore[no-untyped-def]
    def sums_of(ids: np.ndarray) -> PersonSums:
        keep = sorted(int(i) for i in ids if int(i) in vectors)
        return PersonSums(
            ids=np.array(keep, np.int64),
            sums=np.stack([vectors[i].sum(axis=0) for i in keep]) if keep else np.zeros((0, 3), np.float32),
            counts=np.array([len(vectors[i]) for i in keep], np.int64),
        )

    return sums_of


def test_an_indexed_query_face_is_in_its_own_person_or_in_none() -> None:
    q = _unit([1, 0, 0], [0, 1, 0])
    rows = np.array([[7, 3], [-1, 3]])  # second query's nearest row is itself, unassigned
    got = query_persons(q, np.array([0.0, 0.0]), rows, _sums({}), 0.6, 0.5)
    assert got.tolist() == [7, -1]  # an outlier the grouping left out does not join a person here


def test_a_new_face_joins_the_closest_person_it_may_join() -> None:
    person_a = _unit([1, 0.1, 0], [1, -0.1, 0], [1, 0, 0.1])
    person_b = _unit([0, 1, 0], [0, 1, 0.1], [0.1, 1, 0])
    q = _unit([1, 0.05, 0.05], [0.3, 0.3, 0.9])
    rows = np.array([[1, 2], [1, 2]])
    got = query_persons(q, np.array([0.05, 0.4]), rows, _sums({1: person_a, 2: person_b}), 0.6, 0.5)
    assert got.tolist() == [1, -1]  # the second is far from both on average: it joins neither


def test_a_face_only_joins_a_person_among_its_rows() -> None:
    person_a = _unit([1, 0, 0], [1, 0.05, 0])
    q = _unit([1, 0.02, 0])
    got = query_persons(q, np.array([0.2]), np.array([[-1, -1]]), _sums({1: person_a}), 0.6, 0.5)
    assert got.tolist() == [-1]


def test_rows_are_decided_by_persons_where_both_are_in_one() -> None:
    calibration = [[True, None, False, True, None]]
    cosine = np.array([[0.2, 0.5, 0.7, 0.3, 0.5]])
    rows = np.array([[1, 1, 1, 2, -1]])
    out = person_verdicts(calibration, cosine, np.array([1]), rows, card_threshold=0.673)
    # same person up to the card's threshold; beyond it uncertain; another person: the distance said "same"
    # (0.3), so the two disagree: uncertain; a face in no person: the calibration's verdict stands
    assert out.same_person == [[True, True, None, None, None]]
    assert out.basis == [["person", "person", "person", "person", "distance"]]
    assert out.reasons[0][2] == FAR_IN_PERSON_REASON and out.reasons[0][3] == DISAGREE_REASON
    assert out.reasons[0][4] is None


def test_another_persons_face_is_a_different_person() -> None:
    out = person_verdicts([[None, False]], np.array([[0.5, 0.8]]), np.array([1]), np.array([[2, 2]]), 0.673)
    assert out.same_person == [[False, False]]


def test_a_query_in_no_person_keeps_the_calibrations_verdicts() -> None:
    calibration: list[list[bool | None]] = [[True, None, False]]
    out = person_verdicts(calibration, np.array([[0.3, 0.5, 0.8]]), np.array([-1]), np.array([[1, 1, 2]]), 0.673)
    assert out.same_person == calibration and out.basis == [["distance"] * 3]


def test_in_a_table_too_small_to_calibrate_a_person_only_keeps_a_yes() -> None:
    out = person_verdicts(
        [[True, None, None]], np.array([[0.3, 0.55, 0.55]]), np.array([1]), np.array([[1, 1, 2]]), 0.673, confirm=False
    )
    assert out.same_person == [[True, None, False]]
    assert out.basis == [["person", "distance", "person"]]


def test_person_rows_finds_each_persons_faces_in_the_matrix() -> None:
    matrix_faces = np.array([30, 10, 20, 50, 40], np.int64)  # storage order, not sorted
    vectors = np.eye(5, 3, dtype=np.float32)
    assigned = np.array([10, 20, 40, 99], np.int64)  # face 99 is gone from the matrix
    persons = np.array([7, 8, 7, 8], np.int64)
    rows = person_rows_for(assigned, persons, matrix_faces)
    assert sorted(rows.rows(7).tolist()) == [1, 4] and rows.rows(8).tolist() == [2] and rows.rows(5).size == 0
    sums = rows.sums(np.array([8, 7, 5]), vectors)
    assert sums.ids.tolist() == [7, 8] and sums.counts.tolist() == [2, 1]
    assert np.allclose(sums.sums[0], vectors[1] + vectors[4])
    assert person_rows_for(assigned, persons, matrix_faces) is rows  # cached for the same arrays
