"""Executors run the embedding mapper over chunks of work: in this process, in local processes, or (later)
on a Ray cluster. Pick one by name with :func:`get_executor`."""

from __future__ import annotations

from collections.abc import Callable

from lookalike.errors import InvalidArgument
from lookalike.executors.base import Executor
from lookalike.executors.local import InlineExecutor, ProcessExecutor

ExecutorFactory = Callable[[int], Executor]

EXECUTORS: dict[str, ExecutorFactory] = {
    "inline": lambda workers: InlineExecutor(),
    "local": lambda workers: InlineExecutor() if workers <= 1 else ProcessExecutor(workers),
}


def get_executor(name: str = "local", workers: int = 1) -> Executor:
    """Build the executor ``name`` with ``workers`` parallel workers."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise InvalidArgument(f"unknown executor {name!r}", hint="available: " + ", ".join(sorted(EXECUTORS))) from None
    if workers < 1:
        raise InvalidArgument(f"--workers must be at least 1, got {workers}")
    return factory(workers)


__all__ = ["EXECUTORS", "Executor", "get_executor"]
