"""The Ray executor: embedding chunks run as Ray tasks on a cluster's workers (``--executor ray``).

What runs where:

- the driver (``lookalike index``) lists the sources, diffs them against the dataset, and sends each chunk as a
  task carrying only the objects' metadata (URI, size, fingerprint...): never image bytes;
- each task reads its photos from the bucket itself, decodes, detects, aligns and embeds them
  (:func:`lookalike.embedding.embed_objects`, the same function local jobs run); a Ray worker process keeps its
  loaded model between tasks, so a model loads once per worker, not once per chunk;
- results stream back as tasks finish and the driver commits them through the same writer as local jobs (at
  most once a second), so the job stays incremental and resumable and the dataset file stays the single source
  of truth.

Faults: a task whose worker process dies (killed, out of memory, node lost) is retried by Ray on another worker,
up to :data:`MAX_RETRIES` times; nothing was committed for it, so no row is lost or written twice. A per-photo error
is a row status, as in local jobs. A cluster that cannot be reached fails before anything is written.

Measured (``benchmarks/ingest_throughput.py --executor ray``): see the README. Plain tasks were chosen over Ray
Data's ``map_batches``: the unit of work is already a chunk of object metadata listed by the driver, tasks need no
dataset planning, and a retried task re-reads its photos from the bucket by itself.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lookalike.errors import ExecutorError, InvalidArgument

R = TypeVar("R")

#: Times Ray retries a chunk whose worker process died.
MAX_RETRIES = 4
#: Seconds to wait for a cluster's address to answer before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Addresses that mean "no remote cluster": start (or join) a Ray runtime on this machine.
LOCAL_ADDRESSES = ("", "local", "auto")


def resolve_address(address: str | None) -> str | None:
    """The cluster address to use: ``address``, else ``$RAY_ADDRESS``, else ``None`` (a local Ray runtime)."""
    chosen = address if address is not None else os.environ.get("RAY_ADDRESS")
    chosen = (chosen or "").strip()
    return None if chosen in LOCAL_ADDRESSES else chosen


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the Ray executor needs Ray, which is not installed", hint="pip install 'lookalike[ray]'"
        ) from None
    return ray


def check(address: str | None) -> None:
    """Fail fast, before anything is written, when Ray is missing or the cluster's address does not answer."""
    _import_ray()
    target = resolve_address(address)
    if target is None:
        return
    parts = urlsplit(target if "://" in target else f"tcp://{target}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise InvalidArgument(
            f"bad Ray address {target!r}",
            hint="use HOST:PORT (the head's GCS port, 6379 by default) or ray://HOST:PORT",
        )
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ExecutorError(
            f"cannot reach the Ray cluster at {target}: {err.strerror or err}",
            hint="is the head running (ray start --head)? check --ray-address / RAY_ADDRESS",
        ) from None


def _quiet_driver(ray: Any) -> None:
    """Keep the cluster's messages off this process's stdout, which carries ``--json`` output: Ray prints a
    worker's death there ("(raylet) A worker died..."), even with ``log_to_driver=False``, although it retries
    the task by itself. Ray has no public switch for it; its debugger uses this module flag the same way."""
    private = getattr(getattr(ray, "_private", None), "worker", None)
    if private is not None and hasattr(private, "_worker_logs_enabled"):
        private._worker_logs_enabled = False


def _call(fn: Callable[..., R], threads: int, *args: Any) -> R:
    """Runs on a Ray worker: one thread per task for the models (Ray gives each task one CPU), then ``fn``."""
    os.environ.setdefault("LOOKALIKE_THREADS", str(threads))
    return fn(*args)


class RayExecutor:
    """Runs chunks as Ray tasks (one CPU each), at most two per cluster CPU in flight, yielding results as they
    finish. Connects on construction: to ``address`` / ``$RAY_ADDRESS``, or a local Ray runtime."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        ray = _import_ray()
        check(address)
        self._ray = ray
        self.address = resolve_address(address)
        self._owns_runtime = not ray.is_initialized()
        if self._owns_runtime:
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    configure_logging=True,
                )
            except Exception as err:  # Ray raises ConnectionError, RuntimeError... with long messages
                where = self.address or "a local Ray runtime"
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ExecutorError(f"cannot start or join {where}: {first}") from None
        _quiet_driver(ray)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, min(workers, cpus) if workers else cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_call)

    def imap_unordered(self, fn: Callable[..., R], arg_tuples: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        ray = self._ray
        pending: list[Any] = []
        args = iter(arg_tuples)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    nxt = next(args)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(self._remote.remote(fn, 1, *nxt))
            if not pending:
                return
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except Exception as err:  # retries exhausted, or the cluster went away
                for ref in pending:
                    ray.cancel(ref, force=True)
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ExecutorError(
                    f"a chunk failed on the Ray cluster after {MAX_RETRIES} retries: {first}",
                    hint="committed chunks are kept: run the same command again to resume",
                ) from None
            yield result

    def close(self) -> None:
        if self._owns_runtime and self._ray.is_initialized():
            self._ray.shutdown()
