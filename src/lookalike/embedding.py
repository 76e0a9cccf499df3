"""The mapper of the embedding job: object bytes -> decoded images -> faces -> embeddings.

Runs in whichever process the executor chooses, so everything it needs comes in as plain arguments and the
model is looked up (and loaded once per process) through the registry. All faces of a chunk of images are
embedded in one batched call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lookalike.errors import LookalikeError, ModelUnavailable
from lookalike.faces.detectors import get_detector
from lookalike.faces.registry import get_model
from lookalike.faces.types import DetectedFace, FaceModel
from lookalike.images import DEFAULT_MAX_PIXELS, decode_image
from lookalike.records import ObjectResult, ObjectStatus
from lookalike.storage import ObjectInfo, StorageOptions, read_many


def detect_and_embed(
    model: FaceModel,
    images: Sequence[np.ndarray],
    *,
    largest_only: bool = False,
    whole_photo_face: bool = False,
) -> list[tuple[list[DetectedFace], np.ndarray]]:
    """Detect faces in each image and embed them all in one batch.

    Returns, per image, its faces, largest first (only the largest with ``largest_only``), and their
    ``(len(faces), dim)`` embeddings. A face's index in that list is its ``face`` number everywhere. With
    ``whole_photo_face``, an image where no face is detected is taken as one face (a photo that is a face crop),
    aligned by the landmarks found on it (:meth:`~lookalike.faces.detectors.MTCNNDetector.whole_photo`).
    """
    per_image: list[list[DetectedFace]] = []
    for image in images:
        # face 0 is the largest (the photo's subject, usually), then by size; stable for equal sizes
        faces = sorted(model.detect(image), key=lambda f: -f.area)
        if not faces and whole_photo_face:
            faces = [get_detector().whole_photo(image)]
        per_image.append(faces[:1] if largest_only else faces)
    items = [(img, face) for img, faces in zip(images, per_image, strict=True) for face in faces]
    dim = model.card.dim
    all_emb = model.embed(items) if items else np.zeros((0, dim), np.float32)
    out: list[tuple[list[DetectedFace], np.ndarray]] = []
    pos = 0
    for faces in per_image:
        out.append((faces, all_emb[pos : pos + len(faces)]))
        pos += len(faces)
    return out


def embed_objects(
    model_name: str,
    items: Sequence[tuple[str, ObjectInfo]],
    storage_options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    whole_photo_face: bool = False,
) -> list[ObjectResult]:
    """Read, decode, detect and embed a chunk of ``(source, object)`` items; never raises for one bad object.

    Each object gets an :class:`ObjectResult` whose ``status`` is ``ok`` (faces found), ``no_face`` or
    ``error`` (with the message naming the problem).
    """
    model = get_model(model_name)
    results: list[ObjectResult | None] = [None] * len(items)
    decoded: list[tuple[int, np.ndarray]] = []
    uris = [info.uri for _, info in items]
    for i, (_uri, payload) in enumerate(read_many(uris, options=storage_options)):
        source, info = items[i]
        if isinstance(payload, LookalikeError):
            results[i] = ObjectResult(info=info, source=source, status="error", error=str(payload))
            continue
        try:
            decoded.append((i, decode_image(payload, uri=info.uri, max_pixels=max_pixels)))
        except LookalikeError as err:
            results[i] = ObjectResult(info=info, source=source, status="error", error=str(err))
    try:
        found = detect_and_embed(model, [img for _, img in decoded], whole_photo_face=whole_photo_face)
    except ModelUnavailable as err:
        # the model's backend is down (a remote service): every photo of the chunk fails with the reason (one at
        # a time would only wait out the retries again for each), and the job goes on with the next chunk
        found = [([], np.zeros((0, model.card.dim), np.float32)) for _ in decoded]
        for i, _img in decoded:
            results[i] = ObjectResult(
                info=items[i][1], source=items[i][0], status="error", error=f"face model failed: {err}"
            )
    except Exception:
        # One image broke the batch (a model error): fall back to one at a time so the others still succeed.
        found = []
        for i, img in decoded:
            try:
                found.extend(detect_and_embed(model, [img], whole_photo_face=whole_photo_face))
            except Exception as err:
                found.append(([], np.zeros((0, model.card.dim), np.float32)))
                results[i] = ObjectResult(
                    info=items[i][1], source=items[i][0], status="error", error=f"face model failed: {err}"
                )
    for (i, _img), (faces, emb) in zip(decoded, found, strict=True):
        if results[i] is not None:
            continue
        source, info = items[i]
        status: ObjectStatus = "ok" if faces else "no_face"
        results[i] = ObjectResult(info=info, source=source, status=status, faces=faces, embeddings=emb)
    return [r for r in results if r is not None]
