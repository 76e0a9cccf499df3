"""The settings a running server is started with (one frozen object, shared by the routes)."""

from __future__ import annotations

from dataclasses import dataclass

#: Largest uploaded file accepted (bytes).
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest uploaded image accepted (width x height), checked from the header before decoding.
DEFAULT_MAX_PIXELS = 50_000_000


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything a running server needs to know, fixed at start.

    Attributes:
        dataset_path: the DuckDB dataset file the server reads (and index jobs write).
        token: the API token every ``/v1`` call must carry; ``None``: no token (loopback use only).
        cors_origins: origins allowed to call the API from a browser page; empty: CORS off.
        max_upload_bytes: largest uploaded file; larger ones get 413 ``upload_too_large``.
        max_pixels: largest uploaded image (width x height); larger ones get 413 ``image_too_large``.
        allow_sources: real paths and URI prefixes under which the API may index sources.
        check_host: refuse requests whose ``Host`` header is not a loopback name (defends against DNS
            rebinding). Defaults to on when there is no token.
    """

    dataset_path: str
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    check_host: bool = True
    #: Photos searched or verified at once (about one per core), and in all, running or waiting
    #: (``lookalike.server.gate``); beyond that a request gets 503 with Retry-After.
    embed_concurrency: int = 2
    max_queue: int = 64
    #: Seconds a request may wait for its turn before it gets 503.
    queue_timeout_s: float = 60.0
    #: Roots under which ``POST /v1/index`` may index (see :mod:`lookalike.source_roots`).
    allow_sources: tuple[str, ...] = ()

    @property
    def max_body_bytes(self) -> int:
        """The request body limit: two files (``/v1/verify``) plus room for the form's other fields."""
        return 2 * self.max_upload_bytes + 1024 * 1024
