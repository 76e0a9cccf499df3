"""The FastAPI application: :func:`create_app` builds it for one dataset.

What it is made of:

* ``/v1/...``: the REST API (:mod:`lookalike.server.routes`), every route behind the token check
  (:mod:`lookalike.server.security`); people edits are written by a helper process
  (:mod:`lookalike.server.people_writer`), started on the first edit and ended with the app;
* ``/``: the web page, plain HTML/CSS/JS from ``static/`` (no build step, nothing from a CDN);
* ``/docs`` (Swagger UI) and ``/redoc``, served from files inside the ``fastapi-offline`` package, and
  ``/openapi.json``;
* :class:`RequestContext`, a small ASGI middleware that gives each request an id (``X-Request-ID``),
  enforces the body size limit while the body streams in, refuses foreign ``Host`` headers when the server
  has no token, and adds security headers;
* exception handlers turning every error into ``{"error": {code, message, hint, request_id}}``.

Run it with ``lookalike serve`` or :func:`lookalike.server.serve`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.server.catalog import Catalog
from lookalike.server.errors import UploadTooLarge, install_error_handlers
from lookalike.server.gate import WorkGate
from lookalike.server.jobs import JobManager
from lookalike.server.people_writer import PeopleWriter
from lookalike.server.routes import jobs as jobs_routes
from lookalike.server.routes import media, people, search, tables
from lookalike.server.security import TokenCheck, host_allowed
from lookalike.server.settings import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, ServerSettings
from lookalike.source_roots import SourcePolicy

STATIC_DIR = Path(__file__).parent / "static"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(
    dataset_path: str | Path,
    *,
    token: str | None = None,
    cors_origins: tuple[str, ...] | list[str] = (),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    check_host: bool | None = None,
    allow_sources: Sequence[str] | None = None,
    max_queue: int = 64,
    embed_concurrency: int | None = None,
    queue_timeout_s: float = 60.0,
) -> FastAPI:
    """Build the app for the dataset at ``dataset_path`` (which may not exist yet: index jobs create it).

    ``token`` is used as given (resolve ``$LOOKALIKE_TOKEN`` first with
    :func:`lookalike.server.security.resolve_token`). ``check_host`` defaults to ``token is None``.
    ``allow_sources``: roots the API may index under; ``None``: the working directory (a loopback default).
    """
    settings = ServerSettings(
        dataset_path=str(Path(dataset_path).expanduser().resolve()),
        token=token or None,
        cors_origins=tuple(cors_origins),
        max_upload_bytes=int(max_upload_bytes),
        max_pixels=int(max_pixels),
        check_host=(token is None) if check_host is None else check_host,
        allow_sources=SourcePolicy.of([os.getcwd()] if allow_sources is None else allow_sources).roots,
        embed_concurrency=embed_concurrency or max(1, os.cpu_count() or 1),
        max_queue=int(max_queue),
        queue_timeout_s=float(queue_timeout_s),
    )
    jobs = JobManager(settings.dataset_path)
    people_writer = PeopleWriter(settings.dataset_path)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()
        people_writer.close()

    app = _fastapi(lifespan)
    app.state.settings = settings
    app.state.gate = WorkGate(settings.embed_concurrency, settings.max_queue, settings.queue_timeout_s)
    app.state.catalog = Catalog(settings.dataset_path)
    app.state.jobs = jobs
    app.state.people_writer = people_writer

    guard = [Depends(TokenCheck(settings.token))]
    for module in (search, tables, media, people, jobs_routes):
        app.include_router(module.router, prefix="/v1", dependencies=guard)
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestContext, settings=settings)
    return app


def _fastapi(lifespan: Any) -> FastAPI:
    """The FastAPI object, with Swagger UI and ReDoc served from local files when fastapi-offline is there."""
    meta: dict[str, Any] = {
        "title": "Lookalike",
        "summary": "Find the faces most similar to a photo in a folder or a bucket of photos.",
        "version": _version(),
        "lifespan": lifespan,
    }
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # pragma: no cover - declared dependency; the CDN-based docs still work online
        return FastAPI(**meta)
    return FastAPIOffline(**meta)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("lookalike")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0"


class RequestContext:
    """ASGI middleware: request id, Host check, streaming body limit and security headers.

    The body limit is enforced twice: a ``Content-Length`` over the limit is refused before anything is
    read, and a body without one (chunked) is counted as it streams in, failing with
    :class:`~lookalike.server.errors.UploadTooLarge` the moment it passes the limit.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope.get("path", "")
        extra = _security_headers(path, rid)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                raw.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": raw}
            await send(message)

        if self.settings.check_host and not host_allowed(headers.get("host")):
            await _send_error(
                send_with_headers,
                400,
                "invalid_host",
                "this server only answers requests addressed to localhost / 127.0.0.1",
                "start it with --token to serve other host names",
                rid,
            )
            return
        limit = self.settings.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _send_error(
                send_with_headers,
                413,
                "upload_too_large",
                f"the request body is {int(length)} bytes, over the limit of {limit}",
                "send a smaller photo",
                rid,
            )
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLarge(
                        f"the request body is over the limit of {limit} bytes", hint="send a smaller photo"
                    )
            return message

        await self.app(scope, counting_receive, send_with_headers)


def _security_headers(path: str, rid: str) -> list[tuple[bytes, bytes]]:
    out = [
        (b"x-request-id", rid.encode("latin-1")),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if path == "/" or path.startswith("/static/"):
        out.append((b"content-security-policy", _PAGE_CSP.encode("latin-1")))
        out.append((b"x-frame-options", b"DENY"))
    return out


async def _send_error(send: Send, status: int, code: str, message: str, hint: str, rid: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "hint": hint, "request_id": rid}}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
