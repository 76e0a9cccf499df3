"""``lookalike serve``: the REST API and the web page (FastAPI + uvicorn).

Build the app with :func:`create_app`, or run it with :func:`serve`::

    from lookalike.server import serve
    serve("photos.duckdb", host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import json
import os

from lookalike.server.app import create_app
from lookalike.server.factory import ENV
from lookalike.server.security import check_bind, is_loopback, resolve_token
from lookalike.server.settings import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES


def serve(
    dataset_path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    cors_origins: tuple[str, ...] = (),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_sources: tuple[str, ...] | None = None,
    workers: int = 1,
    max_queue: int = 64,
    log_level: str = "info",
) -> None:
    """Run the server until interrupted. Refuses a non-loopback ``host`` without a token.

    ``token`` defaults to ``$LOOKALIKE_TOKEN``. ``allow_sources``: roots the API may index under (default: the
    working directory on a loopback ``host``, none on any other). ``workers``: server processes answering
    from the same dataset (each with its own queue of at most ``max_queue`` photos being searched or waiting).
    """
    import uvicorn

    token = resolve_token(token)
    check_bind(host, token)
    kwargs: dict[str, object] = {
        "token": token,
        "cors_origins": list(cors_origins),
        "max_upload_bytes": max_upload_bytes,
        "max_pixels": max_pixels,
        "allow_sources": list(allow_sources) if allow_sources is not None else None if is_loopback(host) else [],
        "max_queue": max_queue,
        "embed_concurrency": max(1, (os.cpu_count() or 1) // max(1, workers)),
    }
    if workers > 1:
        os.environ[ENV] = json.dumps({"dataset_path": dataset_path, **kwargs})
        uvicorn.run(
            "lookalike.server.factory:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            proxy_headers=False,
            server_header=False,
        )
        return
    app = create_app(dataset_path, **kwargs)  # type: ignore[arg-type]
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False)


__all__ = ["create_app", "serve"]
