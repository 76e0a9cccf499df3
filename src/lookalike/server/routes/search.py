"""``POST /v1/search`` and ``POST /v1/verify``.

Search takes either an uploaded photo (``multipart/form-data`` with the file field ``image``) or a reference
to something already indexed (a JSON body with ``uri``, an object of the table, or ``face_id``). Its
``results`` are exactly the rows ``lookalike search --json`` prints (the same code makes them:
:meth:`lookalike.api.Dataset.search` and :meth:`~lookalike.api.SearchHit.to_dict`); ``faces`` adds the query
faces with their boxes, so a page can draw them.

A client never makes the server read a path or URI of its choice: a ``uri`` must be an object of the table
(an exact match in the dataset's catalog), anything else is a 404.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from lookalike import config
from lookalike.api import SearchResult
from lookalike.errors import ImageError, ImageTooLarge, LookalikeError
from lookalike.images import image_size
from lookalike.search.distances import parse_distance, threshold_for
from lookalike.server.catalog import Catalog, ServingDataset
from lookalike.server.errors import BadRequest, NotFound, UnsupportedMediaType
from lookalike.server.routes.deps import as_request_error, catalog_of, gate_of, read_upload, settings_of
from lookalike.server.settings import ServerSettings

router = APIRouter(tags=["search"])

#: Largest ``top_k`` one request may ask for.
MAX_TOP_K = 1000


class SearchOptions(BaseModel):
    """How to search (the same knobs as ``lookalike search``)."""

    model_config = ConfigDict(extra="forbid")

    table: str = Field(config.DEFAULT_TABLE, description="The face table (collection) to search.")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="Nearest faces returned per query face.")
    distance: str = Field("cosine", description="cosine, euclidean or dot (BigQuery names accepted).")
    largest: bool = Field(False, description="Search with the largest query face only.")
    threshold: float | None = Field(
        None, ge=0.0, le=2.0, description="A cosine distance that overrides the table's same-person calibration."
    )
    fraction_lists: float | None = Field(
        None, gt=0.0, le=1.0, description="Share of the vector index's lists to search (1.0: exact)."
    )
    exact: bool = Field(False, description="Search every face exactly, even when the table has a vector index.")
    people: bool = Field(
        False,
        description="Return the nearest persons instead of faces: one row each, with the person's nearest face "
        "(faces in no person are left out).",
    )


class SearchByReference(SearchOptions):
    """A JSON search body: an indexed object (``uri``) or an indexed face (``face_id``) as the query."""

    uri: str | None = Field(None, description="An object of the table (as listed in it) to use as the query.")
    face_id: int | None = Field(None, description="An indexed face of the table to use as the query.")


class SearchRow(BaseModel):
    """One result row: the same keys and values as ``lookalike search --json``."""

    query_uri: str
    query_face: int
    query_bbox: list[float] | None
    rank: int
    uri: str
    face: int
    face_id: int
    bbox: list[float]
    distance: float
    same_person: bool | None = Field(description="True, False, or null when uncertain (see same_person_reason).")
    same_person_reason: str | None = None
    same_person_basis: str = Field(
        "distance",
        description="person (the query and this face are both in persons of the table, and those decided) or "
        "distance (the table's calibration, or the threshold given).",
    )
    person_id: int | None = Field(None, description="The person the face is in (GET /v1/people/{id}), or null.")
    person_name: str | None = Field(None, description="That person's name, or null.")


class Calibration(BaseModel):
    """The same-person decision in force (see lookalike.search.calibration)."""

    method: str = Field(
        description="dataset (from the table's own faces), card (the model's fallback), user, or uncalibrated "
        "(a model nobody calibrated: same_person is null)."
    )
    threshold: float = Field(description="Cosine distance at or below which a row is the same person.")
    uncertain_above: float = Field(description="Rows above threshold and up to this are uncertain (null).")
    card_threshold: float
    faces: int
    pairs: int
    mode: float | None = None
    spread: float | None = None
    note: str = ""


class IndexUsageOut(BaseModel):
    """How the search used the table's vector index (BigQuery's vectorSearchStatistics)."""

    index_usage_mode: str = Field(description="FULLY_USED, PARTIALLY_USED or UNUSED.")
    index_name: str | None
    index_unused_reasons: list[dict[str, str]]
    indexed_rows: int
    unindexed_rows: int = Field(description="Faces added since the build, searched exactly.")
    fraction_lists_to_search: float | None
    candidates_reranked: int | None = Field(description="TREE_AH: candidates the index's codes kept.")
    candidates_reranked_exactly: int | None = Field(
        None,
        description="TREE_AH: of those, how many were ranked with the stored vectors (fewer than the candidates "
        "where the index has refine codes).",
    )


class QueryFaceOut(BaseModel):
    """A face found in the query photo: ``face`` is its index, as in the rows' ``query_face``."""

    face: int
    bbox: list[float] | None
    score: float | None


class ImageSize(BaseModel):
    width: int
    height: int


class SearchResponse(BaseModel):
    results: list[SearchRow]
    faces: list[QueryFaceOut]
    image: ImageSize | None = Field(None, description="Size of the uploaded photo (boxes are in its pixels).")
    table: str
    model: str
    distance: str
    threshold: float = Field(description="Distance at or below which a row is the same person.")
    calibration: Calibration
    index_usage: IndexUsageOut | None = None
    table_version: int
    stale: bool = Field(description="True when the dataset was busy and the last version read was searched.")


class VerifyFace(BaseModel):
    uri: str
    face: int
    bbox: list[float] | None


class VerifyResponse(BaseModel):
    a: VerifyFace
    b: VerifyFace
    model: str
    distance: float
    threshold: float
    same_person: bool | None
    same_person_reason: str | None = None
    same_person_basis: str = Field("distance", description="person or distance, as in search rows.")
    persons: list[int | None] = Field(
        [None, None], description="The persons of the table the two faces are in or would join (null: none)."
    )
    calibration: Calibration | None = None


_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The query photo."},
        "table": {"type": "string", "default": config.DEFAULT_TABLE},
        "top_k": {"type": "integer", "default": 5, "minimum": 1, "maximum": MAX_TOP_K},
        "distance": {"type": "string", "default": "cosine", "enum": ["cosine", "euclidean", "dot"]},
        "largest": {"type": "boolean", "default": False},
        "threshold": {"type": "number", "minimum": 0, "maximum": 2},
        "fraction_lists": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "exact": {"type": "boolean", "default": False},
        "people": {"type": "boolean", "default": False},
    },
}
_JSON_SCHEMA = SearchByReference.model_json_schema()
_SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}, "application/json": {"schema": _JSON_SCHEMA}},
    }
}


@router.post("/search", response_model=SearchResponse, openapi_extra=_SEARCH_BODY)
async def search(request: Request) -> dict[str, object]:
    """The indexed faces nearest to every face of a photo.

    Send the photo as ``multipart/form-data`` (file field ``image``, plus ``table``, ``top_k``, ``distance``,
    ``largest``), or a JSON body with ``uri`` (an object of the table) or ``face_id`` and the same options.
    Each row names the person its face is in (``person_id``, ``person_name``); with ``people`` the rows are the
    nearest persons, one row each.
    """
    settings, catalog = settings_of(request), catalog_of(request)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=16) as form:
            upload = form.get("image")
            if not isinstance(upload, StarletteUpload):
                raise BadRequest("the form has no file field 'image'", hint="send the photo as the field 'image'")
            fields = {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}
            opts = _validate(SearchOptions, fields)
            data = await read_upload(upload, settings, "image")
        return await gate_of(request).run(_search, catalog, settings, data, opts)
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("the JSON body must be an object", hint='e.g. {"uri": "...", "top_k": 5}')
        ref = _validate(SearchByReference, body)
        if (ref.uri is None) == (ref.face_id is None):
            raise BadRequest("give exactly one of 'uri' and 'face_id'", hint="or upload a photo as multipart")
        if ref.uri is not None:
            if not await run_in_threadpool(catalog.has_object, ref.table, ref.uri):
                raise NotFound(
                    f"{ref.uri!r} is not an object of table {ref.table!r}",
                    hint="only photos indexed in the table can be named; upload other photos as 'image'",
                )
            query: str | bytes = ref.uri
        else:
            query = f"face:{ref.face_id}"
        if ref.uri is not None:  # the stored photo goes through the face models again
            return await gate_of(request).run(_search, catalog, settings, query, ref)
        return await run_in_threadpool(_search, catalog, settings, query, ref)
    raise UnsupportedMediaType(
        f"cannot search with a body of type {content_type or 'none'!r}",
        hint="send multipart/form-data with the file field 'image', or JSON with 'uri' or 'face_id'",
    )


def _validate(model: type[SearchOptions], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise as_request_error(err) from err


def _search(catalog: Catalog, settings: ServerSettings, query: str | bytes, opts: SearchOptions) -> dict[str, object]:
    dist = parse_distance(opts.distance)
    ds = ServingDataset(catalog, max_pixels=settings.max_pixels)
    try:
        result: SearchResult = ds.search(
            query,
            table=opts.table,
            top_k=opts.top_k,
            distance=dist,
            largest=opts.largest,
            threshold=opts.threshold,
            fraction_lists=opts.fraction_lists,
            exact=opts.exact,
            people=opts.people,
        )
    except ImageError as err:
        if isinstance(query, bytes) or isinstance(err, ImageTooLarge):
            raise
        # an indexed object that does not decode: the decoder's message may quote its first bytes
        raise ImageError(f"the indexed object {query} is not a readable image", hint="re-index it") from err
    snap = ds.snapshot
    assert snap is not None
    cal = result.calibration or snap.info.calibration
    size: dict[str, int] | None = None
    if isinstance(query, bytes):
        try:
            width, height = image_size(query)
            size = {"width": width, "height": height}
        except LookalikeError:  # pragma: no cover - it decoded a moment ago
            size = None
    return {
        "results": [hit.to_dict() for hit in result.hits],
        "faces": [
            {
                "face": q.face_index,
                "bbox": [round(float(v), 1) for v in q.bbox] if q.bbox is not None else None,
                "score": round(float(q.score), 4) if q.score is not None else None,
            }
            for q in result.queries
        ],
        "image": size,
        "table": snap.info.name,
        "model": snap.info.model,
        "distance": dist,
        "threshold": threshold_for(dist, cal.threshold),
        "calibration": cal.to_dict(),
        "index_usage": result.index_usage.to_dict() if result.index_usage is not None else None,
        "table_version": snap.info.version,
        "stale": snap.stale,
    }


@router.post("/verify", response_model=VerifyResponse)
async def verify(
    request: Request,
    image_a: Annotated[UploadFile, File(description="The first photo.")],
    image_b: Annotated[UploadFile, File(description="The second photo.")],
    model: Annotated[str | None, Form(description="Face model (default: the default model).")] = None,
    table: Annotated[str | None, Form(description="Decide with this table's calibration (and its model).")] = None,
    threshold: Annotated[
        float | None, Form(ge=0.0, le=2.0, description="A cosine distance that overrides the calibration.")
    ] = None,
) -> dict[str, object]:
    """Are the largest faces of two photos the same person?"""
    settings, catalog = settings_of(request), catalog_of(request)
    a = await read_upload(image_a, settings, "image_a")
    b = await read_upload(image_b, settings, "image_b")

    def run() -> dict[str, object]:
        ds = ServingDataset(catalog, max_pixels=settings.max_pixels)
        return ds.verify(a, b, model=model or None, table=table or None, threshold=threshold).to_dict()

    return await gate_of(request).run(run)
