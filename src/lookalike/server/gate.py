"""A bounded queue in front of the embedding work, so that a burst of uploads cannot exhaust threads or memory.

Searching or verifying an uploaded photo means running the face models: tens of milliseconds of CPU. The gate
lets ``concurrency`` such requests run at once (about one per core: more only thrash) and ``capacity`` in all
(running plus waiting). A request beyond ``capacity``, or one that waited ``wait_timeout`` seconds for its turn,
gets ``503 busy`` with a ``Retry-After`` (seconds) estimated from the recent service time: a client retries
instead of piling up. Requests that need no model (a search by an indexed face) skip the gate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from lookalike.errors import LookalikeError

T = TypeVar("T")


class Busy(LookalikeError):
    """The server has as much embedding work queued as it accepts."""

    code = "busy"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class WorkGate:
    """Admission control for model work (see the module docstring). Use from the event loop only."""

    def __init__(self, concurrency: int, capacity: int, wait_timeout: float = 60.0) -> None:
        self.concurrency = max(1, concurrency)
        self.capacity = max(self.concurrency, capacity)
        self.wait_timeout = wait_timeout
        self._sem: asyncio.Semaphore | None = None
        self._admitted = 0
        self._service_s = 0.2  # running mean of one request's work

    def _retry_after(self) -> int:
        waiting = max(0, self._admitted - self.concurrency)
        return max(1, math.ceil(self._service_s * (waiting + 1) / self.concurrency))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in a worker thread once admitted; :class:`Busy` when the queue is full or slow."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        if self._admitted >= self.capacity:
            raise Busy(
                f"the server is busy: {self._admitted} photos are being searched or waiting",
                retry_after=self._retry_after(),
                hint="retry after the number of seconds in the Retry-After header",
            )
        self._admitted += 1
        try:
            try:
                await asyncio.wait_for(self._sem.acquire(), timeout=self.wait_timeout)
            except TimeoutError:
                raise Busy(
                    f"the server is busy: no turn within {self.wait_timeout:g} s",
                    retry_after=self._retry_after(),
                    hint="retry after the number of seconds in the Retry-After header",
                ) from None
            started = time.perf_counter()
            try:
                return await run_in_threadpool(fn, *args)
            finally:
                self._sem.release()
                self._service_s = 0.8 * self._service_s + 0.2 * (time.perf_counter() - started)
        finally:
            self._admitted -= 1
