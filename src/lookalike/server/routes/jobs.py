"""``POST /v1/index`` starts an index job; ``GET /v1/jobs`` and ``GET /v1/jobs/{id}`` follow it;
``DELETE /v1/jobs/{id}`` cancels it; ``POST /v1/jobs/{id}/resume`` runs a stopped one again."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lookalike import config
from lookalike.dataset.schema import check_table_name
from lookalike.faces.registry import get_card
from lookalike.ingest import DEFAULT_CHUNK
from lookalike.server.routes.deps import jobs_of, settings_of
from lookalike.source_roots import SourcePolicy

router = APIRouter(tags=["index"])


class IndexRequest(BaseModel):
    """What to index: a source (folder, file, glob, ``file://``, ``s3://``, ``gs://``) into a table."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=4096, description="A folder, file, glob or URI on the server.")
    table: str = Field(config.DEFAULT_TABLE, description="The face table to index into (created if new).")
    model: str | None = Field(None, description="Face model for a new table (default: the default model).")
    chunk_size: int = Field(
        DEFAULT_CHUNK,
        ge=1,
        le=1024,
        description="Photos per unit of work (finished ones are committed at most once a second).",
    )


class JobFileError(BaseModel):
    uri: str
    message: str


class JobOut(BaseModel):
    """An index job. ``progress`` goes from 0 to 1; ``errors`` lists the photos that failed."""

    id: str
    status: str = Field(description="queued, running, succeeded, failed, cancelled or interrupted (the server stopped)")
    sources: list[str]
    table: str
    model: str | None
    total: int | None = Field(description="Photos to embed (new or changed), once listed.")
    done: int
    progress: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    report: dict[str, object] | None = Field(description="The index report, once finished.")
    errors: list[JobFileError]
    error: dict[str, object] | None = Field(description="Why the job failed, when it did.")
    people: dict[str, object] | None = Field(
        None,
        description="After a successful index, the grouping of the new faces into persons (the report of "
        "POST /v1/people/cluster), or {error} when it could not run.",
    )


class JobsResponse(BaseModel):
    jobs: list[JobOut]


@router.post("/index", status_code=202, response_model=JobOut)
async def start_index(request: Request, body: IndexRequest) -> dict[str, object]:
    """Start indexing ``source`` into ``table`` in the background; poll ``GET /v1/jobs/{id}``."""
    SourcePolicy(settings_of(request).allow_sources).check(body.source)
    check_table_name(body.table)
    if body.model is not None:
        await run_in_threadpool(get_card, body.model)  # an unknown model fails now, not in the job
    manager = jobs_of(request)
    job = await run_in_threadpool(manager.submit, [body.source], body.table, body.model, body.chunk_size)
    return manager.get(job.id)


@router.get("/jobs", response_model=JobsResponse)
async def list_jobs(request: Request) -> dict[str, object]:
    """The server's index jobs, newest first."""
    return {"jobs": jobs_of(request).list()}


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(request: Request, job_id: str) -> dict[str, object]:
    """One index job: its status, progress, counts and per-file errors."""
    return jobs_of(request).get(job_id)


@router.delete("/jobs/{job_id}", response_model=JobOut)
async def cancel_job(request: Request, job_id: str) -> dict[str, object]:
    """Cancel a queued or running job. Photos it already committed stay indexed; resume it to finish."""
    return await run_in_threadpool(jobs_of(request).cancel, job_id)


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=JobOut)
async def resume_job(request: Request, job_id: str) -> dict[str, object]:
    """Run an interrupted, cancelled or failed job again; the index skips the photos it committed."""
    return await run_in_threadpool(jobs_of(request).resume, job_id)
