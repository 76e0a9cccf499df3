"""Errors of the REST API, and how every error becomes one JSON shape.

Every failure the server answers with, whatever raised it, has this body::

    {"error": {"code": "table_not_found", "message": "no table 'x' in this dataset",
               "hint": "did you mean 'faces'?", "request_id": "3f2a..."}}

and the HTTP status of the error (``err.http_status`` for the :mod:`lookalike.errors` hierarchy). The request
id is also in the ``X-Request-ID`` response header, so a user can quote it and an operator can find the log
line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.errors import LookalikeError

log = logging.getLogger("lookalike.server")


class Unauthorized(LookalikeError):
    """A missing or wrong API token."""

    code = "unauthorized"
    http_status = 401


class UploadTooLarge(LookalikeError):
    """A request body or an uploaded file over the server's size limit."""

    code = "upload_too_large"
    http_status = 413


class NotFound(LookalikeError):
    """Something the client named (a face, an object, a job) that does not exist, or that it may not see."""

    code = "not_found"
    http_status = 404


class Conflict(LookalikeError):
    """A request that does not fit the current state of what it names (cancelling a finished job)."""

    code = "conflict"
    http_status = 409


class BadRequest(LookalikeError):
    """A request whose shape is wrong (missing field, wrong content type)."""

    code = "bad_request"
    http_status = 400


class UnsupportedMediaType(LookalikeError):
    """A request body in a format the endpoint does not take."""

    code = "unsupported_media_type"
    http_status = 415


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


def request_id_of(request: Request) -> str:
    """The id the request-id middleware gave this request ("-" if it never ran)."""
    return str(getattr(request.state, "request_id", "-"))


def error_response(request: Request, status: int, code: str, message: str, hint: str | None = None) -> JSONResponse:
    """The JSON error body every failure uses, with the request id in the body and the header."""
    rid = request_id_of(request)
    body = {"error": {"code": code, "message": message, "hint": hint, "request_id": rid}}
    headers = {"X-Request-ID": rid}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers)


def lookalike_error_response(request: Request, err: LookalikeError) -> JSONResponse:
    status = err.http_status
    if status >= 500 and status != 503:
        log.error("request %s failed: %s", request_id_of(request), err)
    response = error_response(request, status, err.code, err.message, err.hint)
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(int(retry_after))
    return response


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for item in errors[:5]:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map our errors, FastAPI's validation errors, HTTP errors and crashes to the one JSON shape."""

    @app.exception_handler(LookalikeError)
    async def _lookalike(request: Request, err: LookalikeError) -> JSONResponse:
        return lookalike_error_response(request, err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(
            request,
            422,
            "invalid_request",
            _validation_message(list(err.errors())),
            hint="see the API description at /docs",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # FastAPI wraps any exception raised while it parses a body (our upload limit included) in a 400.
        cause = err.__cause__
        if isinstance(cause, LookalikeError):
            return lookalike_error_response(request, cause)
        code = _HTTP_CODES.get(err.status_code, "http_error")
        return error_response(request, err.status_code, code, str(err.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, err: Exception) -> JSONResponse:
        log.exception("request %s crashed", request_id_of(request))
        return error_response(
            request,
            500,
            "internal_error",
            "the server failed to answer this request",
            hint=f"quote request id {request_id_of(request)} when reporting it",
        )
