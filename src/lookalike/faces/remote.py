"""Remote face models: an HTTP embedding service behind Lookalike's detection and alignment.

``CREATE MODEL ds.m REMOTE WITH CONNECTION c OPTIONS (ENDPOINT = 'https://...')`` in SQL, or
``lookalike models add NAME --endpoint URL``, registers one. Lookalike finds the faces and aligns them (MTCNN, the
5-point ArcFace template at ``input_size``), then sends the crops in batches to the service; everything else
(tables, search, calibration, people) is as for any model.

**The contract** (``docs/remote-models.md``)::

    POST <endpoint>                        Content-Type: application/json
    {"model": "<name>", "size": 112, "color_order": "RGB", "layout": "HWC", "dtype": "uint8",
     "crops": ["<base64 of size*size*3 bytes>", ...]}

    200 {"embeddings": [[<float>, ...], ...]}   one vector per crop, in order, all of one length

``Authorization: Bearer $LOOKALIKE_REMOTE_TOKEN`` is sent when that variable is set. Each call has a timeout
(``timeout`` seconds). Connection failures, timeouts, HTTP 429 and 5xx are retried ``retries`` times with
exponential back-off (0.5 s, 1 s, 2 s, ...; a ``Retry-After`` of up to 30 s is honoured); after that the call
raises :class:`RemoteServiceError`, and the index job marks the photos of that chunk ``error`` with the reason
and goes on. Other 4xx answers and malformed replies (wrong count, wrong length, not finite) are a
:class:`~lookalike.errors.ModelError` for the photos of that call, not retried.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from lookalike.errors import InvalidArgument, ModelError, ModelUnavailable
from lookalike.faces.models import _Pipeline
from lookalike.faces.types import ModelCard

#: Seconds of the first back-off; it doubles with each retry.
BACKOFF = 0.5
#: The longest ``Retry-After`` honoured, in seconds.
MAX_RETRY_AFTER = 30.0
#: Crops per request.
BATCH = 32


class RemoteServiceError(ModelUnavailable):
    """The embedding service could not be reached, or kept failing, after every retry."""

    code = "remote_model_unavailable"


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """A registered remote model."""

    name: str
    endpoint: str
    dim: int
    input_size: int = 112
    timeout: float = 30.0
    retries: int = 3
    connection: str | None = None
    threshold: float | None = None  # cosine distance at LFW-style FAR 0.1 %, once calibrated
    calibration_note: str = ""

    def card(self) -> ModelCard:
        return ModelCard(
            name=self.name,
            dim=self.dim,
            input_size=(self.input_size, self.input_size),
            detector="MTCNN (Lookalike's) + 5-point ArcFace alignment",
            licence="user-supplied (remote service)",
            weights=f"remote: {self.endpoint}" + (f" (connection {self.connection})" if self.connection else ""),
            threshold=self.threshold if self.threshold is not None else 1.0,
            threshold_note=self.calibration_note or "not calibrated: same_person is null until it is",
            description=f"remote HTTP model: {self.input_size}x{self.input_size} RGB crops to {self.endpoint}",
            calibrated=self.threshold is not None,
            runtime="remote",
        )


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` stripped, or :class:`InvalidArgument` unless it is an http(s) URL."""
    url = endpoint.strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) < 10:
        raise InvalidArgument(f"a remote model's ENDPOINT must be an http:// or https:// URL, got {endpoint!r}")
    return url


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    value = err.headers.get("Retry-After") if err.headers is not None else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def call(
    endpoint: str,
    crops: np.ndarray,
    *,
    model: str,
    timeout: float = 30.0,
    retries: int = 3,
    dim: int | None = None,
) -> np.ndarray:
    """Embeddings ``(len(crops), d)`` float32 of uint8 RGB ``(n, s, s, 3)`` crops from the service at ``endpoint``
    (the module docstring has the contract, the retries and the errors)."""
    crops = np.ascontiguousarray(crops, np.uint8)
    n, size = int(crops.shape[0]), int(crops.shape[1])
    body = json.dumps(
        {
            "model": model,
            "size": size,
            "color_order": "RGB",
            "layout": "HWC",
            "dtype": "uint8",
            "crops": [base64.b64encode(c.tobytes()).decode("ascii") for c in crops],
        }
    ).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = os.environ.get("LOOKALIKE_REMOTE_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    last = ""
    wait = BACKOFF
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(wait)
        wait = BACKOFF * 2**attempt
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
            break
        except urllib.error.HTTPError as err:
            if err.code != 429 and err.code < 500:
                detail = err.read()[:300].decode("utf-8", "replace")
                raise ModelError(f"remote model {model!r} at {endpoint} answered HTTP {err.code}: {detail}") from None
            last = f"HTTP {err.code}"
            wait = _retry_after(err) or wait
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            last = f"timed out after {timeout:g} s" if isinstance(reason, TimeoutError) else str(reason)
    else:
        raise RemoteServiceError(
            f"remote model {model!r} at {endpoint} failed {retries + 1} times (last: {last})",
            hint="check that the service is up; the photos of this batch are marked error and can be indexed again",
        )
    try:
        vectors = np.asarray(json.loads(raw)["embeddings"], np.float32)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelError(f"remote model {model!r} at {endpoint} sent no embeddings list: {err}") from None
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ModelError(
            f"remote model {model!r} at {endpoint} sent {vectors.shape[0] if vectors.ndim else 0} vectors for {n} crops"
        )
    if dim is not None and vectors.shape[1] != dim:
        raise ModelError(f"remote model {model!r} at {endpoint} sent {vectors.shape[1]}-d vectors, not {dim}-d")
    if not np.isfinite(vectors).all() or not (np.linalg.norm(vectors, axis=1) > 0).all():
        raise ModelError(f"remote model {model!r} at {endpoint} sent a vector that is zero or not finite")
    return vectors


def probe(endpoint: str, size: int, *, model: str, timeout: float, retries: int) -> int:
    """The dimension of the service's vectors (one grey crop sent)."""
    blank = np.full((1, size, size, 3), 128, np.uint8)
    return int(call(endpoint, blank, model=model, timeout=timeout, retries=retries).shape[1])


class RemoteModel(_Pipeline):
    """A remote model behind Lookalike's detection, alignment and batching."""

    batch_size = BATCH

    def __init__(self, card: ModelCard, spec: RemoteSpec) -> None:
        super().__init__(card)
        self.spec = spec

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        s = self.spec
        parts = [
            call(s.endpoint, crops[i : i + BATCH], model=s.name, timeout=s.timeout, retries=s.retries, dim=s.dim)
            for i in range(0, len(crops), BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, s.dim), np.float32)
