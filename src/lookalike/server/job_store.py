"""Write one job record into the dataset from a short child process: ``python -m lookalike.server.job_store
DATASET RECORD_JSON``.

The server reads the dataset with read-only connections, and DuckDB refuses a read-write connection in the same
process, so the states the server itself decides (a job queued, cancelled or found interrupted) are written by
this child. It waits for the file while another process writes it, like any ``lookalike`` command.
"""

from __future__ import annotations

import json
import subprocess
import sys

from lookalike.dataset import jobs, writer


def put(dataset_path: str, record: dict[str, object], *, python: str = sys.executable) -> str | None:
    """Store ``record`` in the dataset through a child process; the child's error text, or ``None``."""
    proc = subprocess.run(
        [python, "-m", "lookalike.server.job_store", dataset_path, json.dumps(record)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with writer(args[0]) as con:
        jobs.save(con, json.loads(args[1]))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main())
