"""Managing persons: name, merge, move faces, hide, choose the feature face, forget.

Each edit is one transaction, is written to ``lookalike_people_log``, and *confirms* the persons it touches: a
full regrouping keeps a confirmed person with all its faces (see :mod:`lookalike.people.grouping`). Moving a face
out of a person also records a cannot-link, so no later grouping puts it back.

Rules, each a clear error: unknown person or face ids, merging a person with itself, a face of another table,
names that are empty, too long or hold control characters, two faces of one photo in one person, forgetting a
person twice.
"""

from __future__ import annotations

import json
import unicodedata

import duckdb
import numpy as np

from lookalike.dataset.connection import transaction
from lookalike.dataset.store import TableInfo
from lookalike.errors import InvalidArgument, PeopleConflict, PersonNotFound
from lookalike.people import store as pstore

#: Longest person name accepted (characters).
MAX_NAME = 200


def get_person(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int) -> pstore.Person:
    """The person ``person_id`` of the table, or :class:`PersonNotFound` (saying when it was forgotten)."""
    found = pstore.persons(con, info, [int(person_id)])
    if found:
        return found[0]
    gone = con.execute(
        "SELECT min(forgotten_at) FROM lookalike_people_forgotten WHERE tbl = ? AND person_id = ?",
        [info.name, int(person_id)],
    ).fetchall()[0][0]
    if gone is not None:
        raise PersonNotFound(f"person {person_id} of table {info.name!r} was forgotten on {gone:%Y-%m-%d %H:%M}")
    raise PersonNotFound(f"no person {person_id} in table {info.name!r}", hint="list them with: lookalike people list")


def check_name(name: str) -> str:
    """A person's name, trimmed; refuse empty, over-long or control-character names."""
    clean = (name or "").strip()
    if not clean:
        raise InvalidArgument("a person's name cannot be empty", hint="to clear a name, hide the person instead")
    if len(clean) > MAX_NAME:
        raise InvalidArgument(f"a person's name is at most {MAX_NAME} characters, got {len(clean)}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in clean):
        raise InvalidArgument(f"a person's name cannot hold control characters: {clean!r}")
    return clean


def _confirm(con: duckdb.DuckDBPyConnection, table: str, person_ids: list[int]) -> None:
    con.execute(
        """UPDATE lookalike_persons SET confirmed = true, updated_at = current_timestamp
           WHERE tbl = ? AND list_contains(?, person_id)""",
        [table, person_ids],
    )


def name(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int, new_name: str) -> pstore.Person:
    clean = check_name(new_name)
    with transaction(con):
        get_person(con, info, person_id)
        con.execute(
            "UPDATE lookalike_persons SET name = ? WHERE tbl = ? AND person_id = ?", [clean, info.name, person_id]
        )
        _confirm(con, info.name, [person_id])
        pstore.log(con, info.name, "name", person_id=person_id, name=clean)
    return get_person(con, info, person_id)


def hide(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int, hidden: bool = True) -> pstore.Person:
    with transaction(con):
        get_person(con, info, person_id)
        con.execute(
            "UPDATE lookalike_persons SET hidden = ? WHERE tbl = ? AND person_id = ?", [hidden, info.name, person_id]
        )
        _confirm(con, info.name, [person_id])
        pstore.log(con, info.name, "hide" if hidden else "unhide", person_id=person_id)
    return get_person(con, info, person_id)


def _face_owners(con: duckdb.DuckDBPyConnection, info: TableInfo, face_ids: list[int]) -> dict[int, tuple[str, int]]:
    """``face_id -> (uri, person_id or -1)`` for embedded faces of this table; unknown ids raise."""
    rows = con.execute(
        f"""SELECT f.face_id, f.uri, coalesce(pf.person_id, -1) FROM "{info.faces_table}" f
            LEFT JOIN lookalike_person_faces pf ON pf.tbl = ? AND pf.face_id = f.face_id
            WHERE list_contains(?, f.face_id) AND f.embedding IS NOT NULL""",
        [info.name, face_ids],
    ).fetchall()
    found = {int(r[0]): (str(r[1]), int(r[2])) for r in rows}
    missing = [f for f in face_ids if f not in found]
    if missing:
        shown = ", ".join(str(m) for m in missing[:10])
        raise PersonNotFound(
            f"no face {shown} in table {info.name!r}",
            hint="face ids come from lookalike people show / search --json; a face of another table needs its --table",
        )
    return found


def _check_one_photo_per_person(
    con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int | None, uris: list[str], what: str
) -> None:
    """Refuse when ``uris`` (photos of faces about to join ``person_id``) repeat, or already have a face in it."""
    seen: set[str] = set()
    for uri in uris:
        if uri in seen:
            raise PeopleConflict(f"{what}: two faces of photo {uri!r} would be in one person")
        seen.add(uri)
    if person_id is None:
        return
    rows = con.execute(
        f"""SELECT f.uri FROM lookalike_person_faces pf JOIN "{info.faces_table}" f ON f.face_id = pf.face_id
            WHERE pf.tbl = ? AND pf.person_id = ? AND list_contains(?, f.uri) LIMIT 1""",
        [info.name, person_id, list(seen)],
    ).fetchall()
    if rows:
        raise PeopleConflict(
            f"{what}: person {person_id} already has a face of photo {rows[0][0]!r}; "
            "two faces of one photo are two people",
            hint="move that face out of the person first",
        )


def move(con: duckdb.DuckDBPyConnection, info: TableInfo, face_ids: list[int], to: int | None) -> pstore.Person:
    """Move faces to person ``to`` (``None``: a new person). Each face's old person remembers it must not get
    it back."""
    if not face_ids:
        raise InvalidArgument("move needs at least one face id")
    ids = sorted({int(f) for f in face_ids})
    with transaction(con):
        owners = _face_owners(con, info, ids)
        if to is not None:
            get_person(con, info, to)
        moving = [f for f in ids if owners[f][1] != to]
        _check_one_photo_per_person(con, info, to, [owners[f][0] for f in moving], "move")
        target = int(pstore.new_person_ids(con, 1)[0]) if to is None else int(to)
        if to is None:
            pstore.insert_persons(con, info.name, np.asarray([target]), confirmed=True)
        sources = sorted({owners[f][1] for f in moving if owners[f][1] >= 0})
        for src in sources:
            pstore.add_cannot_links(con, info.name, [f for f in moving if owners[f][1] == src], src)
        con.execute(
            "DELETE FROM lookalike_person_cannot_link WHERE tbl = ? AND person_id = ? AND list_contains(?, face_id)",
            [info.name, target, ids],
        )
        pstore.assign(con, info.name, np.asarray(ids), np.full(len(ids), target), manual=True)
        _confirm(con, info.name, [target, *sources])
        pstore.prune(con, info)
        pstore.log(con, info.name, "move", face_ids=ids, to=target, new=to is None, from_persons=sources)
    return get_person(con, info, target)


def unassign_faces(con: duckdb.DuckDBPyConnection, info: TableInfo, face_ids: list[int]) -> int:
    """Take faces out of their persons without putting them anywhere (remembered like a move)."""
    ids = sorted({int(f) for f in face_ids})
    with transaction(con):
        owners = _face_owners(con, info, ids)
        sources = sorted({p for _, p in owners.values() if p >= 0})
        for src in sources:
            pstore.add_cannot_links(con, info.name, [f for f in ids if owners[f][1] == src], src)
        pstore.unassign(con, info.name, ids)
        _confirm(con, info.name, sources)
        pstore.prune(con, info)
        pstore.log(con, info.name, "unassign", face_ids=ids, from_persons=sources)
    return len(ids)


def merge(con: duckdb.DuckDBPyConnection, info: TableInfo, person_ids: list[int]) -> pstore.Person:
    """Merge persons into the first one given (it keeps its id, name and feature face)."""
    ids = [int(p) for p in person_ids]
    if len(ids) < 2:
        raise InvalidArgument("merge needs at least two persons")
    if len(set(ids)) != len(ids):
        raise PeopleConflict(f"cannot merge a person with itself: {', '.join(map(str, ids))}")
    target, others = ids[0], ids[1:]
    with transaction(con):
        people = [get_person(con, info, p) for p in ids]
        uris = con.execute(
            f"""SELECT f.uri FROM lookalike_person_faces pf JOIN "{info.faces_table}" f ON f.face_id = pf.face_id
                WHERE pf.tbl = ? AND list_contains(?, pf.person_id) GROUP BY f.uri HAVING count(*) > 1 LIMIT 1""",
            [info.name, ids],
        ).fetchall()
        if uris:
            raise PeopleConflict(
                f"merge: photo {uris[0][0]!r} has a face in two of these persons; two faces of one photo are two "
                "people",
                hint="move one of those faces out first",
            )
        con.execute(
            """UPDATE lookalike_person_faces SET person_id = ? WHERE tbl = ? AND list_contains(?, person_id)""",
            [target, info.name, others],
        )
        con.execute(
            """INSERT OR IGNORE INTO lookalike_person_cannot_link (tbl, face_id, person_id)
               SELECT tbl, face_id, ? FROM lookalike_person_cannot_link
               WHERE tbl = ? AND list_contains(?, person_id)""",
            [target, info.name, others],
        )
        if people[0].name is None:
            named = next((p.name for p in people[1:] if p.name), None)
            if named:
                con.execute(
                    "UPDATE lookalike_persons SET name = ? WHERE tbl = ? AND person_id = ?", [named, info.name, target]
                )
        pstore.drop_persons(con, info.name, others)
        _confirm(con, info.name, [target])
        pstore.log(con, info.name, "merge", into=target, merged=others)
    return get_person(con, info, target)


def feature(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int, face_id: int) -> pstore.Person:
    """Show ``face_id`` (a face of the person) for the person."""
    with transaction(con):
        get_person(con, info, person_id)
        owners = _face_owners(con, info, [int(face_id)])
        if owners[int(face_id)][1] != person_id:
            raise InvalidArgument(f"face {face_id} is not a face of person {person_id}")
        con.execute(
            "UPDATE lookalike_persons SET feature_face_id = ? WHERE tbl = ? AND person_id = ?",
            [int(face_id), info.name, person_id],
        )
        _confirm(con, info.name, [person_id])
        pstore.log(con, info.name, "feature", person_id=person_id, face_id=int(face_id))
    return get_person(con, info, person_id)


def export_rows(con: duckdb.DuckDBPyConnection, info: TableInfo) -> list[dict[str, object]]:
    """One row per embedded face: ``uri``, ``face``, ``face_id``, ``person_id`` (null: unassigned),
    ``person_name``."""
    rows = con.execute(
        f"""SELECT f.uri, f.face_index, f.face_id, pf.person_id, p.name FROM "{info.faces_table}" f
            LEFT JOIN lookalike_person_faces pf ON pf.tbl = ? AND pf.face_id = f.face_id
            LEFT JOIN lookalike_persons p ON p.tbl = pf.tbl AND p.person_id = pf.person_id
            WHERE f.embedding IS NOT NULL ORDER BY f.uri, f.face_index""",
        [info.name],
    ).fetchall()
    return [
        {"uri": r[0], "face": int(r[1]), "face_id": int(r[2]), "person_id": r[3], "person_name": r[4]} for r in rows
    ]


def forget(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int) -> dict[str, object]:
    """Delete a person's faces (face rows and embeddings) and the person, and remember where those faces were
    (photo, fingerprint, box: never the embedding) so re-indexing the photos does not bring them back.

    The caller bumps nothing: the face rows go, the table version is bumped here, and the caller refreshes the
    vector index and drops cached matrices (:meth:`lookalike.people.People.forget`)."""
    with transaction(con):
        person = get_person(con, info, person_id)
        faces = con.execute(
            f"""SELECT f.face_id, f.uri, f.face_index, f.bbox, o.fingerprint
                FROM lookalike_person_faces pf JOIN "{info.faces_table}" f ON f.face_id = pf.face_id
                LEFT JOIN lookalike_objects o ON o.tbl = pf.tbl AND o.uri = f.uri
                WHERE pf.tbl = ? AND pf.person_id = ?""",
            [info.name, person_id],
        ).fetchall()
        face_ids = [int(r[0]) for r in faces]
        uris = sorted({str(r[1]) for r in faces})
        con.execute(
            """INSERT INTO lookalike_people_forgotten (tbl, uri, fingerprint, face_index, bbox, person_id)
               SELECT ?, unnest(?), unnest(?), unnest(?), unnest(?), ?""",
            [
                info.name,
                [r[1] for r in faces],
                [r[4] for r in faces],
                [int(r[2]) for r in faces],
                [list(r[3]) for r in faces],
                person_id,
            ],
        )
        con.execute(f'DELETE FROM "{info.faces_table}" WHERE list_contains(?, face_id)', [face_ids])
        con.execute(
            "DELETE FROM lookalike_person_cannot_link WHERE tbl = ? AND list_contains(?, face_id)",
            [info.name, face_ids],
        )
        pstore.drop_persons(con, info.name, [person_id])
        # photos left with no face row keep a status row, so the photo still counts as indexed
        con.execute(
            f"""INSERT INTO "{info.faces_table}" (uri, status)
                SELECT u, 'forgotten' FROM unnest(?) AS t(u)
                WHERE u NOT IN (SELECT uri FROM "{info.faces_table}")""",
            [uris],
        )
        con.execute(
            f"""UPDATE lookalike_objects o SET n_faces = (SELECT count(*) FROM "{info.faces_table}" f
                WHERE f.uri = o.uri AND f.embedding IS NOT NULL) WHERE o.tbl = ? AND list_contains(?, o.uri)""",
            [info.name, uris],
        )
        con.execute(
            "UPDATE lookalike_tables SET version = version + 1, updated_at = current_timestamp WHERE name = ?",
            [info.name],
        )
        pstore.log(
            con, info.name, "forget", person_id=person_id, name=person.name, faces=len(face_ids), photos=len(uris)
        )
    return {
        "person_id": person_id,
        "name": person.name,
        "faces_removed": len(face_ids),
        "photos": len(uris),
        "face_ids": face_ids,
    }


def log_rows(con: duckdb.DuckDBPyConnection, table: str, limit: int = 100) -> list[dict[str, object]]:
    """The latest people decisions of a table, newest first."""
    rows = con.execute(
        "SELECT logged_at, action, detail FROM lookalike_people_log WHERE tbl = ? ORDER BY logged_at DESC LIMIT ?",
        [table, limit],
    ).fetchall()
    return [{"at": r[0], "action": r[1], "detail": json.loads(r[2]) if r[2] else None} for r in rows]
