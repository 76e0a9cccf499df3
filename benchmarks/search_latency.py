"""Exact search latency at 100k and 1M vectors, against the memory-bandwidth floor measured in the same run.

The table is made of real face embeddings (``--embeddings`` .npy/.npz, by default the LFW embedding cache
``benchmarks/cache/emb-fr-feature.npz`` written by ``benchmarks/lfw_verify.py``), replicated with small
Gaussian noise and re-normalised up to the target size. Without a cache it falls back to random unit vectors
and says so.

The floor is the time one pass over the matrix must take at this machine's memory bandwidth: the matrix size
divided by the best read bandwidth measured with a streaming reduction over the same matrix.

Usage::

    python benchmarks/search_latency.py --sizes 100000 1000000 --queries 1 100 --json results.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

from lookalike.search.exact import top_k
from machine import print_banner


def _load_base(path: str | None, dim: int) -> tuple[np.ndarray, str]:
    candidates = [path] if path else sorted(glob.glob("benchmarks/cache/emb-fr-feature*.np[yz]"))
    for cand in candidates:
        if cand and os.path.exists(cand):
            loaded = np.load(cand)
            base = (loaded["vectors"] if cand.endswith(".npz") else loaded).astype(np.float32)
            base = base[np.isfinite(base).all(axis=1) & (np.abs(base).sum(axis=1) > 0)]
            return base, cand
    rng = np.random.default_rng(0)
    base = rng.standard_normal((10_000, dim)).astype(np.float32)
    return base, "random unit vectors (no embedding cache found)"


def make_table(base: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """``n`` unit rows: copies of ``base`` rows plus Gaussian noise of std ``noise``, built in place."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)
    step = 65_536
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = base[rng.integers(0, len(base), stop - start)]
        block = rows + rng.standard_normal(rows.shape, dtype=np.float32) * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


def _best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def bandwidth_floor(matrix: np.ndarray, repeat: int) -> tuple[float, float]:
    """(seconds for one read of ``matrix``, GB/s): the fastest of a BLAS gemv with a zero vector and a sum."""
    zero = np.zeros(matrix.shape[1], np.float32)
    t_gemv = _best(lambda: matrix @ zero, repeat)
    t_sum = _best(lambda: np.add.reduce(matrix, axis=0), repeat)
    t = min(t_gemv, t_sum)
    return t, matrix.nbytes / t / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--embeddings", default=None, help=".npy (or .npz with a vectors array) of real embeddings")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    machine = print_banner()

    base, origin = _load_base(args.embeddings, args.dim)
    print(f"base embeddings: {len(base)} x {base.shape[1]} from {origin}")
    results = []
    for n in args.sizes:
        matrix = make_table(base, n, args.noise)
        floor, gbps = bandwidth_floor(matrix, args.repeat)
        print(f"n={n:>9,}  matrix {matrix.nbytes / 2**20:,.0f} MiB  floor {floor * 1e3:.1f} ms ({gbps:.1f} GB/s)")
        rng = np.random.default_rng(1)
        for m in args.queries:
            q = matrix[rng.integers(0, n, m)] + rng.standard_normal((m, matrix.shape[1]), dtype=np.float32) * 0.05
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            t = _best(lambda q=q, mat=matrix: top_k(mat, q, args.top_k), args.repeat)
            ratio = t / floor
            print(f"   {m:>4} queries  {t * 1e3:8.1f} ms  ({t / m * 1e3:.2f} ms/query, {ratio:.2f}x floor)")
            results.append(
                {"n": n, "queries": m, "seconds": t, "floor_seconds": floor, "ratio_to_floor": ratio, "gb_per_s": gbps}
            )
        del matrix
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "embeddings": origin, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
