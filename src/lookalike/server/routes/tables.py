"""``GET /v1/tables``, ``GET /v1/tables/{table}`` and the paged ``GET /v1/tables/{table}/faces``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lookalike.errors import TableNotFound
from lookalike.server.routes.deps import catalog_of
from lookalike.server.routes.search import Calibration

router = APIRouter(tags=["tables"])

#: Largest page of ``GET /v1/tables/{table}/faces``.
MAX_PAGE = 1000


class TableOut(BaseModel):
    """A face table: its model and the counts of its objects (photos) and faces."""

    name: str
    model: str
    dim: int
    version: int = Field(description="Bumped by every committed write to the table.")
    objects: int
    faces: int
    no_face: int = Field(description="Photos in which no face was found.")
    errors: int = Field(description="Photos that could not be read or decoded.")
    threshold: float = Field(description="The table's same-person cosine distance threshold (its calibration's).")
    calibration: Calibration | None = Field(None, description="How the table's same-person decision was set.")


class TablesResponse(BaseModel):
    tables: list[TableOut]


class FaceOut(BaseModel):
    face_id: int
    uri: str
    face: int = Field(description="Index of the face within its photo.")
    bbox: list[float] = Field(description="x1, y1, x2, y2 in the photo's (upright) pixels.")


class FacesPage(BaseModel):
    table: str
    version: int
    total: int = Field(description="Faces in the table.")
    offset: int
    limit: int
    faces: list[FaceOut]
    stale: bool


@router.get("/tables", response_model=TablesResponse)
async def list_tables(request: Request) -> dict[str, object]:
    """Every face table of the dataset, with its counts."""
    return {"tables": await run_in_threadpool(catalog_of(request).tables)}


@router.get("/tables/{table}", response_model=TableOut)
async def get_table(request: Request, table: str) -> dict[str, object]:
    """One face table, with its counts."""
    for t in await run_in_threadpool(catalog_of(request).tables):
        if t["name"] == table:
            return t
    raise TableNotFound(f"no table {table!r} in this dataset", hint="GET /v1/tables lists them")


@router.get("/tables/{table}/faces", response_model=FacesPage)
async def list_faces(
    request: Request,
    table: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, object]:
    """The table's faces in ``face_id`` order, one page at a time."""
    snap = await run_in_threadpool(catalog_of(request).snapshot, table)
    total = snap.matrix.size
    rows = range(min(offset, total), min(offset + limit, total))
    return {
        "table": table,
        "version": snap.info.version,
        "total": total,
        "offset": offset,
        "limit": limit,
        "faces": [snap.face(row) for row in rows],
        "stale": snap.stale,
    }
