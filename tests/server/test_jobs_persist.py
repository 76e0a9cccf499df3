"""Index jobs are rows of the dataset: they outlive the server, can be cancelled, and resume where they stopped."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from _support import GALLERY

from lookalike.dataset import jobs as stored_jobs
from lookalike.dataset import writer
from lookalike.server.jobs import FINISHED, Job


def _wait(client: Any, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job = client.get(f"/v1/jobs/{job_id}").json()
    while not until(job) and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job_id}").json()
    return job


def _stored(dataset: Path) -> dict[str, str]:
    with duckdb.connect(str(dataset), read_only=True) as con:
        return dict(con.execute("SELECT id, status FROM lookalike_jobs").fetchall())


def test_a_finished_job_is_listed_after_a_restart(make_client: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "jobs.duckdb"
    first = make_client(dataset, allow_sources=[str(GALLERY)])
    job = first.post("/v1/index", json={"source": str(GALLERY / "Tony_Blair")}).json()
    done = _wait(first, job["id"], lambda j: j["status"] in FINISHED)
    assert done["status"] == "succeeded" and done["done"] == 3
    assert _stored(dataset) == {job["id"]: "succeeded"}
    first.__exit__(None, None, None)  # the server stops
    again = make_client(dataset, allow_sources=[str(GALLERY)])
    listed = {j["id"]: j for j in again.get("/v1/jobs").json()["jobs"]}
    assert listed[job["id"]]["status"] == "succeeded" and listed[job["id"]]["report"]["added"] == 3


def test_an_interrupted_job_is_listed_and_resumes(make_client: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "jobs.duckdb"
    photos = tmp_path / "photos"
    shutil.copytree(GALLERY / "Serena_Williams", photos)
    running = Job(id="deadbeefdeadbeef", sources=[str(photos)], table="faces", model=None, chunk_size=1)
    running.status, running.total, running.done = "running", 3, 1
    with writer(dataset) as con:  # the row a job leaves when its server dies mid-way
        stored_jobs.save(con, running.to_dict())
    client = make_client(dataset, allow_sources=[str(tmp_path)])
    job = client.get(f"/v1/jobs/{running.id}").json()
    assert job["status"] == "interrupted" and job["error"]["code"] == "interrupted"
    assert client.delete(f"/v1/jobs/{running.id}").status_code == 409  # not running here
    resumed = client.post(f"/v1/jobs/{running.id}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] in ("queued", "running")
    done = _wait(client, running.id, lambda j: j["status"] in FINISHED)
    assert done["status"] == "succeeded" and done["report"]["faces"] == 3
    assert _stored(dataset)[running.id] == "succeeded"
    assert client.post(f"/v1/jobs/{running.id}/resume").status_code == 409
    assert client.post("/v1/jobs/nope/resume").status_code == 404


def test_cancel_a_running_job_keeps_its_committed_photos(make_client: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "jobs.duckdb"
    photos = tmp_path / "photos"
    for copy in range(3):
        shutil.copytree(GALLERY, photos / f"copy{copy}")  # 108 photos, committed one at a time
    client = make_client(dataset, allow_sources=[str(tmp_path)])
    job = client.post("/v1/index", json={"source": str(photos), "chunk_size": 1}).json()
    started = _wait(client, job["id"], lambda j: j["done"] >= 2 or j["status"] in FINISHED)
    assert started["status"] == "running", started
    cancelled = client.delete(f"/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert _stored(dataset)[job["id"]] == "cancelled"
    with duckdb.connect(str(dataset), read_only=True) as con:
        kept = con.execute("SELECT count(*) FROM lookalike_objects").fetchall()[0][0]
    assert 2 <= kept < 108
    client.post(f"/v1/jobs/{job['id']}/resume")
    done = _wait(client, job["id"], lambda j: j["status"] in FINISHED)
    assert done["status"] == "succeeded"
    assert done["report"]["unchanged"] == kept and done["report"]["added"] == 108 - kept
