"""The embedding job: list sources, diff them against the dataset, embed what is new or changed, write.

The job is incremental and resumable:

1. **List** every source. A source that cannot be listed is reported and left alone: none of its stored rows
   are removed because of a failed listing.
2. **Diff** against the objects stored for the table: new and changed objects (by fingerprint: generation,
   md5 or etag plus size) are embedded; unchanged objects that failed before are retried; unchanged objects
   that succeeded are skipped; stored objects of a listed source that are gone are removed.
3. **Embed** in chunks on an executor (this process, local processes, or a cluster).
4. **Write** finished chunks in transactions on short-lived connections, at most one a second (each chunk as it
   finishes when they come slower). A job killed at any moment keeps every chunk committed before, and the next
   run starts where it stopped.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lookalike.dataset import store, writer
from lookalike.dataset.connection import connect
from lookalike.embedding import embed_objects
from lookalike.errors import LookalikeError
from lookalike.executors import check_executor, get_executor
from lookalike.faces.registry import get_card
from lookalike.images import DEFAULT_MAX_PIXELS
from lookalike.records import ObjectResult
from lookalike.search.calibration import SAMPLE_FACES, Calibration, calibrate, uncalibrated
from lookalike.search.vindex import faces as face_indexes
from lookalike.storage import ObjectInfo, StorageOptions, list_objects, would_list

T = TypeVar("T")

#: Objects per chunk: one unit of work for a worker (finished chunks are committed together, see commit_stream).
DEFAULT_CHUNK = 32


@dataclass(slots=True)
class IndexReport:
    """What an ``index`` run did. ``failed`` objects have a row with an error status (see ``errors``)."""

    table: str
    model: str
    listed: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    no_face: int = 0
    faces: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (uri or source, message)
    source_errors: list[tuple[str, str]] = field(default_factory=list)
    #: The table's same-person calibration after the job (recomputed when the job changed the table).
    calibration: Calibration | None = None
    #: The table's vector indexes after the job: ``{"name", "refreshed", "rows"}`` each.
    vector_indexes: list[dict[str, object]] = field(default_factory=list)
    #: The grouping run after the job (``Dataset.index(cluster=True)``): its report as a dict, ``{"error": ...}``
    #: when it could not run, or None when none ran.
    people: dict[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "model": self.model,
            "listed": self.listed,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "no_face": self.no_face,
            "faces": self.faces,
            "seconds": round(self.seconds, 3),
            "errors": [{"uri": u, "message": m} for u, m in self.errors],
            "source_errors": [{"source": s, "message": m} for s, m in self.source_errors],
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "vector_indexes": self.vector_indexes,
            "people": self.people,
        }


@dataclass(frozen=True, slots=True)
class IndexPlan:
    todo: list[tuple[str, ObjectInfo]]
    is_update: dict[str, bool]
    removed: list[str]
    unchanged: int
    listed: int


def normalise_source(source: str) -> str:
    """Local paths become absolute, so ``photos`` and ``./photos`` are the same source; URIs stay as given."""
    if "://" in source:
        return source
    return os.path.abspath(os.path.expanduser(source))


def plan_index(
    stored: dict[str, store.StoredObject],
    listing: Sequence[tuple[str, ObjectInfo]],
    listed_sources: set[str],
) -> IndexPlan:
    """Decide what to embed, what to skip and what to remove (pure function, easy to test)."""
    todo: list[tuple[str, ObjectInfo]] = []
    is_update: dict[str, bool] = {}
    seen: set[str] = set()
    unchanged = 0
    for source, info in listing:
        if info.uri in seen:  # listed by two overlapping sources
            continue
        seen.add(info.uri)
        old = stored.get(info.uri)
        if old is not None and old.fingerprint == info.fingerprint and old.status != "error":
            unchanged += 1
            continue
        todo.append((source, info))
        is_update[info.uri] = old is not None
    # gone: stored objects that a listed source (as stored, or a folder above them) no longer yields
    removed = [
        uri
        for uri, old in stored.items()
        if uri not in seen and (old.source in listed_sources or any(would_list(src, uri) for src in listed_sources))
    ]

    return IndexPlan(todo=todo, is_update=is_update, removed=sorted(removed), unchanged=unchanged, listed=len(seen))


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How an index job runs (not what it indexes).

    ``workers`` and ``executor`` choose where embedding runs (see :mod:`lookalike.executors`); ``workers=None``
    means one worker process per CPU core (at most 8, and no more than there are chunks). Worker processes are
    spawned, so a script that asks for them must guard its entry point with ``if __name__ == "__main__":``
    (the default, 1, embeds in the calling process and needs no guard). ``chunk_size``
    is the unit of work; finished chunks are committed at most once a second (:data:`COMMIT_INTERVAL_S`), so a
    killed job loses at most one chunk per worker and a second of finished ones.
    ``on_plan(n)`` is called once with the number of photos to embed, ``on_progress(k)`` after each commit with
    the number of photos it wrote.
    """

    workers: int | None = 1
    executor: str = "local"
    #: The Ray cluster for ``executor="ray"`` (else ``$RAY_ADDRESS``; neither: a local Ray runtime).
    ray_address: str | None = None
    chunk_size: int = DEFAULT_CHUNK
    storage_options: StorageOptions | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: A photo with no detected face is indexed as one face (for photos that are face crops).
    whole_photo_face: bool = False
    on_plan: Callable[[int], None] | None = None
    on_progress: Callable[[int], None] | None = None


def run_index(
    dataset_path: str | Path,
    sources: Sequence[str],
    *,
    table: str,
    model: str | None = None,
    options: JobOptions | None = None,
) -> IndexReport:
    """Index ``sources`` into ``table`` of the dataset at ``dataset_path``; see the module docstring."""
    opts = options or JobOptions()

    def plan(stored: dict[str, store.StoredObject], report: IndexReport) -> IndexPlan:
        listing: list[tuple[str, ObjectInfo]] = []
        listed_sources: set[str] = set()
        for raw in sources:
            source = normalise_source(raw)
            try:
                listing.extend(list_objects([source], options=opts.storage_options))
            except LookalikeError as err:
                report.source_errors.append((raw, str(err)))
                continue
            listed_sources.add(source)
        return plan_index(stored, listing, listed_sources)

    return _run(dataset_path, table, model, opts, plan)


def index_listed(
    dataset_path: str | Path,
    listing: Sequence[tuple[str, ObjectInfo]],
    *,
    table: str,
    model: str | None = None,
    options: JobOptions | None = None,
) -> IndexReport:
    """Index objects the caller has already listed, as ``(source, info)`` pairs (no listing, no removal).

    Used where the objects come from elsewhere than a fresh listing, e.g. the metadata cache of a SQL object
    table. New and changed objects (by fingerprint) are embedded; unchanged ones are reused; stored objects
    that are not in ``listing`` are left alone.
    """
    return _run(
        dataset_path, table, model, options or JobOptions(), lambda stored, _: plan_index(stored, listing, set())
    )


def _run(
    dataset_path: str | Path,
    table: str,
    model: str | None,
    opts: JobOptions,
    make_plan: Callable[[dict[str, store.StoredObject], IndexReport], IndexPlan],
) -> IndexReport:
    """Open (or create) the table, plan against what is stored, carry the plan out."""
    started = time.perf_counter()
    check_executor(opts.executor, opts.workers, _executor_options(opts))  # before anything is written
    info, stored = _open_table(dataset_path, table, model)
    report = IndexReport(table=table, model=info.model)
    _execute(dataset_path, info, make_plan(stored, report), report, opts)
    report.calibration = recalibrate(dataset_path, table)
    report.vector_indexes = refresh_vector_indexes(dataset_path, table)
    report.seconds = time.perf_counter() - started
    return report


def recalibrate(dataset_path: str | Path, table: str) -> Calibration:
    """Recompute ``table``'s same-person calibration from its faces when its version moved since the last one.

    Reads a repeatable sample of at most :data:`~lookalike.search.calibration.SAMPLE_FACES` embeddings, so it
    costs well under a second at any table size. Returns the calibration in force.
    """
    with connect(dataset_path) as con:
        info = store.get_table(con, table)
        card = get_card(info.model)
        newly_calibrated = card.calibrated and info.calibration.method == "uncalibrated"  # models calibrate ran
        if info.calibrated_version == info.version and not newly_calibrated:
            return info.calibration
        if newly_calibrated:
            store.register_model(con, card)
        if not card.calibrated:
            cal = uncalibrated(card.name)
        else:
            cal = calibrate(store.sample_embeddings(con, info, SAMPLE_FACES), card.threshold, card.safe_threshold)
        store.set_calibration(con, info, cal)
        return cal


def refresh_vector_indexes(dataset_path: str | Path, table: str) -> list[dict[str, object]]:
    """Add the table's new faces to its vector indexes and remove deleted ones (nothing to do without one)."""
    with connect(dataset_path) as con:
        info = store.get_table(con, table)
        done = face_indexes.refresh(con, os.fspath(dataset_path), info)
    return [
        {"name": rec.name, "refreshed": changed, "rows": int((rec.build or {}).get("rows", 0))} for rec, changed in done
    ]


def _open_table(
    dataset_path: str | Path, table: str, model: str | None
) -> tuple[store.TableInfo, dict[str, store.StoredObject]]:
    """Create or migrate the dataset, get (or create) ``table`` and read its stored objects."""
    with writer(dataset_path) as con:
        existing = store.find_table(con, table)
        card = get_card(model if model is not None or existing is None else existing.model)
        info = store.ensure_table(con, table, card)
        return info, store.stored_objects(con, table)


def _execute(
    dataset_path: str | Path, info: store.TableInfo, plan: IndexPlan, report: IndexReport, opts: JobOptions
) -> None:
    """Carry out ``plan``: remove what is gone, then embed and write the work in committed chunks."""
    report.listed = plan.listed
    report.unchanged = plan.unchanged
    if opts.on_plan:
        opts.on_plan(len(plan.todo))
    if plan.removed:
        with connect(dataset_path) as con:
            report.removed = store.remove_objects(con, info, plan.removed)

    size = opts.chunk_size
    chunks = [plan.todo[i : i + size] for i in range(0, len(plan.todo), size)]
    if not chunks:
        return
    options = {**_executor_options(opts), "auto_workers": auto_workers(len(chunks))}
    runner = get_executor(opts.executor, opts.workers, options)
    chunks = split_tail(chunks, runner.workers)
    try:
        # settings resolved here, so workers elsewhere (a Ray cluster) read the bucket as this process would
        storage = opts.storage_options or StorageOptions.from_env()
        args = ((info.model, chunk, storage, opts.max_pixels, opts.whole_photo_face) for chunk in chunks)

        def committed(results: Sequence[ObjectResult]) -> None:
            _tally(report, results, plan.is_update)
            if opts.on_progress:
                opts.on_progress(len(results))

        commit_stream(dataset_path, info, runner.imap_unordered(embed_objects, args), committed)
    finally:
        runner.close()


#: Most photos committed in one transaction when finished chunks queue up faster than they are written.
COMMIT_MAX_PHOTOS = 2048
#: Least seconds between two commits of a job. Each commit opens the dataset file, writes and closes it (closing
#: checkpoints), about 0.1 s on 2 vCPUs taken from the workers' cores: a commit per 32-photo chunk cost 11 % of a
#: 2-worker job's CPU. Chunks that finish within this interval of the last commit go in the next one, so a kill
#: loses at most about this long of finished work (plus the chunks in flight); a slow job still commits each
#: chunk as it finishes.
COMMIT_INTERVAL_S = 1.0


def commit_stream(
    dataset_path: str | Path,
    info: store.TableInfo,
    batches: Iterable[Sequence[ObjectResult]],
    on_commit: Callable[[Sequence[ObjectResult]], None],
    max_photos: int = COMMIT_MAX_PHOTOS,
    interval_s: float = COMMIT_INTERVAL_S,
) -> None:
    """Write each batch of results as it comes, with group commit: a writer thread commits, in one connection
    and transaction, everything that arrived while it was writing the previous group or within ``interval_s``
    of that commit (up to ``max_photos``).

    So a slow job commits every chunk the moment it is done (a kill loses at most the chunks in flight and
    ``interval_s`` of finished ones), and a big cluster whose chunks arrive faster than one commit takes is not
    held back by the per-commit cost of opening the file. ``on_commit`` is called (in the writer thread) after
    each commit.
    """
    todo: queue.Queue[Sequence[ObjectResult] | None] = queue.Queue(maxsize=256)
    failure: list[BaseException] = []

    def write_loop() -> None:
        try:
            finished = False
            last_commit = time.monotonic() - interval_s
            while not finished:
                first = todo.get()
                if first is None:
                    return
                group = list(first)
                due = last_commit + interval_s
                while len(group) < max_photos:
                    try:
                        wait = due - time.monotonic()
                        more = todo.get(timeout=wait) if wait > 0 else todo.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        finished = True
                        break
                    group.extend(more)
                with connect(dataset_path) as con:
                    store.write_results(con, info, group)
                last_commit = time.monotonic()
                on_commit(group)
        except BaseException as err:  # handed to the caller's thread below
            failure.append(err)

    thread = threading.Thread(target=write_loop, name="lookalike-writer", daemon=True)
    thread.start()

    def put(item: Sequence[ObjectResult] | None) -> None:
        while True:
            if failure or not thread.is_alive():
                return
            try:
                todo.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    try:
        for results in batches:
            put(results)
            if failure:
                break
    finally:
        put(None)
        thread.join()
    if failure:
        raise failure[0]


#: The last chunks of a job are cut in this many parts (see split_tail).
TAIL_PARTS = 4


def split_tail(chunks: list[list[T]], workers: int, parts: int = TAIL_PARTS) -> list[list[T]]:
    """``chunks`` with the last ``workers`` of them cut in ``parts`` each, in order.

    Workers take chunks as they free up, so when the work runs out one worker may still have most of a chunk
    to do while the others wait: half a chunk's time on average (about 0.3 s for 32 photos on one core here).
    Smaller last chunks let them finish close together. One worker has nobody to wait for: unchanged.
    """
    if workers <= 1:
        return chunks
    cut = max(0, len(chunks) - workers)
    small: list[list[T]] = []
    for chunk in chunks[cut:]:
        step = max(1, -(-len(chunk) // parts))
        small.extend(chunk[i : i + step] for i in range(0, len(chunk), step))
    return chunks[:cut] + small


def _executor_options(opts: JobOptions) -> dict[str, object]:
    return {"ray_address": opts.ray_address}


def auto_workers(chunks: int) -> int:
    """Worker processes for ``chunks`` chunks of work: one per core, at most 8, at most one per chunk.

    Detection runs best on one thread per image, so on 2 cores two single-threaded workers index about 1.5x
    faster than one process (see the ingest benchmark in the README).
    """
    return max(1, min(os.cpu_count() or 1, 8, chunks))


def _tally(report: IndexReport, results: Sequence[ObjectResult], is_update: dict[str, bool]) -> None:
    for res in results:
        if is_update.get(res.info.uri):
            report.updated += 1
        else:
            report.added += 1
        if res.status == "error":
            report.failed += 1
            report.errors.append((res.info.uri, res.error or "unknown error"))
        elif res.status == "no_face":
            report.no_face += 1
        else:
            report.faces += len(res.faces)
