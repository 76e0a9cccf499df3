"""Local executors: in the calling process, or in a pool of worker processes on this machine."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

R = TypeVar("R")


class InlineExecutor:
    """Runs every call in this process, one after another (the default for ``--workers 1``)."""

    workers = 1

    def imap_unordered(self, fn: Callable[..., R], arg_tuples: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        for args in arg_tuples:
            yield fn(*args)

    def close(self) -> None:
        pass


def _exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Runs in a worker: exit as soon as the parent is gone (killed with SIGKILL, say), leaving no orphans."""
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def _init_worker(threads: int, parent_pid: int) -> None:
    # Each worker gets its share of the cores, so N workers do not oversubscribe the machine.
    os.environ["LOOKALIKE_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


class ProcessExecutor:
    """A pool of ``workers`` processes (spawned, so native libraries start clean); each loads the model once.

    At most ``2 * workers`` calls are in flight, so a long job does not queue all its work (and memory) at once.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads, os.getpid()),
        )

    def imap_unordered(self, fn: Callable[..., R], arg_tuples: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        pending: set[Future[R]] = set()
        queue = deque(arg_tuples)
        while queue or pending:
            while queue and len(pending) < 2 * self.workers:
                pending.add(self._pool.submit(fn, *queue.popleft()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
