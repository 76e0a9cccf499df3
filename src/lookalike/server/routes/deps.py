"""What the routes share: the server's settings, catalog and jobs, and reading an upload within limits."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from lookalike.server.catalog import Catalog
from lookalike.server.errors import UploadTooLarge
from lookalike.server.gate import WorkGate
from lookalike.server.jobs import JobManager
from lookalike.server.settings import ServerSettings


def settings_of(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def gate_of(request: Request) -> WorkGate:
    gate: WorkGate = request.app.state.gate
    return gate


def jobs_of(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


async def read_upload(upload: UploadFile, settings: ServerSettings, field: str) -> bytes:
    """The bytes of an uploaded file; :class:`UploadTooLarge` over ``settings.max_upload_bytes``."""
    limit = settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(
            f"the file in field {field!r} is larger than the limit of {limit} bytes",
            hint="send a smaller photo (or start the server with a larger --max-upload-mb)",
        )
    return data


def as_request_error(err: ValidationError) -> RequestValidationError:
    """A pydantic error on a body we parsed ourselves, as FastAPI's (so it gets the same 422 shape)."""
    return RequestValidationError(err.errors(include_url=False))
