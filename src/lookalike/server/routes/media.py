"""Faces and photos as pictures: a face's crop, and the full photo of an indexed object.

Only objects of the dataset's tables are ever read: a face is looked up by id in the table's rows, and a
photo named by ``uri`` must be an object of the table (an exact match in the catalog). The bytes are decoded
and re-encoded as JPEG (upright, as the boxes are), so the server never hands out a file as it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from PIL import Image
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from lookalike.errors import ImageError, ImageTooLarge
from lookalike.images import DEFAULT_MAX_PIXELS, decode_image, encode_jpeg
from lookalike.server.catalog import Catalog
from lookalike.server.errors import NotFound
from lookalike.server.routes.deps import catalog_of
from lookalike.storage import read_object

router = APIRouter(tags=["images"])

#: Largest indexed object the server will read to show it (bytes).
MAX_OBJECT_BYTES = 128 * 1024 * 1024
#: Share of the face box added on each side of a thumbnail.
THUMBNAIL_MARGIN = 0.25
_THUMB_CACHE_SIZE = 2048
_thumb_cache: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
_thumb_lock = threading.Lock()


class FaceInfo(BaseModel):
    face_id: int
    table: str
    uri: str
    face: int
    bbox: list[float]


def _jpeg(data: bytes, max_age: int) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": f"private, max-age={max_age}"})


def _load(uri: str) -> np.ndarray:
    """Read and decode an indexed object (the caller has checked that it is one)."""
    data = read_object(uri, max_bytes=MAX_OBJECT_BYTES)
    try:
        return decode_image(data, uri=uri, max_pixels=DEFAULT_MAX_PIXELS)
    except ImageTooLarge:
        raise
    except ImageError as err:  # the decoder's message may quote the file's first bytes: keep them private
        raise ImageError(f"the indexed object {uri} is not a readable image", hint="re-index it") from err


def face_crop(image: np.ndarray, bbox: np.ndarray | list[float], margin: float = THUMBNAIL_MARGIN) -> np.ndarray:
    """The square around a face box, ``margin`` of the box's size wider on each side, clipped to the image."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = int(max(0, round(cx - side / 2)))
    top = int(max(0, round(cy - side / 2)))
    right = int(min(width, round(cx + side / 2)))
    bottom = int(min(height, round(cy + side / 2)))
    if right - left < 2 or bottom - top < 2:
        return image
    return image[top:bottom, left:right]


def _thumbnail(catalog: Catalog, face_id: int, table: str | None, size: int) -> bytes:
    snap, row = catalog.find_face(face_id, table)
    uri, bbox = str(snap.matrix.uri[row]), snap.matrix.bbox[row]
    # A face row never changes (a changed photo gets new face ids); uri and box in the key guard against a
    # dataset file that was deleted and indexed again, which starts the ids over.
    key = (catalog.path, face_id, uri, tuple(float(v) for v in bbox), size)
    with _thumb_lock:
        hit = _thumb_cache.get(key)
        if hit is not None:
            _thumb_cache.move_to_end(key)
            return hit
    crop = face_crop(_load(uri), bbox)
    img = Image.fromarray(np.ascontiguousarray(crop))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    data = encode_jpeg(np.asarray(img), quality=88)
    with _thumb_lock:
        _thumb_cache[key] = data
        while len(_thumb_cache) > _THUMB_CACHE_SIZE:
            _thumb_cache.popitem(last=False)
    return data


def drop_thumbnails(dataset_path: str, face_ids: list[int]) -> int:
    """Remove the cached thumbnails of these faces of the dataset (forgotten faces); returns how many."""
    gone = {int(f) for f in face_ids}
    with _thumb_lock:
        keys = [k for k in _thumb_cache if k[0] == dataset_path and k[1] in gone]
        for key in keys:
            del _thumb_cache[key]
    return len(keys)


def _full(uri: str, max_side: int | None) -> bytes:
    img = _load(uri)
    if max_side is not None and max(img.shape[:2]) > max_side:
        pil = Image.fromarray(img)
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        img = np.asarray(pil)
    return encode_jpeg(img, quality=90)


TableParam = Annotated[str | None, Query(description="The face's table (default: look in every table).")]
MaxSide = Annotated[int | None, Query(ge=16, le=16384, description="Shrink so that no side is longer.")]


@router.get("/faces/{face_id}", response_model=FaceInfo)
async def get_face(request: Request, face_id: int, table: TableParam = None) -> dict[str, object]:
    """An indexed face: its table, photo and box."""
    snap, row = await run_in_threadpool(catalog_of(request).find_face, face_id, table)
    return {"table": snap.info.name, **snap.face(row)}


@router.get("/faces/{face_id}/thumbnail", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def face_thumbnail(
    request: Request,
    face_id: int,
    table: TableParam = None,
    size: Annotated[int, Query(ge=16, le=1024, description="Longest side in pixels.")] = 192,
) -> Response:
    """The face's crop (with a margin), as a JPEG of at most ``size`` pixels a side."""
    data = await run_in_threadpool(_thumbnail, catalog_of(request), face_id, table, size)
    return _jpeg(data, 3600)


@router.get("/faces/{face_id}/image", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def face_image(request: Request, face_id: int, table: TableParam = None, max_side: MaxSide = None) -> Response:
    """The full photo the face was found in, as a JPEG."""
    catalog = catalog_of(request)
    snap, row = await run_in_threadpool(catalog.find_face, face_id, table)
    data = await run_in_threadpool(_full, str(snap.matrix.uri[row]), max_side)
    return _jpeg(data, 60)


@router.get("/tables/{table}/image", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def object_image(
    request: Request,
    table: str,
    uri: Annotated[str, Query(min_length=1, max_length=4096, description="An object of the table, as listed.")],
    max_side: MaxSide = None,
) -> Response:
    """The full photo of an object of the table, as a JPEG (``uri`` exactly as the table lists it)."""
    catalog = catalog_of(request)
    if not await run_in_threadpool(catalog.has_object, table, uri):
        raise NotFound(f"{uri!r} is not an object of table {table!r}", hint="only indexed photos are served")
    data = await run_in_threadpool(_full, uri, max_side)
    return _jpeg(data, 60)
