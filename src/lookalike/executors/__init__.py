"""Executors run the embedding mapper over chunks of work: in this process, in local processes, or on a Ray
cluster. Pick one by name with :func:`get_executor`; :func:`check_executor` fails fast (before a job writes
anything) when the chosen one cannot run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lookalike.errors import InvalidArgument
from lookalike.executors.base import Executor
from lookalike.executors.local import InlineExecutor, ProcessExecutor

#: ``factory(workers, options)``: ``workers`` is what the user asked for (``None``: the executor decides; local
#: executors then use ``options["auto_workers"]``); ``options`` holds executor settings such as ``ray_address``.
ExecutorFactory = Callable[[int | None, Mapping[str, Any]], Executor]


def _local(workers: int | None, options: Mapping[str, Any]) -> Executor:
    n = workers or int(options.get("auto_workers", 1))
    return InlineExecutor() if n <= 1 else ProcessExecutor(n)


def _ray(workers: int | None, options: Mapping[str, Any]) -> Executor:
    from lookalike.executors.raycluster import RayExecutor

    return RayExecutor(workers, options.get("ray_address"))


def _check_ray(options: Mapping[str, Any]) -> None:
    from lookalike.executors.raycluster import check

    check(options.get("ray_address"))


EXECUTORS: dict[str, ExecutorFactory] = {
    "inline": lambda workers, options: InlineExecutor(),
    "local": _local,
    "ray": _ray,
}

#: Checks run before a job writes anything (missing packages, unreachable clusters).
CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {"ray": _check_ray}


def check_executor(name: str, workers: int | None = None, options: Mapping[str, Any] | None = None) -> None:
    """Raise a clear error when executor ``name`` is unknown, ``workers`` is invalid, or it cannot run here."""
    if name not in EXECUTORS:
        raise InvalidArgument(f"unknown executor {name!r}", hint="available: " + ", ".join(sorted(EXECUTORS)))
    if workers is not None and workers < 1:
        raise InvalidArgument(f"--workers must be at least 1, got {workers}")
    check = CHECKS.get(name)
    if check is not None:
        check(options or {})


def get_executor(name: str = "local", workers: int | None = 1, options: Mapping[str, Any] | None = None) -> Executor:
    """Build the executor ``name`` with ``workers`` parallel workers (``None``: its own choice)."""
    check_executor(name, workers)
    return EXECUTORS[name](workers, options or {})


__all__ = ["CHECKS", "EXECUTORS", "Executor", "check_executor", "get_executor"]
