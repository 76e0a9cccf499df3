"""``/v1/people``: the persons of a face table (:mod:`lookalike.people`), to list, show, export, group and edit.

Reads (``GET``) go to the dataset file on a short read-only connection (:meth:`Catalog.read_people`), never to a
cached snapshot, so an edit shows at once. Edits (``POST``, ``DELETE``) are written by the server's helper
process (:mod:`lookalike.server.people_writer`: DuckDB refuses a writer next to the server's own readers in one
process); each is one transaction of :class:`lookalike.people.People`, the same calls as ``lookalike people``.
A dataset busy with another writer (an index job commits in short windows) is waited for; one still busy after
that answers 409 ``dataset_locked``.

Every route takes ``table`` (default ``faces``): in the query for ``GET`` and ``DELETE``, in the JSON body for
``POST``. Errors name the input: an unknown person or face id is 404 ``person_not_found``, a rule an edit would
break (merging a person with itself, two faces of one photo in one person) is 409 ``people_conflict``, a bad
value (an empty name) is 400 ``invalid_argument``.
"""

from __future__ import annotations

from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lookalike import config
from lookalike.dataset.store import TableInfo
from lookalike.errors import InvalidArgument, PersonNotFound
from lookalike.people import DEFAULT_MIN_FACES, manage
from lookalike.people import store as pstore
from lookalike.server.catalog import Catalog
from lookalike.server.people_writer import PeopleWriter
from lookalike.server.routes.deps import catalog_of
from lookalike.server.routes.media import drop_thumbnails

router = APIRouter(tags=["people"])

#: Ids are DuckDB BIGINTs.
MAX_ID = 2**63 - 1
#: Most ids one edit may name.
MAX_IDS = 10_000
#: Most entries of ``GET /v1/people/history``.
MAX_HISTORY = 1000

Id = Annotated[int, Field(ge=0, le=MAX_ID)]
PersonIdPath = Annotated[int, Path(ge=0, le=MAX_ID, description="The person's id (from GET /v1/people).")]
TableQuery = Annotated[str, Query(description="The face table (collection).")]
_TABLE_FIELD = Field(config.DEFAULT_TABLE, description="The face table (collection).")


# ---------------------------------------------------------------------------------------------- shapes


class PersonOut(BaseModel):
    """A person: the faces grouped as one individual, and what users decided about them."""

    person_id: int = Field(description="Stable id of the person within the dataset.")
    name: str | None = Field(description="The name a user gave, or null.")
    hidden: bool = Field(description="Hidden persons are left out of GET /v1/people unless include_hidden.")
    confirmed: bool = Field(description="A user touched this person: a full regrouping keeps it with all its faces.")
    faces: int = Field(description="Number of faces in the person.")
    photos: int = Field(description="Number of photos those faces are in.")
    feature_face_id: int | None = Field(
        description="The face that shows the person (chosen by a user, else the best frontal face); "
        "its picture is GET /v1/faces/{id}/thumbnail."
    )
    feature_chosen: bool = Field(description="Whether a user chose the feature face.")


class PeopleList(BaseModel):
    """The persons of a table: named ones first, then by face count."""

    table: str = Field(description="The face table.")
    people: list[PersonOut] = Field(description="The persons (hidden ones only with include_hidden).")


class PersonFace(BaseModel):
    """One face of a person."""

    face_id: int = Field(description="The face's id (for moves, the feature face, thumbnails).")
    uri: str = Field(description="The photo the face is in.")
    face: int = Field(description="Index of the face within its photo (0: the largest).")
    bbox: list[float] | None = Field(description="x1, y1, x2, y2 in the photo's (upright) pixels.")
    det_score: float | None = Field(description="The face detector's confidence.")
    manual: bool = Field(description="Whether a user put the face in this person.")


class PersonDetail(PersonOut):
    """A person and all their faces."""

    table: str = Field(description="The face table.")
    face_list: list[PersonFace] = Field(description="Every face of the person, by photo.")


class ExportRow(BaseModel):
    """One embedded face and the person it is in."""

    uri: str = Field(description="The photo.")
    face: int = Field(description="Index of the face within its photo.")
    face_id: int = Field(description="The face's id.")
    person_id: int | None = Field(description="The face's person, or null when it is in none.")
    person_name: str | None = Field(description="That person's name, or null.")


class ExportResponse(BaseModel):
    table: str = Field(description="The face table.")
    rows: list[ExportRow] = Field(description="One row per embedded face, by photo.")


class HistoryEntry(BaseModel):
    at: str = Field(description="When (ISO 8601).")
    action: str = Field(description="cluster, name, merge, move, unassign, hide, unhide, feature or forget.")
    detail: dict[str, Any] | None = Field(description="What the decision named (ids, name, counts).")


class HistoryResponse(BaseModel):
    table: str = Field(description="The face table.")
    entries: list[HistoryEntry] = Field(description="Grouping runs and manual decisions, newest first.")


class ClusterReportOut(BaseModel):
    """What a grouping run did."""

    table: str = Field(description="The face table.")
    mode: str = Field(description="incremental (only faces in no person) or full.")
    threshold: float = Field(description="The average-linkage cosine distance up to which large groups merged.")
    face_threshold: float = Field(
        description="The average-linkage cosine distance up to which two single faces merged."
    )
    min_faces: int = Field(description="Faces a new person needed.")
    faces: int = Field(description="Embedded faces in the table.")
    looked_at: int = Field(description="Faces the run placed (incremental: those that were in no person).")
    assigned: int = Field(description="Of those, faces now in a person.")
    joined_existing: int = Field(description="Of those, faces that joined a person that existed before.")
    new_persons: int = Field(description="Persons the run created.")
    removed_persons: int = Field(description="Persons removed (left without faces, or regrouped away).")
    persons: int = Field(description="Persons in the table after the run.")
    unassigned: int = Field(description="Looked-at faces left in no person (groups smaller than min_faces).")
    seconds: float = Field(description="How long the run took.")


class ForgetResponse(BaseModel):
    """What forgetting a person removed."""

    table: str = Field(description="The face table.")
    person_id: int = Field(description="The forgotten person.")
    name: str | None = Field(description="Their name, if they had one.")
    faces_removed: int = Field(description="Face rows (and embeddings) deleted.")
    photos: int = Field(description="Photos those faces were in (they stay indexed, without those faces).")
    face_ids: list[int] = Field(description="The deleted faces' ids (their thumbnails are gone too).")
    vector_index_entries_removed: int = Field(description="Entries deleted from the table's vector indexes.")
    cached_matrices_removed: int = Field(description="On-disk cached matrices of the table deleted.")


class UnassignResponse(BaseModel):
    table: str = Field(description="The face table.")
    unassigned: int = Field(description="Faces taken out of their persons.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = _TABLE_FIELD


class ClusterRequest(_Body):
    """Group the table's faces into persons."""

    full: bool = Field(
        False,
        description="Regroup every face (names, merges and moved faces are kept); default: only faces in no person.",
    )
    min_faces: int = Field(DEFAULT_MIN_FACES, ge=1, le=1_000_000, description="Faces a new person needs.")
    threshold: float | None = Field(
        None,
        gt=0.0,
        lt=2.0,
        description="Average-linkage cosine distance up to which large groups merge; two single faces need 0.8 of it "
        "(default: 0.93 x the model's threshold).",
    )


class NameRequest(_Body):
    name: str = Field(description="The person's new name (trimmed; 1 to 200 characters, no control characters).")


class MergeRequest(_Body):
    person_ids: list[Id] = Field(
        max_length=1000, description="The persons to merge; the first one is kept (its id, name and feature face)."
    )


class MoveRequest(_Body):
    face_ids: list[Id] = Field(max_length=MAX_IDS, description="The faces to move.")
    to: Id | None = Field(None, description="The person to move them to; null: a new person.")


class UnassignRequest(_Body):
    face_ids: list[Id] = Field(max_length=MAX_IDS, description="The faces to take out of their persons.")


class HideRequest(_Body):
    hidden: bool = Field(True, description="true: hide the person; false: show it again.")


class FeatureRequest(_Body):
    face_id: Id = Field(description="A face of the person, to show them by.")


class TableBody(_Body):
    """Names the table only."""


# ---------------------------------------------------------------------------------------------- helpers


def _writer(request: Request) -> PeopleWriter:
    writer: PeopleWriter = request.app.state.people_writer
    return writer


async def _edit(request: Request, table: str, op: str, **args: Any) -> Any:
    """Run one edit in the helper process, then make the catalog read the table's persons again."""
    result = await run_in_threadpool(_writer(request).call, op, table=table, **args)
    catalog_of(request).people_changed(table)
    return result


def _check_text(value: str, what: str) -> None:
    """Refuse text that cannot be stored (unpaired surrogates, which JSON can carry but UTF-8 cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidArgument(f"{what} holds characters that are not valid Unicode text: {value!r}") from err


def _list(con: duckdb.DuckDBPyConnection, info: TableInfo, include_hidden: bool) -> list[dict[str, object]]:
    return [p.to_dict() for p in pstore.persons(con, info) if include_hidden or not p.hidden]


def _show(con: duckdb.DuckDBPyConnection, info: TableInfo, person_id: int) -> dict[str, object]:
    person = manage.get_person(con, info, person_id)
    return {**person.to_dict(), "table": info.name, "face_list": pstore.person_face_rows(con, info, person_id)}


def _history(con: duckdb.DuckDBPyConnection, info: TableInfo, limit: int) -> list[dict[str, object]]:
    rows = manage.log_rows(con, info.name, limit)
    return [{**r, "at": r["at"].isoformat() if hasattr(r["at"], "isoformat") else str(r["at"])} for r in rows]


def _no_person(table: str, person_id: int) -> dict[str, object]:
    """A dataset from before people existed has no person."""
    raise PersonNotFound(
        f"no person {person_id} in table {table!r}", hint="group the faces first: POST /v1/people/cluster"
    )


async def _read(catalog: Catalog, table: str, fn: Any, empty: Any) -> Any:
    return await run_in_threadpool(catalog.read_people, table, fn, empty)


# ---------------------------------------------------------------------------------------------- reads


@router.get("/people", response_model=PeopleList)
async def list_people(
    request: Request,
    table: TableQuery = config.DEFAULT_TABLE,
    include_hidden: Annotated[bool, Query(description="Also list hidden persons.")] = False,
) -> dict[str, object]:
    """The persons of a table with their face counts and feature face: named ones first, then the largest."""
    people = await _read(catalog_of(request), table, lambda con, info: _list(con, info, include_hidden), list)
    return {"table": table, "people": people}


@router.get("/people/export", response_model=ExportResponse)
async def export_people(request: Request, table: TableQuery = config.DEFAULT_TABLE) -> dict[str, object]:
    """Every embedded face of the table with its person (``person_id`` null: in none)."""
    rows = await _read(catalog_of(request), table, manage.export_rows, list)
    return {"table": table, "rows": rows}


@router.get("/people/history", response_model=HistoryResponse)
async def people_history(
    request: Request,
    table: TableQuery = config.DEFAULT_TABLE,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="Most entries returned.")] = 100,
) -> dict[str, object]:
    """The table's latest grouping runs and manual decisions, newest first."""
    entries = await _read(catalog_of(request), table, lambda con, info: _history(con, info, limit), list)
    return {"table": table, "entries": entries}


@router.get("/people/{person_id}", response_model=PersonDetail)
async def get_person(request: Request, person_id: PersonIdPath, table: TableQuery = config.DEFAULT_TABLE) -> Any:
    """One person and all their faces (``face_list``)."""
    return await _read(
        catalog_of(request),
        table,
        lambda con, info: _show(con, info, person_id),
        lambda: _no_person(table, person_id),
    )


# ---------------------------------------------------------------------------------------------- edits


@router.post("/people/cluster", response_model=ClusterReportOut)
async def cluster_people(request: Request, body: ClusterRequest) -> Any:
    """Group the table's faces into persons: only faces in no person (default), or all again (``full``), keeping
    every name and manual decision. Index jobs run the incremental grouping by themselves when they finish."""
    return await _edit(
        request, body.table, "cluster", full=body.full, min_faces=body.min_faces, threshold=body.threshold
    )


@router.post("/people/merge", response_model=PersonOut)
async def merge_people(request: Request, body: MergeRequest) -> Any:
    """Merge persons into the first one given; it keeps its id, name (else takes the first other name) and
    feature face. 409 when a person is named twice, or when two of the persons have faces in one photo."""
    return await _edit(request, body.table, "merge", person_ids=body.person_ids)


@router.post("/people/move", response_model=PersonOut)
async def move_faces(request: Request, body: MoveRequest) -> Any:
    """Move faces to person ``to``, or to a new person (``to`` null); returns that person. The persons they leave
    never get them back from a later grouping."""
    return await _edit(request, body.table, "move", face_ids=body.face_ids, to=body.to)


@router.post("/people/unassign", response_model=UnassignResponse)
async def unassign_faces(request: Request, body: UnassignRequest) -> dict[str, object]:
    """Take faces out of their persons, into no person (they never go back to those persons)."""
    n = await _edit(request, body.table, "unassign", face_ids=body.face_ids)
    return {"table": body.table, "unassigned": n}


@router.post("/people/{person_id}/name", response_model=PersonOut)
async def name_person(request: Request, person_id: PersonIdPath, body: NameRequest) -> Any:
    """Name a person (400 for an empty name, one over 200 characters or with control characters)."""
    _check_text(body.name, "the name")
    return await _edit(request, body.table, "name", person_id=person_id, name=body.name)


@router.post("/people/{person_id}/hide", response_model=PersonOut)
async def hide_person(request: Request, person_id: PersonIdPath, body: HideRequest) -> Any:
    """Hide a person from the list (``hidden`` false: show them again). Their faces stay searchable."""
    return await _edit(request, body.table, "hide", person_id=person_id, hidden=body.hidden)


@router.post("/people/{person_id}/feature", response_model=PersonOut)
async def feature_face(request: Request, person_id: PersonIdPath, body: FeatureRequest) -> Any:
    """Show the person by ``face_id`` (one of their faces; 400 otherwise)."""
    return await _edit(request, body.table, "feature", person_id=person_id, face_id=body.face_id)


async def _forget(request: Request, person_id: int, table: str) -> dict[str, object]:
    report: dict[str, object] = await _edit(request, table, "forget", person_id=person_id)
    face_ids = [int(f) for f in report.get("face_ids", [])]  # type: ignore[attr-defined]
    catalog = catalog_of(request)
    await run_in_threadpool(catalog.faces_forgotten, table, face_ids)
    drop_thumbnails(catalog.path, face_ids)
    return report


@router.post("/people/{person_id}/forget", response_model=ForgetResponse)
async def forget_person(
    request: Request, person_id: PersonIdPath, body: Annotated[TableBody | None, Body()] = None
) -> dict[str, object]:
    """Forget a person for good: their face rows, embeddings, vector-index entries and thumbnails are deleted,
    and their faces stay out when the photos are indexed again. 404 for a person forgotten already."""
    return await _forget(request, person_id, body.table if body is not None else config.DEFAULT_TABLE)


@router.delete("/people/{person_id}", response_model=ForgetResponse)
async def delete_person(
    request: Request, person_id: PersonIdPath, table: TableQuery = config.DEFAULT_TABLE
) -> dict[str, object]:
    """The same as ``POST /v1/people/{person_id}/forget``."""
    return await _forget(request, person_id, table)
