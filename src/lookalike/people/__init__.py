"""People: every indexed face grouped into persons that users name, merge, split, hide and forget.

``ds.people`` (a :class:`People`) is the one entry point; the CLI (``lookalike people ...``), the REST API
(``/v1/people``) and the web page call it. The parts:

- :mod:`~lookalike.people.cluster`: average-linkage agglomeration over a nearest-neighbour graph (numpy, faiss);
- :mod:`~lookalike.people.grouping`: incremental and full runs with every manual decision kept;
- :mod:`~lookalike.people.manage`: name, merge, move, hide, feature face, forget, export;
- :mod:`~lookalike.people.store`: the rows in the dataset file.

Example::

    ds = lookalike.open("photos.duckdb")
    ds.index("~/Pictures")
    ds.people.cluster()                    # incremental: only faces in no person are looked at
    for p in ds.people.list():
        print(p.person_id, p.name, p.faces)
    ds.people.name(3, "Grandma")
    ds.people.forget(7)                    # her faces, embeddings and index entries are deleted
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence
from typing import Any

from lookalike import config
from lookalike.dataset import reader, writer
from lookalike.dataset import store as dstore
from lookalike.errors import LookalikeError
from lookalike.people import grouping, manage
from lookalike.people import store as pstore
from lookalike.people.grouping import DEFAULT_MIN_FACES, ClusterReport
from lookalike.people.store import Person
from lookalike.search import diskcache
from lookalike.search.vindex import faces as face_indexes

__all__ = ["DEFAULT_MIN_FACES", "ClusterReport", "People", "Person"]


class People:
    """The persons of a dataset's face tables (``Dataset.people``)."""

    def __init__(self, dataset_path: str) -> None:
        self.path = dataset_path

    def __repr__(self) -> str:
        return f"People({self.path!r})"

    # ------------------------------------------------------------------------------------------ grouping

    def cluster(
        self,
        table: str = config.DEFAULT_TABLE,
        *,
        full: bool = False,
        min_faces: int = DEFAULT_MIN_FACES,
        threshold: float | None = None,
    ) -> ClusterReport:
        """Group the table's faces into persons: only faces in no person (default), or everything again while
        keeping every name and manual decision (``full=True``). ``threshold`` overrides the average-linkage
        distance up to which large groups merge (two single faces need 0.8 of it; the default comes from the
        model's threshold, see ``search.calibration.grouping_thresholds``); a new person needs ``min_faces``
        faces."""
        return grouping.run_unlocked(self.path, table, full=full, min_faces=min_faces, threshold=threshold)

    def cluster_reported(self, table: str = config.DEFAULT_TABLE) -> dict[str, object]:
        """An incremental :meth:`cluster` after a job that wrote faces (index, import, a server's index job): its
        report as a dict, or ``{"error": ...}`` when it could not run (a model nobody calibrated, a table with no
        faces); the job itself still succeeded."""
        try:
            return self.cluster(table).to_dict()
        except LookalikeError as err:
            return {"error": err.to_dict()}

    # ------------------------------------------------------------------------------------------ reading

    def list(self, table: str = config.DEFAULT_TABLE, *, include_hidden: bool = False) -> builtins.list[Person]:
        """Persons of the table, named ones first, then by face count."""
        if not os.path.exists(self.path):
            return []
        with reader(self.path) as con:
            info = dstore.get_table(con, table)
            return [p for p in pstore.persons(con, info) if include_hidden or not p.hidden]

    def get(self, person_id: int, table: str = config.DEFAULT_TABLE) -> Person:
        with reader(self.path) as con:
            return manage.get_person(con, dstore.get_table(con, table), int(person_id))

    def show(self, person_id: int, table: str = config.DEFAULT_TABLE) -> dict[str, Any]:
        """A person and all their faces."""
        with reader(self.path) as con:
            info = dstore.get_table(con, table)
            person = manage.get_person(con, info, int(person_id))
            return {**person.to_dict(), "table": table, "face_list": pstore.person_face_rows(con, info, int(person_id))}

    def export(self, table: str = config.DEFAULT_TABLE) -> builtins.list[dict[str, object]]:
        """One row per embedded face: ``uri``, ``face``, ``face_id``, ``person_id`` (None: unassigned),
        ``person_name``."""
        with reader(self.path) as con:
            return manage.export_rows(con, dstore.get_table(con, table))

    def of_faces(self, face_ids: Sequence[int], table: str = config.DEFAULT_TABLE) -> dict[int, tuple[int, str | None]]:
        """``face_id -> (person_id, person_name)`` for those of the faces that are in a person."""
        if not face_ids or not os.path.exists(self.path):
            return {}
        with reader(self.path) as con:
            return pstore.person_of_faces(con, table, [int(f) for f in face_ids])

    def assignments(self, table: str = config.DEFAULT_TABLE) -> pstore.Assignments:
        """Every face in a person, as arrays sorted by face id."""
        with reader(self.path) as con:
            return pstore.assignments(con, dstore.get_table(con, table))

    def history(self, table: str = config.DEFAULT_TABLE, limit: int = 100) -> builtins.list[dict[str, object]]:
        """The latest grouping runs and manual decisions, newest first."""
        with reader(self.path) as con:
            dstore.get_table(con, table)
            return manage.log_rows(con, table, limit)

    # ------------------------------------------------------------------------------------------ editing

    def name(self, person_id: int, name: str, table: str = config.DEFAULT_TABLE) -> Person:
        with writer(self.path) as con:
            return manage.name(con, dstore.get_table(con, table), int(person_id), name)

    def merge(self, person_ids: Sequence[int], table: str = config.DEFAULT_TABLE) -> Person:
        """Merge persons into the first one given."""
        with writer(self.path) as con:
            return manage.merge(con, dstore.get_table(con, table), [int(p) for p in person_ids])

    def move(self, face_ids: Sequence[int], to: int | None = None, table: str = config.DEFAULT_TABLE) -> Person:
        """Move faces to person ``to``, or to a new person when ``to`` is None."""
        with writer(self.path) as con:
            return manage.move(con, dstore.get_table(con, table), [int(f) for f in face_ids], to)

    def unassign(self, face_ids: Sequence[int], table: str = config.DEFAULT_TABLE) -> int:
        """Take faces out of their persons (they never go back to them)."""
        with writer(self.path) as con:
            return manage.unassign_faces(con, dstore.get_table(con, table), [int(f) for f in face_ids])

    def hide(self, person_id: int, table: str = config.DEFAULT_TABLE, *, hidden: bool = True) -> Person:
        with writer(self.path) as con:
            return manage.hide(con, dstore.get_table(con, table), int(person_id), hidden)

    def feature(self, person_id: int, face_id: int, table: str = config.DEFAULT_TABLE) -> Person:
        with writer(self.path) as con:
            return manage.feature(con, dstore.get_table(con, table), int(person_id), int(face_id))

    def forget(self, person_id: int, table: str = config.DEFAULT_TABLE) -> dict[str, object]:
        """Delete a person: their face rows and embeddings, their vector-index entries (older index builds
        too), the table's cached matrices, and the person. Their faces stay out of the table when the photos
        are indexed again. Returns what was removed."""
        with writer(self.path) as con:
            info = dstore.get_table(con, table)
            report = manage.forget(con, info, int(person_id))
            info = dstore.get_table(con, table)
            report["vector_index_entries_removed"] = face_indexes.purge(con, self.path, info)
        report["cached_matrices_removed"] = diskcache.drop_table(self.path, table)
        return report
