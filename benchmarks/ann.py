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
* ``ms_per_query``: single-query latency (200 queries one at a time, mean; 50 at fraction 1.0);
  ``ms_per_query_batch100``: one call with 100 queries, divided by 100; ``exact_ms_per_query``: exact search's
  single-query latency measured the same way in the same run; ``speedup``: exact / index single-query latency.
* ``build_s``: train + add; ``index_bytes``: ``faiss.serialize_index`` size (not counting the float32 matrix,
  which every point keeps for the exact re-rank; 0 for EXACT); ``rss_mb``: the process's peak RSS so far.

Usage::

    python benchmarks/ann.py --sizes 200000 --json benchmarks/results/ann.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections import defaultdict
from typing import Any

import numpy as np

from lookalike.search.vindex._faiss import faiss as load_faiss
from machine import print_banner

CACHE = "benchmarks/cache/emb-fr-feature.npz"
K = 10
THRESHOLD = 0.673  # the card's same-person cosine distance
SINGLE = 200  # single queries timed
SINGLE_SLOW = 50  # ... at fraction 1.0
SLOW_QUERIES = 200  # queries whose quality TREE_AH at fraction 1.0 measures (it re-ranks all n rows per query)
BATCH = 100
EVAL_BATCH = 100  # queries per search call when measuring quality
IVF_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
RERANKS = (250, 500, 1000, 2000)


def load_lfw(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(usable, q_vecs, q_labels, g_vecs, g_labels)``: all usable unit rows, then queries and gallery."""
    z = np.load(path)
    names = [str(s) for s in z["names"]]
    vec = np.asarray(z["vectors"], np.float32)
    finite = np.isfinite(vec).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vec, 0.0), axis=1)
    ok = finite & (norms >= 0.5)
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


def make_table(usable: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray, n: int, seed: int = 0):
    """``(matrix, labels)``: the gallery plus rotated-LFW distractors (label -1), ``n`` unit rows, shuffled."""
    if n < len(gallery):
        raise SystemExit(f"--sizes must be at least the gallery's {len(gallery)} rows, got {n}")
    dim = usable.shape[1]
    rng = np.random.default_rng(seed)
    table = np.empty((n, dim), np.float32)
    labels = np.full(n, -1, np.int64)
    table[: len(gallery)] = gallery
    labels[: len(gallery)] = g_labels
    pos = len(gallery)
    while pos < n:
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q *= np.sign(np.diag(r))  # a uniformly random rotation
        take = min(len(usable), n - pos)
        block = usable[:take] @ q.astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        table[pos : pos + take] = block
        pos += take
    perm = rng.permutation(n)
    return table[perm], labels[perm]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single_ms(fn, queries: np.ndarray, count: int) -> float:
    """Mean ms of ``fn`` on each of the first ``count`` queries, one at a time (after one warm-up call)."""
    count = min(count, len(queries))
    fn(queries[:1])
    t0 = time.perf_counter()
    for i in range(count):
        fn(queries[i : i + 1])
    return (time.perf_counter() - t0) / count * 1e3


def batch_ms(fn, queries: np.ndarray) -> float:
    batch = queries[:BATCH]
    t0 = time.perf_counter()
    fn(batch)
    return (time.perf_counter() - t0) / len(batch) * 1e3


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
        f"{r['factory'] or '-'}",
        flush=True,
    )


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
    exact_ms = single_ms(exact, q, SINGLE)
    base = {"n": n, "exact_rank1": exact_rank1, "exact_ms_per_query": exact_ms}
    results = [
        {
            **base,
            "index_type": "EXACT",
            "fraction_lists_to_search": None,
            "rerank_candidates": None,
            "rank1": exact_rank1,
            "same_person_recall": 1.0,
            "recall_at_10": 1.0,
            "ms_per_query": exact_ms,
            "ms_per_query_batch100": batch_ms(exact, q),
            "speedup": 1.0,
            "build_s": 0.0,
            "index_bytes": 0,
            "rss_mb": rss_mb(),
            "lists": None,
            "factory": None,
        }
    ]
    half = HalfVectors(matrix)

    def exact_half(qs: np.ndarray) -> np.ndarray:
        return half.top_k(qs, K, "cosine")[0]

    half_ms = single_ms(exact_half, q, SINGLE)
    results.append(
        {
            **base,
            "index_type": "EXACT_FLOAT16",
            "fraction_lists_to_search": None,
            "rerank_candidates": None,
            **quality(in_batches(exact_half, q), ex_rows, ex_dist, labels, q_labels),
            "ms_per_query": half_ms,
            "ms_per_query_batch100": batch_ms(exact_half, q),
            "speedup": exact_ms / half_ms,
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
        li = LoadedIndex(name="bench", spec=spec, index=b.index, ids=b.ids, lists=b.lists, unit=b.unit, dim=512)
        d = delta(li, ids)
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
                ms = single_ms(search, q, single)
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
                **quality(rows, ex_rows[sub], ex_dist[sub], labels, q_labels[sub]),
                "ms_per_query": ms,
                "ms_per_query_batch100": ms_batch,
                "speedup": exact_ms / ms,
                "build_s": b.seconds,
                "index_bytes": size,
                "rss_mb": rss_mb(),
                "lists": b.lists,
                "factory": b.factory,
            }
            results.append(row)
            show(row)
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
    args = ap.parse_args(argv)
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
        results += run_size(n, args.types, usable, q, q_labels, gallery, g_labels, args.slow_queries)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"machine": machine, "workload": workload, "results": results}, fh, indent=2)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
