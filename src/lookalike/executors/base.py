"""The executor protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn(*args)`` for each argument tuple; yields results as they finish (any order)."""

    workers: int

    def imap_unordered(self, fn: Callable[..., R], arg_tuples: Iterable[tuple[Any, ...]]) -> Iterator[R]: ...

    def close(self) -> None: ...
