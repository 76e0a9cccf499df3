"""People edits from the server, written by a helper process (:mod:`lookalike.server.people_worker`).

Why a helper process: the server reads the dataset with short read-only connections (:mod:`.catalog`), and DuckDB
refuses, inside one process, a read-write connection while a read-only one to the same file is open ("Can't open
a connection to same database file with a different configuration"); that error is not a lock, so nothing would
retry it. A second process is arbitrated by DuckDB's file lock instead, which every connection of Lookalike
waits out (:mod:`lookalike.dataset.connection`), exactly like ``lookalike index`` running next to the server.

Unlike the one-shot child of :mod:`.job_store`, this helper stays up (started on the first edit, ended with the
server), so an edit costs a round trip on a pipe, not a Python start. It holds no connection between edits: each
edit is one call of :class:`lookalike.people.People`, which opens a short writer connection, commits one
transaction and closes it, so index jobs and other processes get the file in between.

The protocol is one JSON object per line. The server writes ``{"op": "name", "args": {...}}`` on the helper's
stdin; the helper answers ``{"result": ...}`` or ``{"error": {"code", "message", "hint"}, "kind": "PersonNotFound",
"status": 404}`` on its stdout. Everything else the helper prints goes to stderr (the server's log).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from lookalike import errors
from lookalike.errors import LookalikeError

#: Seconds :meth:`PeopleWriter.close` waits for the helper to end by itself before stopping it.
CLOSE_TIMEOUT_S = 5.0


class WriterFailed(LookalikeError):
    """The helper process that writes people edits ended or failed unexpectedly."""

    code = "internal_error"
    http_status = 500


class PeopleWriter:
    """The server's side of the helper: :meth:`call` sends one edit and waits for its answer (thread-safe).

    Edits are serialised (one at a time, in arrival order). A helper that died is started again on the next
    edit; the edit that was in flight when it died fails with :class:`WriterFailed` (it is not sent twice,
    since it may have been committed).
    """

    def __init__(self, dataset_path: str, *, python: str = sys.executable) -> None:
        self.dataset_path = dataset_path
        self.python = python
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _start(self) -> subprocess.Popen[str]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        try:
            self._proc = proc = subprocess.Popen(
                [self.python, "-m", "lookalike.server.people_worker", self.dataset_path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # the server's own stderr: tracebacks of the helper land in the server's log
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as exc:
            raise WriterFailed(f"cannot start the process that writes people edits: {exc}") from exc
        return proc

    def call(self, op: str, **args: Any) -> Any:
        """Run ``People.<op>(**args)`` in the helper and return its JSON result; its error is raised here as the
        same :mod:`lookalike.errors` class (same code, message, hint and HTTP status). Blocking."""
        with self._lock:
            if self._closed:
                raise WriterFailed("the server is shutting down", hint="retry once it is running again")
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (OSError, ValueError):  # a closed pipe: the helper died
                line = ""
            if not line:
                code = proc.poll()
                self._proc = None
                raise WriterFailed(
                    f"the process that writes people edits ended (exit code {code}) during {op!r}",
                    hint="the edit may or may not have been saved: list the people again; the server log has details",
                )
        reply = json.loads(line)
        if "error" in reply:
            raise _error_from(reply)
        return reply["result"]

    def close(self) -> None:
        """End the helper (it finishes the edit it is on: closing its stdin makes it exit after that)."""
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _error_from(reply: dict[str, Any]) -> LookalikeError:
    """The helper's error as the same class of :mod:`lookalike.errors` (a generic one for other kinds)."""
    body = reply.get("error") or {}
    kind = getattr(errors, str(reply.get("kind", "")), None)
    cls = kind if isinstance(kind, type) and issubclass(kind, LookalikeError) else LookalikeError
    err = cls(str(body.get("message") or "the people edit failed"), hint=body.get("hint"), code=body.get("code"))
    err.http_status = int(reply.get("status") or err.http_status)
    return err
