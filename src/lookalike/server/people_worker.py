"""The helper process that writes the server's people edits: ``python -m lookalike.server.people_worker DATASET``.

Started and fed by :class:`lookalike.server.people_writer.PeopleWriter` (whose docstring says why a separate
process). It reads one JSON request per line on stdin, ``{"op": "name", "args": {...}}``, runs that call of
:class:`lookalike.people.People` (each opens a short writer connection, commits one transaction and closes it)
and writes one JSON reply per line on stdout: ``{"result": ...}``, or ``{"error": {"code", "message", "hint"},
"kind": "PersonNotFound", "status": 404}``. It ends when its stdin closes.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from lookalike.errors import LookalikeError
from lookalike.people import People


def _op_cluster(people: People, a: dict[str, Any]) -> object:
    report = people.cluster(a["table"], full=a["full"], min_faces=a["min_faces"], threshold=a["threshold"])
    return report.to_dict()


def _op_forget(people: People, a: dict[str, Any]) -> object:
    return {**people.forget(a["person_id"], a["table"]), "table": a["table"]}


#: What the helper does for each operation: a call of :class:`lookalike.people.People`, as JSON.
OPERATIONS: dict[str, Callable[[People, dict[str, Any]], object]] = {
    "cluster": _op_cluster,
    "name": lambda p, a: p.name(a["person_id"], a["name"], a["table"]).to_dict(),
    "merge": lambda p, a: p.merge(a["person_ids"], a["table"]).to_dict(),
    "move": lambda p, a: p.move(a["face_ids"], a["to"], a["table"]).to_dict(),
    "unassign": lambda p, a: p.unassign(a["face_ids"], a["table"]),
    "hide": lambda p, a: p.hide(a["person_id"], a["table"], hidden=a["hidden"]).to_dict(),
    "feature": lambda p, a: p.feature(a["person_id"], a["face_id"], a["table"]).to_dict(),
    "forget": _op_forget,
}


def answer(people: People, request: dict[str, Any]) -> dict[str, Any]:
    """The reply to one request (never raises: a bug is logged on stderr and answered as an internal error)."""
    op = str(request.get("op"))
    fn = OPERATIONS.get(op)
    if fn is None:
        return {"error": {"code": "internal_error", "message": f"unknown people operation {op!r}"}, "status": 500}
    try:
        return {"result": fn(people, request.get("args") or {})}
    except LookalikeError as err:
        return {"error": err.to_dict(), "kind": type(err).__name__, "status": err.http_status}
    except Exception:  # a bug: the details go to the server's log, not to the client
        traceback.print_exc(file=sys.stderr)
        return {
            "error": {
                "code": "internal_error",
                "message": f"the people edit {op!r} failed inside the server",
                "hint": "the server log has the details",
            },
            "status": 500,
        }


def serve_requests(dataset_path: str, requests: IO[str], replies: IO[str]) -> None:
    """Answer each request line of ``requests`` with one line on ``replies`` until ``requests`` ends."""
    people = People(dataset_path)
    for line in requests:
        if not line.strip():
            continue
        reply = answer(people, json.loads(line))
        replies.write(json.dumps(reply, default=str) + "\n")
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal: the server ends us by closing stdin
    replies = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the replies
    serve_requests(args[0], sys.stdin, replies)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main())
