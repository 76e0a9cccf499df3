"""Helpers for tests that kill index jobs (imported by the test modules of this folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest


def kill_after_commits(cmd: list[str], dataset: Path, commits: int = 5, timeout: float = 300) -> int:
    """Run the index command ``cmd``, SIGKILL it once ``dataset`` holds ``commits`` committed photos; return that
    count. Skips the test when the job finished before it could be killed (a machine too fast for the test)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                with duckdb.connect(str(dataset), read_only=True) as con:
                    committed = con.execute("SELECT count(*) FROM lookalike_objects").fetchall()[0][0]
            except duckdb.Error:
                continue  # the writer holds the file right now, or the catalog is not there yet
            if committed >= commits:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert committed >= commits, "the job never committed a chunk"
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the job finished before it could be killed (machine too fast for this test)")
    return int(committed)
