"""Reading and writing persons in the dataset file (schema version 6, see :mod:`lookalike.dataset.schema`).

Every function takes an open connection and does one thing; the callers in :mod:`lookalike.people.manage` and
:mod:`lookalike.people.grouping` decide what belongs in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import numpy as np

from lookalike.dataset.store import TableInfo

#: Frontal-ness of a face from its 5 landmarks (eyes, nose, mouth corners): 1 when the nose sits midway between
#: the eyes, falling to 0 as it reaches an eye. Times the detection score, it picks a person's default feature face.
_FRONTAL_SQL = (
    "coalesce(f.det_score, 0) * greatest(0.0, 1.0 - abs(f.landmarks[5] - (f.landmarks[1] + f.landmarks[3]) / 2)"
    " / greatest(abs(f.landmarks[3] - f.landmarks[1]) / 2, 0.001))"
)


@dataclass(frozen=True, slots=True)
class Person:
    """One person of a face table."""

    person_id: int
    name: str | None
    hidden: bool
    confirmed: bool
    faces: int
    photos: int
    feature_face_id: int | None
    #: Whether the feature face was chosen by a user (else: the best-scored frontal face).
    feature_chosen: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "hidden": self.hidden,
            "confirmed": self.confirmed,
            "faces": self.faces,
            "photos": self.photos,
            "feature_face_id": self.feature_face_id,
            "feature_chosen": self.feature_chosen,
        }


@dataclass(frozen=True, slots=True)
class Assignments:
    """Each assigned face of a table: ``face_id``, ``person_id`` and whether a user put it there."""

    face_id: np.ndarray  # int64
    person_id: np.ndarray  # int64
    manual: np.ndarray  # bool


def log(con: duckdb.DuckDBPyConnection, table: str, action: str, /, **detail: object) -> None:
    """Record a decision (manual or automatic) in ``lookalike_people_log``."""
    con.execute(
        "INSERT INTO lookalike_people_log (tbl, action, detail) VALUES (?, ?, ?)",
        [table, action, json.dumps(detail, default=str)],
    )


def new_person_ids(con: duckdb.DuckDBPyConnection, n: int) -> np.ndarray:
    """``n`` fresh person ids from the dataset's sequence."""
    if n <= 0:
        return np.zeros(0, np.int64)
    rows = con.execute("SELECT nextval('lookalike_person_id') FROM range(?)", [int(n)]).fetchall()
    return np.asarray([r[0] for r in rows], np.int64)


def insert_persons(
    con: duckdb.DuckDBPyConnection, table: str, person_ids: np.ndarray, *, confirmed: bool = False
) -> None:
    if len(person_ids) == 0:
        return
    con.execute(
        "INSERT INTO lookalike_persons (tbl, person_id, confirmed) SELECT ?, unnest(?), ?",
        [table, [int(p) for p in person_ids], confirmed],
    )


def assign(
    con: duckdb.DuckDBPyConnection,
    table: str,
    face_ids: np.ndarray,
    person_ids: np.ndarray,
    *,
    manual: bool = False,
) -> None:
    """Put each face in its person (replacing any earlier assignment of those faces)."""
    if len(face_ids) == 0:
        return
    fids = [int(f) for f in face_ids]
    con.execute("DELETE FROM lookalike_person_faces WHERE tbl = ? AND list_contains(?, face_id)", [table, fids])
    con.execute(
        """INSERT INTO lookalike_person_faces (tbl, face_id, person_id, manual)
           SELECT ?, unnest(?), unnest(?), ?""",
        [table, fids, [int(p) for p in person_ids], manual],
    )


def unassign(con: duckdb.DuckDBPyConnection, table: str, face_ids: list[int]) -> None:
    con.execute("DELETE FROM lookalike_person_faces WHERE tbl = ? AND list_contains(?, face_id)", [table, face_ids])


def assignments(con: duckdb.DuckDBPyConnection, info: TableInfo) -> Assignments:
    """Every assignment of a face that still exists in the table, ordered by face id."""
    tbl = con.execute(
        f"""SELECT pf.face_id, pf.person_id, pf.manual FROM lookalike_person_faces pf
            JOIN "{info.faces_table}" f ON f.face_id = pf.face_id AND f.embedding IS NOT NULL
            WHERE pf.tbl = ? ORDER BY pf.face_id""",
        [info.name],
    ).fetchnumpy()
    return Assignments(
        face_id=np.asarray(tbl["face_id"], np.int64),
        person_id=np.asarray(tbl["person_id"], np.int64),
        manual=np.asarray(tbl["manual"], bool),
    )


def cannot_links(con: duckdb.DuckDBPyConnection, table: str) -> tuple[np.ndarray, np.ndarray]:
    """``(face_id, person_id)`` pairs: faces a user moved out of a person, never to go back."""
    rows = con.execute("SELECT face_id, person_id FROM lookalike_person_cannot_link WHERE tbl = ?", [table]).fetchall()
    return np.asarray([r[0] for r in rows], np.int64), np.asarray([r[1] for r in rows], np.int64)


def add_cannot_links(con: duckdb.DuckDBPyConnection, table: str, face_ids: list[int], person_id: int) -> None:
    con.execute(
        """INSERT OR IGNORE INTO lookalike_person_cannot_link (tbl, face_id, person_id)
           SELECT ?, unnest(?), ?""",
        [table, face_ids, person_id],
    )


def same_photo_pairs(con: duckdb.DuckDBPyConnection, info: TableInfo) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of face ids from one photo: certainly two different people."""
    rows = con.execute(
        f"""WITH multi AS (SELECT uri FROM "{info.faces_table}" WHERE embedding IS NOT NULL
                           GROUP BY uri HAVING count(*) > 1)
            SELECT a.face_id, b.face_id FROM "{info.faces_table}" a JOIN "{info.faces_table}" b
              ON a.uri = b.uri AND a.face_id < b.face_id
            WHERE a.uri IN (SELECT uri FROM multi) AND a.embedding IS NOT NULL AND b.embedding IS NOT NULL"""
    ).fetchall()
    return np.asarray([r[0] for r in rows], np.int64), np.asarray([r[1] for r in rows], np.int64)


def prune(con: duckdb.DuckDBPyConnection, info: TableInfo) -> int:
    """Drop assignments of faces that are gone (photo removed or re-indexed), then the persons left without a
    face, their cannot-links, and feature faces no longer in their person. Returns the persons dropped."""
    con.execute(
        f"""DELETE FROM lookalike_person_faces WHERE tbl = ? AND face_id NOT IN
            (SELECT face_id FROM "{info.faces_table}" WHERE embedding IS NOT NULL)""",
        [info.name],
    )
    empty = [
        r[0]
        for r in con.execute(
            """SELECT person_id FROM lookalike_persons WHERE tbl = ? AND person_id NOT IN
               (SELECT person_id FROM lookalike_person_faces WHERE tbl = ?)""",
            [info.name, info.name],
        ).fetchall()
    ]
    if empty:
        drop_persons(con, info.name, empty)
    con.execute(
        """UPDATE lookalike_persons p SET feature_face_id = NULL WHERE tbl = ? AND feature_face_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM lookalike_person_faces pf WHERE pf.tbl = p.tbl
                           AND pf.face_id = p.feature_face_id AND pf.person_id = p.person_id)""",
        [info.name],
    )
    return len(empty)


def drop_persons(con: duckdb.DuckDBPyConnection, table: str, person_ids: list[int]) -> None:
    """Delete persons (their assignments and cannot-links too)."""
    con.execute("DELETE FROM lookalike_person_faces WHERE tbl = ? AND list_contains(?, person_id)", [table, person_ids])
    con.execute(
        "DELETE FROM lookalike_person_cannot_link WHERE tbl = ? AND list_contains(?, person_id)", [table, person_ids]
    )
    con.execute("DELETE FROM lookalike_persons WHERE tbl = ? AND list_contains(?, person_id)", [table, person_ids])


def persons(con: duckdb.DuckDBPyConnection, info: TableInfo, person_ids: list[int] | None = None) -> list[Person]:
    """Persons of the table with their face and photo counts and feature face: named first, then by size."""
    where = "" if person_ids is None else " AND list_contains(?, p.person_id)"
    params: list[object] = [info.name, info.name]
    if person_ids is not None:
        params.append(person_ids)
    rows = con.execute(
        f"""WITH agg AS (
                SELECT pf.person_id, count(*) AS n_faces, count(DISTINCT f.uri) AS n_photos,
                       arg_max(f.face_id, {_FRONTAL_SQL}) AS best_face
                FROM lookalike_person_faces pf JOIN "{info.faces_table}" f ON f.face_id = pf.face_id
                WHERE pf.tbl = ? GROUP BY pf.person_id)
            SELECT p.person_id, p.name, p.hidden, p.confirmed, coalesce(a.n_faces, 0), coalesce(a.n_photos, 0),
                   coalesce(p.feature_face_id, a.best_face), p.feature_face_id IS NOT NULL
            FROM lookalike_persons p LEFT JOIN agg a ON a.person_id = p.person_id
            WHERE p.tbl = ?{where}
            ORDER BY p.name IS NULL, coalesce(a.n_faces, 0) DESC, p.person_id""",
        params,
    ).fetchall()
    return [
        Person(
            person_id=int(r[0]),
            name=r[1],
            hidden=bool(r[2]),
            confirmed=bool(r[3]),
            faces=int(r[4]),
            photos=int(r[5]),
            feature_face_id=None if r[6] is None else int(r[6]),
            feature_chosen=bool(r[7]),
        )
        for r in rows
    ]


def person_of_faces(
    con: duckdb.DuckDBPyConnection, table: str, face_ids: list[int]
) -> dict[int, tuple[int, str | None]]:
    """``face_id -> (person_id, name)`` for the given faces that are in a person."""
    if not face_ids:
        return {}
    rows = con.execute(
        """SELECT pf.face_id, pf.person_id, p.name FROM lookalike_person_faces pf
           JOIN lookalike_persons p ON p.tbl = pf.tbl AND p.person_id = pf.person_id
           WHERE pf.tbl = ? AND list_contains(?, pf.face_id)""",
        [table, face_ids],
    ).fetchall()
    return {int(r[0]): (int(r[1]), r[2]) for r in rows}


def person_face_rows(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int) -> list[dict[str, object]]:
    """The faces of one person: id, photo, face index, box, score and whether a user put it there."""
    rows = con.execute(
        f"""SELECT f.face_id, f.uri, f.face_index, f.bbox, f.det_score, pf.manual
            FROM lookalike_person_faces pf JOIN "{info.faces_table}" f ON f.face_id = pf.face_id
            WHERE pf.tbl = ? AND pf.person_id = ? ORDER BY f.uri, f.face_index""",
        [info.name, person_id],
    ).fetchall()
    return [
        {
            "face_id": int(r[0]),
            "uri": r[1],
            "face": int(r[2]),
            "bbox": [round(float(v), 1) for v in r[3]] if r[3] is not None else None,
            "det_score": None if r[4] is None else round(float(r[4]), 4),
            "manual": bool(r[5]),
        }
        for r in rows
    ]
