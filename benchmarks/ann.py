"""Vector indexes (IVF, TREE_AH) against exact search, on face-shaped work: recall, rank-1, latency, size.

Workload, for each table size N (``--sizes``):

* Embeddings: the LFW embedding cache ``benchmarks/cache/emb-fr-feature.npz`` (written by ``lfw_verify.py``);
  rows that are not finite or whose norm is under 0.5 (no face found) are dropped ("usable" rows).
* Queries: the first usable image of each LFW person with two or more usable images (about 1,680; ``--queries``
  keeps the first Q). Gallery: every other usable LFW image (about 11,500), labelled with its person.
* Distractors up to N rows: all usable LFW embeddings multiplied by a random orthogonal 512 x 512 matrix (QR of
  a seeded Gaussian matrix), one rotation per block of ~13k rows, as many blocks as needed. They keep the real
  geometry of face embeddings (clusters of one person, spread of the crowd) but match no query's person:
  label -1. Gallery and distractors are shuffled with a seeded permutation; ids are ``0..N-1``.
* Every search asks for the top 10 by COSINE distance. The card's same-person threshold is distance 0.673.

Points: EXACT (``lookalike.search.exact.top_k``); EXACT_FLOAT16 (``LOOKALIKE_VECTORS=float16``: the matrix as
float16 in a faiss scalar quantizer, ``index_bytes`` its size); IVF with the automatic number of lists at
``fraction_lists_to_search`` 0.05, 0.1, 0.25, 0.5 and 1.0; TREE_AH with its default (scan every 4-bit PQ code,
re-rank ``max(RERANK_MIN, RERANK_PER_K * k) * sqrt(N / RERANK_ROWS)`` candidates with the stored vectors: 500 for
k = 10 up to 200k rows, 1,118 at 1M; the row's ``rerank_candidates`` says how many), with fixed
``rerank_candidates`` 250, 500, 1000, 2000 (``RERANK_MIN`` set to it, no scaling), and with fraction
1.0 (every row: Lookalike then searches exactly). Its quality is measured on the first 200 queries only
(``--slow-queries``), and that row's ``exact_rank1`` is over the same 200.

Metrics per point (one JSON row each):

* ``rank1``: share of queries whose top-1 row is of the query's person; ``exact_rank1`` the same for exact search.
* ``same_person_recall``: of the exact top-10 rows within distance 0.673 of their query (all queries pooled),
  the share that the index's top 10 also holds: the matches a user would be shown.
* ``recall_at_10``: mean ``|index top 10 & exact top 10| / 10``.
* ``ms_per_query``: single-query latency, the median of 200 queries timed one at a time after 5 untimed ones (50
  at fraction 1.0), with ``ms_per_query_mean`` and ``ms_per_query_p95`` beside it; ``ms_per_query_batch100``: a
  call with 100 queries, divided by 100, the median of 3 such calls; ``exact_ms_per_query``: exact search's
  median single-query latency on 30 queries timed in 5 rounds alternating with the point's own (the EXACT row:
  200 on their own), so that the VM's drift over the run stays out of ``speedup``: exact / index median
  single-query latency.
* ``build_s``: train + add; ``index_bytes``: ``faiss.serialize_index`` size (not counting the float32 matrix,
  which every point keeps for the exact re-rank; 0 for EXACT); ``rss_mb``: the process's peak RSS so far.

Tables above 2M rows (:data:`LARGE_FROM`; 10M rows are 20 GB of float32) are made differently, since they don't fit
in memory here: the rows are written block by block to a float32 ``.npy`` file under ``--workdir`` (in generation
order, not shuffled; reused by later runs with the same inputs), the exact top 10 is computed block by block as
they are written, and exact search's latency is timed on 3 single queries over the memory-mapped file. The TREE_AH
index is built from the mapped file, written, and then searched by a fresh process that holds only the index and
the mapped file (as Lookalike's matrix cache maps it), so that its memory is the search's own: ``rss_mb`` is that
process's peak RSS, ``rss_anon_mb`` its private memory and ``rss_file_mb`` the pages of the mapped file it holds
(the OS page cache, shared and reclaimable). Points: the default candidate count and 2,000, 5,000 and 10,000.

From 50k rows (``REFINE_FROM_ROWS``) a TREE_AH index has refine codes (``build.wants_refine``): its candidates are
ranked by 4-bit scalar codes and only ``reranked_exactly`` of them are re-ranked with the stored vectors;
``refine`` says whether a row used them, ``refine_bytes`` their size (counted in ``index_bytes``).

Usage::

    python benchmarks/ann.py --sizes 200000 --json benchmarks/results/ann.json
    python benchmarks/ann.py --sizes 10000000 --json benchmarks/results/ann-10m.json   # 20 GB of disk, ~15 min
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.search.vindex._faiss import faiss as load_faiss
from machine import print_banner

CACHE = "benchmarks/cache/emb-fr-feature.npz"
K = 10
THRESHOLD = 0.673  # the card's same-person cosine distance
SINGLE = 200  # single queries timed
SINGLE_SLOW = 50  # ... at fraction 1.0
#: exact single queries timed with each point, for its ``exact_ms_per_query`` and ``speedup``
EXACT_NEAR = 30
#: rounds in which a point's queries and exact search's alternate (see paired_ms)
PAIR_ROUNDS = 5
SLOW_QUERIES = 200  # queries whose quality TREE_AH at fraction 1.0 measures (it re-ranks all n rows per query)
BATCH = 100
BATCH_ROUNDS = 3  # batches of BATCH queries timed, the median reported
EVAL_BATCH = 100  # queries per search call when measuring quality
IVF_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
RERANKS = (250, 500, 1000, 2000)


def usable_mask(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which embeddings are usable (finite, norm at least 0.5: a face was found), and their norms."""
    finite = np.isfinite(vec).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vec, 0.0), axis=1)
    return finite & (norms >= 0.5), norms


def load_lfw(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(usable, q_vecs, q_labels, g_vecs, g_labels)``: all usable unit rows, then queries and gallery."""
    z = np.load(path)
    names = [str(s) for s in z["names"]]
    vec = np.asarray(z["vectors"], np.float32)
    ok, norms = usable_mask(vec)
    keep = np.flatnonzero(ok)
    usable = vec[keep] / norms[keep, None]
    people = [names[i].split("/")[0] for i in keep]
    by_person: dict[str, list[int]] = defaultdict(list)
    for j, p in enumerate(people):
        by_person[p].append(j)
    ids = {p: i for i, p in enumerate(sorted(by_person))}
    labels = np.array([ids[p] for p in people], np.int64)
    q_idx = np.array([rows[0] for rows in by_person.values() if len(rows) > 1], np.int64)
    g_mask = np.ones(len(keep), bool)
    g_mask[q_idx] = False
    g_idx = np.flatnonzero(g_mask)
    return usable, usable[q_idx], labels[q_idx], usable[g_idx], labels[g_idx]


def table_blocks(usable: np.ndarray, gallery: np.ndarray, n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The rows of a table of ``n``, a block at a time: the gallery, then the usable LFW rows under one random
    rotation (drawn from ``rng``) per block, as many blocks as needed."""
    dim = usable.shape[1]
    first = np.ascontiguousarray(gallery[: min(len(gallery), n)])
    yield first
    pos = len(first)
    while pos < n:
        rot, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        rot *= np.sign(np.diag(r))  # a uniformly random rotation
        block = usable[: min(len(usable), n - pos)] @ rot.astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield block
        pos += len(block)


def make_table(usable: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray, n: int, seed: int = 0):
    """``(matrix, labels)``: the gallery plus rotated-LFW distractors (label -1), ``n`` unit rows, shuffled."""
    if n < len(gallery):
        raise SystemExit(f"--sizes must be at least the gallery's {len(gallery)} rows, got {n}")
    rng = np.random.default_rng(seed)
    table = np.empty((n, usable.shape[1]), np.float32)
    labels = np.full(n, -1, np.int64)
    labels[: len(gallery)] = g_labels
    pos = 0
    for block in table_blocks(usable, gallery, n, rng):
        table[pos : pos + len(block)] = block
        pos += len(block)
    perm = rng.permutation(n)
    return table[perm], labels[perm]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WARMUP = 5  # untimed single queries before each timing


@dataclass(frozen=True)
class Latency:
    """Single-query latency over ``count`` queries timed one at a time, in ms."""

    median: float
    mean: float
    p95: float

    def fields(self, prefix: str = "ms_per_query") -> dict[str, float]:
        return {prefix: self.median, f"{prefix}_mean": self.mean, f"{prefix}_p95": self.p95}


def single_ms(fn, queries: np.ndarray, count: int, warmup: int = WARMUP) -> Latency:
    """Latency of ``fn`` on each of the first ``count`` queries, one at a time, after :data:`WARMUP` untimed ones:
    the median is the figure reported (one stall of the VM moves a mean of 200 sub-millisecond queries by
    tenths of a millisecond); the mean and 95th percentile are kept beside it."""
    count = min(count, len(queries))
    for i in range(min(warmup, count)):
        fn(queries[i : i + 1])
    return _latency(np.array(_each_ms(fn, queries, range(count))))


def _each_ms(fn, queries: np.ndarray, rows: range) -> list[float]:
    """ms of ``fn`` on each of ``queries[rows]``, one query at a time."""
    out = []
    for i in rows:
        t0 = time.perf_counter()
        fn(queries[i : i + 1])
        out.append((time.perf_counter() - t0) * 1e3)
    return out


#: Seconds of untimed single queries after each build, before its first point is timed.
SETTLE_S = 3.0


def paired_ms(fn, exact_fn, queries: np.ndarray, count: int, exact_count: int = EXACT_NEAR) -> tuple[Latency, Latency]:
    """Latency of ``fn`` and of exact search, timed in :data:`PAIR_ROUNDS` alternating rounds (``count`` and
    ``exact_count`` single queries in all), so that both see the same machine: this VM's speed drifts by tens of
    percent within a minute, which a point timed a minute before exact search would carry into its speedup."""
    count, exact_count = min(count, len(queries)), min(exact_count, len(queries))
    for i in range(min(WARMUP, count)):
        fn(queries[i : i + 1])
    exact_fn(queries[:1])
    times: list[float] = []
    exact_times: list[float] = []
    for r in range(PAIR_ROUNDS):
        times += _each_ms(fn, queries, range(r * count // PAIR_ROUNDS, (r + 1) * count // PAIR_ROUNDS))
        exact_times += _each_ms(
            exact_fn, queries, range(r * exact_count // PAIR_ROUNDS, (r + 1) * exact_count // PAIR_ROUNDS)
        )
    return _latency(np.array(times)), _latency(np.array(exact_times))


def _latency(ms: np.ndarray) -> Latency:
    return Latency(float(np.median(ms)), float(ms.mean()), float(np.percentile(ms, 95)))


def settle(fn, queries: np.ndarray, seconds: float = SETTLE_S) -> None:
    """Search one query at a time for ``seconds``, untimed: a warm-up after each build, as a server answers
    queries long after its build. (The first point timed after a build once ran 1.5-2x slower than the same point
    a minute later; that turned out to be the VM's drift, which :func:`paired_ms` keeps out of the speedup.)"""
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        fn(queries[i % len(queries) : i % len(queries) + 1])
        i += 1


def batch_ms(fn, queries: np.ndarray, rounds: int = BATCH_ROUNDS) -> float:
    """ms a query of ``fn`` on :data:`BATCH` queries at once: the median over ``rounds`` different batches."""
    times = []
    for r in range(rounds):
        batch = queries[r * BATCH : (r + 1) * BATCH]
        if not len(batch):
            break
        t0 = time.perf_counter()
        fn(batch)
        times.append((time.perf_counter() - t0) / len(batch) * 1e3)
    return float(np.median(times))


def in_batches(fn, queries: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(queries[s : s + EVAL_BATCH]) for s in range(0, len(queries), EVAL_BATCH)])


def quality(rows: np.ndarray, exact_rows: np.ndarray, exact_dist: np.ndarray, labels, q_labels) -> dict[str, float]:
    hits = np.array([len(np.intersect1d(a, b)) for a, b in zip(rows, exact_rows, strict=True)])
    same = exact_dist <= THRESHOLD
    found = np.array([np.isin(e[s], r).sum() for e, s, r in zip(exact_rows, same, rows, strict=True)])
    return {
        "rank1": float(np.mean(labels[rows[:, 0]] == q_labels)),
        "same_person_recall": float(found.sum() / max(1, same.sum())),
        "recall_at_10": float(np.mean(hits) / K),
    }


HEADER = (
    f"{'n':>9} {'index':<8} {'frac':>5} {'rerank':>6} {'rank1':>7} {'exact':>7} {'sp_rec':>7} {'R@10':>6} "
    f"{'ms/q':>8} {'ms/q@100':>8} {'speedup':>7} {'build_s':>7} {'MiB':>7} {'rss_MB':>7} {'lists':>5} factory"
)


def show(r: dict[str, Any]) -> None:
    frac = "-" if r["fraction_lists_to_search"] is None else f"{r['fraction_lists_to_search']:g}"
    rerank = "-" if r["rerank_candidates"] is None else str(r["rerank_candidates"])
    print(
        f"{r['n']:>9,} {r['index_type']:<8} {frac:>5} {rerank:>6} {r['rank1']:>7.4f} {r['exact_rank1']:>7.4f} "
        f"{r['same_person_recall']:>7.4f} {r['recall_at_10']:>6.3f} {r['ms_per_query']:>8.2f} "
        f"{r['ms_per_query_batch100']:>8.3f} {r['speedup']:>7.1f} {r['build_s']:>7.1f} "
        f"{r['index_bytes'] / 2**20:>7.1f} {r['rss_mb']:>7.0f} {r['lists'] if r['lists'] is not None else '-':>5} "
        f"{r['factory'] or '-'}{'+SQ4 refine' if r.get('refine') else ''}",
        flush=True,
    )


def exact_point(base: dict[str, Any], batch100_ms: float, rss: float, lat: Latency) -> dict[str, Any]:
    """The EXACT row of a size: exact search against itself."""
    return {
        **base,
        "index_type": "EXACT",
        "fraction_lists_to_search": None,
        "rerank_candidates": None,
        "rank1": base["exact_rank1"],
        "same_person_recall": 1.0,
        "recall_at_10": 1.0,
        **lat.fields(),
        "ms_per_query_batch100": batch100_ms,
        "speedup": 1.0,
        "build_s": 0.0,
        "index_bytes": 0,
        "rss_mb": rss,
        "lists": None,
        "factory": None,
    }


def run_size(
    n: int, types: list[str], usable, q, q_labels, gallery, g_labels, slow_queries: int
) -> list[dict[str, Any]]:
    import lookalike.search.vindex.searcher as searcher_mod
    from lookalike.search.exact import top_k
    from lookalike.search.half import HalfVectors
    from lookalike.search.vindex.build import build
    from lookalike.search.vindex.searcher import LoadedIndex, delta, search_rows
    from lookalike.search.vindex.spec import SearchKnobs, parse_index_options

    faiss = load_faiss()

    t0 = time.perf_counter()
    matrix, labels = make_table(usable, gallery, g_labels, n)
    ids = np.arange(n, dtype=np.int64)
    print(
        f"\nn={n:,}: {len(gallery):,} gallery + {n - len(gallery):,} rotated distractors, {len(q):,} queries, "
        f"table {matrix.nbytes / 2**20:,.0f} MiB, made in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    def exact(qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_k(matrix, qs, K, "cosine")

    t0 = time.perf_counter()
    ex_rows, ex_dist = exact(q)
    print(f"exact ground truth: {time.perf_counter() - t0:.1f} s", flush=True)
    exact_rank1 = float(np.mean(labels[ex_rows[:, 0]] == q_labels))
    exact_lat = single_ms(exact, q, SINGLE)
    exact_ms = exact_lat.median
    base = {"n": n, "exact_rank1": exact_rank1, "exact_ms_per_query": exact_ms}
    results = [exact_point(base, batch_ms(exact, q), rss_mb(), exact_lat)]
    half = HalfVectors(matrix)

    def exact_half(qs: np.ndarray) -> np.ndarray:
        return half.top_k(qs, K, "cosine")[0]

    half_lat, near = paired_ms(exact_half, exact, q, SINGLE)
    results.append(
        {
            **base,
            "index_type": "EXACT_FLOAT16",
            "fraction_lists_to_search": None,
            "rerank_candidates": None,
            **quality(in_batches(exact_half, q), ex_rows, ex_dist, labels, q_labels),
            **half_lat.fields(),
            "ms_per_query_batch100": batch_ms(exact_half, q),
            "exact_ms_per_query": near.median,
            "speedup": near.median / half_lat.median,
            "build_s": 0.0,
            "index_bytes": half.array.nbytes,
            "rss_mb": rss_mb(),
            "lists": None,
            "factory": "SQfp16",
        }
    )
    print(HEADER)
    for r in results:
        show(r)

    for index_type in types:
        spec = parse_index_options({"index_type": index_type, "distance_type": "COSINE"})
        b = build(spec, matrix, ids)
        size = faiss.serialize_index(b.index).nbytes
        refine_size = 0 if b.refine is None else faiss.serialize_index(b.refine).nbytes
        li = LoadedIndex("bench", spec, b.index, b.ids, b.lists, b.unit, 512, refine=b.refine)
        with_refine = b.refine is not None  # from REFINE_FROM_ROWS
        d = delta(li, ids)
        settle(lambda qs, li=li, d=d: search_rows(li, matrix, ids, qs, K, "cosine", SearchKnobs(), cached=d), q)
        if index_type == "IVF":
            points: list[tuple[float | None, int | None]] = [(f, None) for f in IVF_FRACTIONS]
        else:
            points = [(None, None), *[(None, r) for r in RERANKS], (1.0, None)]
        for frac, rerank in points:
            knobs = SearchKnobs(fraction_lists_to_search=frac)

            def search(qs: np.ndarray, knobs: SearchKnobs = knobs, li: LoadedIndex = li, d: Any = d) -> np.ndarray:
                return search_rows(li, matrix, ids, qs, K, "cosine", knobs, cached=d)[0]

            saved = (searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS)
            if rerank is not None:
                searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS = rerank, 0, 1 << 62
            # TREE_AH at 1.0 re-ranks all n rows per query: quality on the first ``slow_queries`` queries only
            slow = index_type == "TREE_AH" and frac == 1.0
            sub = slice(0, slow_queries if slow else len(q))
            try:
                rows = in_batches(search, q[sub])
                single = SINGLE_SLOW if frac == 1.0 else SINGLE
                lat, near = paired_ms(search, exact, q, single)
                ms_batch = batch_ms(search, q)
            finally:
                searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS = saved
            row = {
                **base,
                "exact_rank1": float(np.mean(labels[ex_rows[sub, 0]] == q_labels[sub])),
                "index_type": index_type,
                "fraction_lists_to_search": frac,
                "rerank_candidates": rerank
                if rerank is not None or index_type != "TREE_AH" or frac is not None
                else searcher_mod.rerank_candidates(K, n),
                "refine": with_refine,
                "reranked_exactly": searcher_mod.exact_rerank_rows(K) if with_refine and frac is None else None,
                **quality(rows, ex_rows[sub], ex_dist[sub], labels, q_labels[sub]),
                **lat.fields(),
                "ms_per_query_batch100": ms_batch,
                "exact_ms_per_query": near.median,
                "speedup": near.median / lat.median,
                "build_s": b.seconds,
                "index_bytes": size + (refine_size if with_refine else 0),
                "refine_bytes": refine_size if with_refine else 0,
                "rss_mb": rss_mb(),
                "lists": b.lists,
                "factory": b.factory,
            }
            results.append(row)
            show(row)
    return results


#: Table sizes above this live in a memory-mapped float32 file (10M rows are 20 GB) and are searched by a fresh
#: process, whose peak RSS is then the search's own.
LARGE_FROM = 2_000_000
LARGE_RERANKS = (2000, 5000, 10000)
LARGE_EXACT_SINGLE = 3  # exact single queries timed at such sizes (each reads the whole file)


def _merge_top(rows: np.ndarray, dist: np.ndarray, new_rows: np.ndarray, new_dist: np.ndarray):
    """The best K of two ``(m, K)`` top lists, nearest first; ties keep the lower row (earlier blocks first)."""
    r = np.concatenate([rows, new_rows], axis=1)
    d = np.concatenate([dist, new_dist], axis=1)
    order = np.argsort(d, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(r, order, 1), np.take_along_axis(d, order, 1)


def large_table(workdir: str, usable, q, gallery, g_labels, n: int, seed: int = 0):
    """``(path, labels, exact_rows, exact_dist)`` for a table of ``n`` rows written block by block to
    ``workdir/ann-N.npy`` (reused when a previous run wrote it from the same inputs).

    The rows are made as :func:`make_table` makes them (the gallery, then one seeded rotation of the usable LFW
    rows per block) but not shuffled: a 20 GB shuffle costs more than it shows. The exact top ``K`` of every
    query is computed block by block as the file is written.
    """
    from lookalike.search.exact import top_k

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"ann-{n}.npy")
    meta_path = os.path.join(workdir, f"ann-{n}.json")
    truth = os.path.join(workdir, f"ann-{n}-exact.npz")
    key = {
        "n": n,
        "seed": seed,
        "usable": len(usable),
        "usable_sum": float(np.sum(usable, dtype=np.float64)),
        "queries": len(q),
        "queries_sum": float(np.sum(q, dtype=np.float64)),
    }
    if os.path.exists(meta_path) and os.path.exists(truth) and os.path.exists(path):
        with open(meta_path) as fh:
            if json.load(fh) == key:
                z = np.load(truth)
                print(f"table {path} and its exact top-{K} reused", flush=True)
                return path, z["labels"], z["rows"], z["dist"]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, usable.shape[1]))
    labels = np.full(n, -1, np.int64)
    labels[: min(len(gallery), n)] = g_labels[:n]
    best_r = np.full((len(q), K), -1, np.int64)
    best_d = np.full((len(q), K), np.inf, np.float32)
    t0 = time.perf_counter()
    pos = 0
    for blocks, block in enumerate(table_blocks(usable, gallery, n, np.random.default_rng(seed)), start=1):
        out[pos : pos + len(block)] = block
        rows, dist = top_k(block, q, K, "cosine")
        best_r, best_d = _merge_top(best_r, best_d, rows + pos, dist)
        pos += len(block)
        if blocks % 100 == 0 or pos >= n:
            print(f"  {pos:,} rows written, {time.perf_counter() - t0:.0f} s", flush=True)
    out.flush()
    del out
    np.savez(truth, labels=labels, rows=best_r, dist=best_d)
    with open(meta_path, "w") as fh:
        json.dump(key, fh)
    return path, labels, best_r, best_d


def proc_status() -> dict[str, float]:
    """This process's resident memory from ``/proc/self/status``, in MB: peak, now, anonymous, file-backed."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def large_worker(args_path: str) -> None:
    """Search a large table's TREE_AH index in this fresh process, which holds the index file and the
    memory-mapped table and nothing else; writes its points as JSON (``out`` in the arguments file)."""
    import lookalike.search.vindex.searcher as searcher_mod
    from lookalike.search.rowreader import RowReader
    from lookalike.search.vindex.files import read_refine
    from lookalike.search.vindex.searcher import LoadedIndex, delta, search_rows
    from lookalike.search.vindex.spec import IndexSpec, SearchKnobs

    faiss = load_faiss()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    with open(args_path) as fh:
        a = json.load(fh)
    z = np.load(a["truth"])
    labels, ex_rows, ex_dist = z["labels"], z["rows"], z["dist"]
    qz = np.load(a["queries"])
    q, q_labels = qz["q"], qz["q_labels"]
    t0 = time.perf_counter()
    matrix = np.load(a["table"], mmap_mode="r")
    # the re-rank reads scattered rows through a second mapping advised for random access, as Lookalike's matrix
    # cache maps it (``diskcache._scattered``)
    scattered = np.load(a["table"], mmap_mode="r")
    scattered._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]
    reader = RowReader(a["table"])  # where the index has refine codes, the exact re-rank reads with pread
    index = faiss.read_index(a["index"])
    refine = read_refine(a["refine"]) if a.get("refine") else None
    n = int(matrix.shape[0])
    ids = np.arange(n, dtype=np.int64)
    spec = IndexSpec.from_json(a["spec"])
    li = LoadedIndex("bench", spec, index, ids, a["lists"], True, int(matrix.shape[1]), refine=refine)
    d = delta(li, ids)
    load_s = time.perf_counter() - t0
    loaded = proc_status()
    print(f"  search process: index read and table mapped in {load_s:.1f} s; memory MB {loaded}", flush=True)
    results = []
    knobs = SearchKnobs()
    for rerank in (None, *LARGE_RERANKS):

        def search(qs: np.ndarray) -> np.ndarray:
            return search_rows(li, scattered, ids, qs, K, "cosine", knobs, cached=d, scan=matrix, reader=reader)[0]

        saved = (searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS)
        if rerank is not None:
            searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS = rerank, 0, 1 << 62
        try:
            rows = in_batches(search, q)
            lat = single_ms(search, q, SINGLE)
            ms_batch = batch_ms(search, q)
        finally:
            searcher_mod.RERANK_MIN, searcher_mod.RERANK_PER_K, searcher_mod.RERANK_ROWS = saved
        status = proc_status()
        results.append(
            {
                "rerank_candidates": rerank if rerank is not None else searcher_mod.rerank_candidates(K, n),
                "knob_default": rerank is None,
                "refine": refine is not None,
                "reranked_exactly": searcher_mod.exact_rerank_rows(K) if refine is not None else None,
                **quality(rows, ex_rows, ex_dist, labels, q_labels),
                **lat.fields(),
                "ms_per_query_batch100": ms_batch,
                "rss_mb": status["VmHWM"],
                "rss_anon_mb": status["RssAnon"],
                "rss_file_mb": status["RssFile"],
            }
        )
        print(f"  search process: {results[-1]}", flush=True)
    with open(a["out"], "w") as fh:
        json.dump({"loaded": loaded, "load_s": load_s, "results": results}, fh)


def run_large(n: int, workdir: str, usable, q, q_labels, gallery, g_labels) -> list[dict[str, Any]]:
    """TREE_AH against exact search on a table too large to hold in memory (see :data:`LARGE_FROM`)."""
    import subprocess
    import sys

    from lookalike.search.exact import top_k
    from lookalike.search.vindex.build import build
    from lookalike.search.vindex.spec import parse_index_options

    faiss = load_faiss()
    print(
        f"\nn={n:,}: {len(gallery):,} gallery + {n - len(gallery):,} rotated distractors, {len(q):,} queries, "
        f"table {n * usable.shape[1] * 4 / 2**30:,.1f} GiB memory-mapped from {workdir}",
        flush=True,
    )
    t0 = time.perf_counter()
    path, labels, ex_rows, _ = large_table(workdir, usable, q, gallery, g_labels, n)
    print(f"table and exact top-{K}: {time.perf_counter() - t0:.0f} s", flush=True)
    matrix = np.load(path, mmap_mode="r")
    exact_rank1 = float(np.mean(labels[ex_rows[:, 0]] == q_labels))
    exact_lat = single_ms(lambda qs: top_k(matrix, qs, K, "cosine"), q, LARGE_EXACT_SINGLE, warmup=0)
    exact_ms = exact_lat.median
    print(f"exact: rank-1 {exact_rank1:.4f}, {exact_ms:.0f} ms per query ({LARGE_EXACT_SINGLE} timed)", flush=True)
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, matrix, np.arange(n, dtype=np.int64))
    build_s, lists, factory = b.seconds, b.lists, b.factory
    index_path = os.path.join(workdir, f"ann-{n}.faiss")
    faiss.write_index(b.index, index_path)
    refine_path = os.path.join(workdir, f"ann-{n}-refine.faiss") if b.refine is not None else ""
    if refine_path:
        faiss.write_index(b.refine, refine_path)
    size = os.path.getsize(index_path) + (os.path.getsize(refine_path) if refine_path else 0)
    print(
        f"TREE_AH built in {build_s:.0f} s ({factory}), {size / 2**20:,.0f} MiB; build process peak RSS "
        f"{rss_mb():,.0f} MB",
        flush=True,
    )
    del b
    qpath = os.path.join(workdir, "queries.npz")
    np.savez(qpath, q=q, q_labels=q_labels)
    args_path = os.path.join(workdir, "worker.json")
    out_path = os.path.join(workdir, "worker-out.json")
    worker_args = {
        "table": path,
        "truth": os.path.join(workdir, f"ann-{n}-exact.npz"),
        "index": index_path,
        "refine": refine_path,
        "queries": qpath,
        "spec": spec.to_json(),
        "lists": lists,
        "out": out_path,
    }
    with open(args_path, "w") as fh:
        json.dump(worker_args, fh)
    subprocess.run([sys.executable, __file__, "--large-worker", args_path], check=True)
    with open(out_path) as fh:
        worker = json.load(fh)
    base = {"n": n, "exact_rank1": exact_rank1, "exact_ms_per_query": exact_ms}
    results = [exact_point(base, float("nan"), 0.0, exact_lat)]
    for w in worker["results"]:
        results.append(
            {
                **base,
                "index_type": "TREE_AH",
                "fraction_lists_to_search": None,
                **w,
                "speedup": exact_ms / w["ms_per_query"],
                "build_s": build_s,
                "index_bytes": size,
                "lists": lists,
                "factory": factory,
                "search_process_load_s": worker["load_s"],
            }
        )
    print(HEADER)
    for r in results:
        show(r)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000], help="table sizes (rows)")
    ap.add_argument("--json", default=None, help="write the results here (rewritten after each size)")
    ap.add_argument("--queries", type=int, default=None, help="keep only the first Q queries (default: all)")
    ap.add_argument("--types", nargs="+", choices=["IVF", "TREE_AH"], default=["IVF", "TREE_AH"])
    ap.add_argument(
        "--slow-queries",
        type=int,
        default=SLOW_QUERIES,
        help=f"queries whose quality is measured for TREE_AH at fraction 1.0 (default {SLOW_QUERIES})",
    )
    ap.add_argument("--embeddings", default=CACHE, help="LFW embedding cache (.npz with names and vectors)")
    ap.add_argument(
        "--workdir",
        default="benchmarks/cache/ann-large",
        help=f"where tables above {LARGE_FROM:,} rows are written (20 GB at 10M; reused between runs)",
    )
    ap.add_argument("--large-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.large_worker:
        large_worker(args.large_worker)
        return
    machine = print_banner()

    faiss = load_faiss()  # with passive OpenMP waits, as Lookalike runs it
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    usable, q, q_labels, gallery, g_labels = load_lfw(args.embeddings)
    if args.queries is not None:
        q, q_labels = q[: args.queries], q_labels[: args.queries]
    print(
        f"LFW {args.embeddings}: {len(usable):,} usable embeddings, {len(q):,} queries, {len(gallery):,} gallery; "
        f"top-{K} by cosine, same-person threshold {THRESHOLD}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads",
        flush=True,
    )
    workload = {
        "embeddings": args.embeddings,
        "usable": len(usable),
        "queries": len(q),
        "gallery": len(gallery),
        "k": K,
        "distance": "cosine",
        "same_person_threshold": THRESHOLD,
        "distractors": "usable LFW embeddings times a seeded random orthogonal matrix per block, label -1",
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "tree_ah_fraction_1_queries": min(args.slow_queries, len(q)),
    }
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for n in args.sizes:
        if n > LARGE_FROM:
            results += run_large(n, args.workdir, usable, q, q_labels, gallery, g_labels)
        else:
            results += run_size(n, args.types, usable, q, q_labels, gallery, g_labels, args.slow_queries)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"machine": machine, "workload": workload, "results": results}, fh, indent=2)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
