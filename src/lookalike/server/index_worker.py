"""The child process of an index job: runs :meth:`lookalike.api.Dataset.index`, reports as JSON lines.

Started by :mod:`lookalike.server.jobs` as ``python -m lookalike.server.index_worker SPEC``, where ``SPEC`` is a
JSON object ``{"dataset", "sources", "table", "model", "chunk_size", "job"}`` (``job``: the job's record, which
this process keeps up to date in the dataset's ``lookalike_jobs`` after every event). It prints one JSON object
per line on stdout, each with an ``event``:

``{"event": "plan", "total": N}``            N photos to embed (new or changed)
``{"event": "progress", "n": K}``            K more photos were committed
``{"event": "people", "people": {...}}``     after the index: the incremental grouping into persons (its
                                             :class:`~lookalike.people.ClusterReport`, or ``{"error": {...}}``)
``{"event": "done", "report": {...}}``       the :class:`~lookalike.ingest.IndexReport` as a dict
``{"event": "error", "error": {...}}``       a :class:`~lookalike.errors.LookalikeError` as a dict

Anything a library prints goes to stderr, so stdout carries only these lines. The job runs in its own process
(not a thread of the server) because DuckDB refuses, inside one process, a read-write connection next to the
server's read-only ones; as a separate process it shares the file like any ``lookalike index`` would.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import IO

import duckdb

from lookalike.api import Dataset
from lookalike.dataset import jobs as stored_jobs
from lookalike.dataset import writer
from lookalike.errors import LookalikeError
from lookalike.server.jobs import Job, apply_event


def _emitter(out: IO[str]) -> Callable[[dict[str, object]], None]:
    def emit(event: dict[str, object]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    return emit


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # stray prints must not corrupt the event stream
    tell = _emitter(events)
    job = Job.from_dict(spec["job"]) if spec.get("job") else None

    def emit(event: dict[str, object]) -> None:
        """Report an event to the server, and record it in the job's row of the dataset."""
        if job is not None:
            apply_event(job, event)
            try:
                with writer(spec["dataset"]) as con:
                    stored_jobs.save(con, job.to_dict())
            except (LookalikeError, duckdb.Error) as err:  # the job goes on; the server still hears of it
                print(f"could not record the job in the dataset: {err}", file=sys.stderr)
        tell(event)

    with contextlib.suppress(OSError):
        os.nice(int(spec.get("nice", 0)))  # a background job: let interactive searches go first
    try:
        if job is not None:
            emit({"event": "started"})
        report = Dataset(spec["dataset"]).index(
            *spec["sources"],
            table=spec["table"],
            model=spec.get("model"),
            chunk_size=int(spec.get("chunk_size", 32)),
            cluster=False,  # grouped below, reported as its own event
            on_plan=lambda total: emit({"event": "plan", "total": total}),
            on_progress=lambda n: emit({"event": "progress", "n": n}),
        )
    except LookalikeError as err:
        emit({"event": "error", "error": err.to_dict()})
        return 1
    emit({"event": "people", "people": group_people(spec["dataset"], spec["table"])})
    emit({"event": "done", "report": report.to_dict()})
    return 0


def group_people(dataset: str, table: str) -> dict[str, object]:
    """Put the table's new faces into persons (incremental: faces already in a person stay where they are).

    Done here, in the job's process, because it writes to the dataset like the index did. A grouping that
    cannot run (a model nobody calibrated, a table with no faces) is reported, and the job still succeeds.
    """
    return Dataset(dataset).people.cluster_reported(table)


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main())
