"""Background index jobs: ``POST /v1/index`` queues one, ``GET /v1/jobs/{id}`` reports on it,
``DELETE /v1/jobs/{id}`` cancels it and ``POST /v1/jobs/{id}/resume`` runs an interrupted one again.

Every job is a row of the dataset (:mod:`lookalike.dataset.jobs`), written when it is queued or cancelled (by a
short child process, :mod:`lookalike.server.job_store`) and after every committed chunk (by the job's own
process). A server that starts finds the jobs of earlier runs there; those that were queued or running when it
stopped are ``interrupted``, and resuming one runs the same index again, which skips what was committed.

When the index succeeded, the job's process then groups the new faces into persons (an incremental
``people cluster``, :mod:`lookalike.people`); the job's ``people`` holds that run's report.

Jobs run one at a time, in order (a dataset has one writer at a time anyway), each in a child process running
:mod:`lookalike.server.index_worker`. A thread of the server reads the child's JSON-line events and updates
the job's record: the number of photos to embed, how many are done, and at the end the index report with its
per-file errors. A child process, rather than a thread, because DuckDB does not let one process hold a
read-write connection next to read-only ones on the same file, and because a crash or a long model call in the
job cannot then take the server down with it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lookalike.dataset import jobs as stored_jobs
from lookalike.dataset import reader
from lookalike.errors import LookalikeError
from lookalike.server import job_store
from lookalike.server.errors import Conflict, NotFound

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")

#: Finished jobs kept for ``GET /v1/jobs`` (the oldest are forgotten first).
MAX_JOBS_KEPT = 100
#: Niceness of the job processes: the server's own requests go first on a busy machine.
JOB_NICENESS = 5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class Job:
    """One index job and what is known about it so far."""

    id: str
    sources: list[str]
    table: str
    model: str | None
    chunk_size: int
    status: JobStatus = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    total: int | None = None
    done: int = 0
    report: dict[str, object] | None = None
    error: dict[str, object] | None = None
    #: The grouping run after the index (:mod:`lookalike.people`): its report, or ``{"error": {...}}``.
    people: dict[str, object] | None = None
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        """A job from its stored record (:meth:`to_dict`)."""
        return cls(
            id=str(d["id"]),
            sources=list(d["sources"]),
            table=str(d["table"]),
            model=d.get("model"),
            chunk_size=int(d.get("chunk_size") or 32),
            status=d["status"],
            created_at=str(d["created_at"]),
            started_at=d.get("started_at"),
            finished_at=d.get("finished_at"),
            total=d.get("total"),
            done=int(d.get("done") or 0),
            report=d.get("report"),
            error=d.get("error"),
            people=d.get("people"),
        )

    def to_dict(self) -> dict[str, object]:
        """The job as the API shows it (``progress`` in 0..1; ``errors``: files that failed)."""
        if self.status == "succeeded":
            progress = 1.0
        elif self.total:
            progress = min(1.0, self.done / self.total)
        else:
            progress = 0.0
        errors = self.report.get("errors", []) if self.report else []
        return {
            "id": self.id,
            "status": self.status,
            "sources": list(self.sources),
            "table": self.table,
            "model": self.model,
            "chunk_size": self.chunk_size,
            "total": self.total,
            "done": self.done,
            "progress": round(progress, 4),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "report": self.report,
            "errors": errors,
            "error": self.error,
            "people": self.people,
        }


class JobManager:
    """Queues index jobs for one dataset and runs them one by one in child processes (thread-safe)."""

    def __init__(self, dataset_path: str, *, python: str = sys.executable) -> None:
        self.dataset_path = dataset_path
        self.python = python
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._running: Job | None = None
        self._cancelled: set[str] = set()
        self._closed = False
        self._load_stored()

    def _load_stored(self) -> None:
        """The jobs of earlier runs, from the dataset; those that had not finished are ``interrupted``."""
        if not os.path.isfile(self.dataset_path):
            return
        try:
            with reader(self.dataset_path) as con:
                records = stored_jobs.load_all(con)
        except LookalikeError:  # not a dataset yet, or held by another process: start with no history
            return
        for record in records[-MAX_JOBS_KEPT:]:
            job = Job.from_dict(record)
            if job.status in ("queued", "running"):
                job.status = "interrupted"
                job.error = {
                    "code": "interrupted",
                    "message": "the server stopped before this job finished; committed photos are kept",
                    "hint": f"POST /v1/jobs/{job.id}/resume to finish it",
                }
            self._jobs[job.id] = job

    def _persist(self, job: Job) -> None:
        """Write the job's row from a child process (the server's own connections are read-only)."""
        problem = job_store.put(self.dataset_path, job.to_dict(), python=self.python)
        if problem is not None:
            with self._lock:
                job.log_tail.append(f"could not store the job in the dataset: {problem}"[-300:])

    def submit(self, sources: list[str], table: str, model: str | None, chunk_size: int) -> Job:
        """Store a job in the dataset, queue it and return its record (status ``queued``). Blocking: call it
        from a worker thread."""
        job = Job(id=secrets.token_hex(8), sources=sources, table=table, model=model, chunk_size=chunk_size)
        self._persist(job)
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._jobs.move_to_end(job.id)
            self._forget_old()
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run_forever, name="lookalike-jobs", daemon=True)
                self._thread.start()
            self._wake.notify()

    def cancel(self, job_id: str) -> dict[str, object]:
        """Cancel a queued or running job (a running one's process is stopped; committed chunks stay). Blocking."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job with id {job_id!r}", hint="job ids come from POST /v1/index")
            if job.status not in ("queued", "running"):
                raise Conflict(f"job {job_id} is {job.status}; only a queued or running job can be cancelled")
            self._cancelled.add(job.id)
            if job in self._queue:
                self._queue.remove(job)
            proc = self._proc if self._running is job else None
            job.status = "cancelled"
            job.finished_at = _now()
            job.error = {"code": "cancelled", "message": "cancelled; committed photos are kept", "hint": None}
        _stop(proc, 30)
        self._persist(job)
        return self.get(job_id)

    def resume(self, job_id: str) -> dict[str, object]:
        """Run an interrupted, cancelled or failed job again (the index skips what it committed). Blocking."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job with id {job_id!r}", hint="job ids come from POST /v1/index")
            if job.status not in ("interrupted", "cancelled", "failed"):
                raise Conflict(f"job {job_id} is {job.status}; only a stopped job can be resumed")
            self._cancelled.discard(job.id)
            job.status = "queued"
            job.started_at = job.finished_at = None
            job.total, job.done, job.report, job.error, job.people = None, 0, None, None, None
        self._persist(job)
        self._enqueue(job)
        return self.get(job_id)

    def _stored(self) -> list[dict[str, Any]]:
        if not os.path.isfile(self.dataset_path):
            return []
        try:
            with reader(self.dataset_path) as con:
                return stored_jobs.load_all(con)
        except LookalikeError:  # held by a writer right now: only this process's jobs
            return []

    def get(self, job_id: str) -> dict[str, object]:
        """A job of this process, else one stored in the dataset (another ``--workers`` process runs it)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.to_dict()
        for record in self._stored():
            if record.get("id") == job_id:
                return record
        raise NotFound(f"no job with id {job_id!r}", hint="job ids come from POST /v1/index")

    def list(self) -> list[dict[str, object]]:
        """This process's jobs and those the dataset holds from other processes, newest first."""
        with self._lock:
            mine = [job.to_dict() for job in reversed(self._jobs.values())]
        known = {j["id"] for j in mine}
        others = [r for r in reversed(self._stored()) if r.get("id") not in known]
        return mine + others[:MAX_JOBS_KEPT]

    def close(self) -> None:
        """Stop taking jobs and end a running child (its committed chunks stay; a rerun resumes)."""
        with self._lock:
            self._closed = True
            proc = self._proc
            self._wake.notify_all()
        _stop(proc, 5)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status in FINISHED]
        for job_id in finished[: max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
            del self._jobs[job_id]

    def _run_forever(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            if self._closed or job.id in self._cancelled:
                return
            job.status = "running"
            job.started_at = _now()
            spec = {
                "dataset": self.dataset_path,
                "sources": job.sources,
                "table": job.table,
                "model": job.model,
                "chunk_size": job.chunk_size,
                "nice": JOB_NICENESS,
                "job": job.to_dict(),
            }
            cmd = [self.python, "-m", "lookalike.server.index_worker", json.dumps(spec)]
            try:
                self._running = job
                self._proc = proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
                )
            except OSError as exc:
                job.status = "failed"
                job.finished_at = _now()
                job.error = {"code": "job_crashed", "message": f"cannot start the index process: {exc}"}
                return
        final = False
        assert proc.stdout is not None
        for line in proc.stdout:
            final = self._on_line(job, line) or final
        code = proc.wait()
        with self._lock:
            self._proc = None
            self._running = None
            job.finished_at = job.finished_at or _now()
            if job.id in self._cancelled:
                return
            if not final:
                tail = " | ".join(job.log_tail) or "no output"
                job.status = "failed"
                job.error = {
                    "code": "job_crashed",
                    "message": f"the index process ended with code {code} without a report: {tail}",
                    "hint": "run the same index with the lookalike CLI to see the full error",
                }

    def _on_line(self, job: Job, line: str) -> bool:
        """Apply one line of the child's output to the job; true for a final (done/error) event."""
        text = line.strip()
        event: dict[str, object] | None = None
        if text.startswith("{"):
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                event = None
        with self._lock:
            if event is None or "event" not in event:
                if text:
                    job.log_tail.append(text[-300:])
                return False
            return apply_event(job, event)


def _stop(proc: subprocess.Popen[str] | None, timeout: float) -> None:
    """End a job's process (SIGTERM, then SIGKILL after ``timeout`` seconds); its committed chunks stay."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def apply_event(job: Job, event: dict[str, object]) -> bool:
    """Apply one event of an index process to ``job`` (the server and the process itself both do); true for a
    final (done/error) event."""
    kind = event["event"]
    if kind == "plan":
        job.total = int(event["total"])  # type: ignore[call-overload]
    elif kind == "progress":
        job.done += int(event["n"])  # type: ignore[call-overload]
    elif kind == "people":
        people = event.get("people")
        job.people = people if isinstance(people, dict) else None
    elif kind == "done":
        job.finished_at = _now()
        report = event["report"]
        job.report = report if isinstance(report, dict) else None
        source_errors = job.report.get("source_errors") if job.report else None
        if source_errors and len(source_errors) >= len(job.sources):  # type: ignore[arg-type]
            job.status = "failed"
            first = source_errors[0]  # type: ignore[index]
            job.error = {
                "code": "source_error",
                "message": str(first["message"]),
                "hint": "check the path or URI of the source",
            }
        else:
            job.status = "succeeded"
        return True
    elif kind == "error":
        job.finished_at = _now()
        err = event["error"]
        job.error = err if isinstance(err, dict) else {"code": "error", "message": str(err)}
        job.status = "failed"
        return True
    return False


def wait_for(manager: JobManager, job_id: str, timeout: float = 60.0) -> dict[str, object]:
    """Poll until the job finishes (for scripts and tests); returns its final record."""
    deadline = time.monotonic() + timeout
    while True:
        job = manager.get(job_id)
        if job["status"] in FINISHED or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
