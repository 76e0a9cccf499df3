"""Grouping faces into persons (``lookalike.people``) on all of LFW, against DBSCAN, HDBSCAN and Chinese Whispers.

Four parts, one run (each can be skipped):

1. **Ours, through the real code path.** The cached LFW embeddings (``benchmarks/cache/emb-fr-feature.npz``,
   13,233 photos of 5,749 people, one face per photo, written by ``lfw_common``; computed here if missing) are
   written into a fresh DuckDB dataset the way the indexer writes them (``dataset.store.ensure_table`` +
   ``write_results`` with one ``ObjectResult`` per photo, then ``ingest.recalibrate``), then grouped with
   ``Dataset.people.cluster()`` and read back with ``.people.export()``. At the default thresholds
   (``search.calibration.grouping_thresholds``: two single faces merge up to the face threshold, large groups up
   to the group threshold) with ``min_faces`` 3 (the default), 2 and 1, and over a sweep of group thresholds
   (``--thresholds``, the face threshold 0.8 of each; ``cluster(full=True)`` regroups from scratch each time).
2. **Peers on the same vectors**, timed: scikit-learn ``DBSCAN`` (cosine, ``min_samples`` 1-3, an eps sweep),
   scikit-learn ``HDBSCAN`` (euclidean on the unit vectors through a precomputed distance matrix, which gives the
   same labels as the tree path and is about 14x faster here; ``min_cluster_size`` 2-3, ``min_samples`` default or
   1, ``eom`` or ``leaf``; matched: the same hierarchy cut flat at our distance with ``dbscan_clustering``, since
   ``cluster_selection_epsilon`` raises on NumPy 2.x in scikit-learn 1.9, issue #33219) and dlib's Chinese
   Whispers (euclidean: on unit vectors ``sqrt(2 x cosine distance)``; ``dlib.chinese_whispers_clustering``
   itself at our threshold and at the best sweep point; the sweep runs ``dlib.chinese_whispers`` on the same edge
   list that call builds: every pair under the threshold plus self-loops). Each peer is shown at its best sweep
   point (highest BCubed F) and at the setting that matches our face threshold (the distance at which we join two
   single faces, in its metric). Every row is also scored with ``min_faces`` 3 applied (groups of fewer faces count
   as singletons), so that the peers can be compared with our default on equal terms.
3. **Incremental against full.** The photos, shuffled with a fixed seed, arrive in ``--batches`` parts; after each
   part is written (and the table recalibrated, as ``lookalike index`` does) an incremental ``people.cluster()``
   runs. The end result is scored against one ``cluster(full=True)`` on a fresh dataset holding every photo, and
   against a full regrouping of the incremental dataset.
3b. **Other populations** (``--populations``): the labelled sets of ``benchmarks/fair_data.py`` whose
   embeddings are cached (``benchmarks/cache/fair-fr-feature-extra-*.npz``: K-pop idols, BLACKPINK, Asian
   celebrities, Black celebrities; see the README for where each comes from), each written into its own DuckDB
   dataset and grouped through ``people.cluster()`` at the default, next to each peer at the setting that was best
   on LFW (settings are not tuned per set: a user can't tune on labels they don't have), and a flat cut-off at the
   table-calibrated linkage (the rule before the size-aware threshold).
4. **Scale** (``--scale N``, default 1,000,000; ``--skip-scale``), in child processes (peak memory = the child's
   ``ru_maxrss``; the child's address space is capped at ``--scale-mem-gib`` so that a run that needs more fails
   with ``MemoryError`` instead of pushing other work on the machine out of memory). ``--scale-data``:

   * ``synthetic`` (default): identities with 1-20 faces each (uniform) around unit centres drawn from an
     anisotropic Gaussian (participation ratio 50), so that different-identity cosine distances look like LFW's
     (median 1.0, spread ~0.095); each identity's noise is set so same-identity distances look like LFW's genuine
     ones (median ~0.30, 5-95 % about 0.18-0.47). The threshold is the one the calibration derives from them.
   * ``lfw-rotated``: LFW's real embeddings, then copies of them under random orthogonal rotations (a block of
     13,233 per rotation, its people new identities): real geometry inside each block (real hard cases, and the
     kind of data on which approximate neighbour search loses most), random directions between blocks. The
     threshold is the one LFW's own faces calibrate to (a calibration read from the mix would be looser, since
     rotated strangers are farther apart than real ones); the note gives the BCubed F of the original LFW faces.

   Timed: the core algorithm (``cluster.neighbour_graph`` + ``cluster.agglomerate``, ``min_faces`` 3), and the
   whole path on a DuckDB dataset (writing the rows, recalibrating and ``people.cluster()`` measured separately;
   the grouping is skipped where the core algorithm already failed at that size; ``--scale-paths``).
   ``--scale-steps`` runs smaller sizes first (with a cProfile of the core algorithm at the first of them) to show
   how time and memory grow.

Scores (``DESIGN.md``): pairwise and BCubed precision / recall / F, NMI (scikit-learn's
``normalized_mutual_info_score``, arithmetic averaging); faces in no person count as singletons. ``persons`` is
the number of groups a method reports as persons (ours: groups of at least ``min_faces``; DBSCAN / HDBSCAN: every
cluster that is not noise; Chinese Whispers: every label); ``groups>=2`` / ``groups>=3`` count groups of that many
faces for every method, against LFW's 1,680 people with two or more photos and 901 with three or more.

Usage::

    python benchmarks/cluster_lfw.py --scale-data synthetic,lfw-rotated --md /tmp/cluster_lfw-tables.md
    python benchmarks/cluster_lfw.py --skip-scale --skip-peers           # ours and the incremental check only
    python benchmarks/cluster_lfw.py --skip-lfw --scale 200000 --scale-steps '' --scale-data synthetic,lfw-rotated

Needs scikit-learn (``pip install -e .[bench]``) and dlib (``dlib-bin``) for the peers.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache" / "emb-fr-feature.npz"
MODEL = "fr-feature"
TABLE = "faces"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -------------------------------------------------------------------------------------------------------- scores


def as_singletons(pred: np.ndarray) -> np.ndarray:
    """Labels with every negative (unassigned / noise) label replaced by a label of its own."""
    pred = np.asarray(pred, np.int64).copy()
    loose = pred < 0
    base = pred.max() + 1 if (~loose).any() else 0
    pred[loose] = base + np.arange(int(loose.sum()))
    return pred


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pairwise and BCubed precision / recall / F and NMI of ``pred`` (negative = unassigned = singleton)."""
    from sklearn.metrics import normalized_mutual_info_score

    pred = as_singletons(pred)
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    n = len(t)
    a = np.bincount(t).astype(np.float64)  # faces per true identity
    b = np.bincount(p).astype(np.float64)  # faces per predicted group
    cells, nij = np.unique(t.astype(np.int64) * (p.max() + 1) + p, return_counts=True)
    ci, cj = cells // (p.max() + 1), cells % (p.max() + 1)
    nij = nij.astype(np.float64)
    s = float((nij**2).sum())

    def ratio(num: float, den: float) -> float:
        return 1.0 if den == 0 else num / den

    def f(pr: float, rc: float) -> float:
        return 0.0 if pr + rc == 0 else 2 * pr * rc / (pr + rc)

    pp = ratio(s - n, float((b**2).sum()) - n)
    pr = ratio(s - n, float((a**2).sum()) - n)
    bp = float((nij**2 / b[cj]).sum() / n)
    br = float((nij**2 / a[ci]).sum() / n)
    return {
        "pairwise_precision": pp,
        "pairwise_recall": pr,
        "pairwise_f": f(pp, pr),
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f": f(bp, br),
        "nmi": float(normalized_mutual_info_score(t, p)),
    }


def group_counts(pred: np.ndarray) -> dict[str, int]:
    sizes = np.bincount(as_singletons(pred))
    sizes = sizes[sizes > 0]
    return {"groups>=2": int((sizes >= 2).sum()), "groups>=3": int((sizes >= 3).sum())}


def min_faces_rule(pred: np.ndarray, min_faces: int) -> np.ndarray:
    """``pred`` with every group of fewer than ``min_faces`` faces unassigned (-1), as ``people.cluster`` does."""
    pred = as_singletons(pred)
    _, inv, sizes = np.unique(pred, return_inverse=True, return_counts=True)
    return np.where(sizes[inv] >= min_faces, pred, -1)


def row(method: str, setting: str, truth: np.ndarray, pred: np.ndarray, seconds: float, **extra: Any) -> dict:
    """Scores of ``pred``, as given and (``min3``) with ``min_faces`` 3 applied."""
    out = {"method": method, "setting": setting, **scores(truth, pred), **group_counts(pred), "seconds": seconds}
    p3 = min_faces_rule(pred, 3)
    out["min3"] = {**scores(truth, p3), **group_counts(p3), "persons": len(np.unique(p3[p3 >= 0]))}
    out.update(extra)
    return out


# -------------------------------------------------------------------------------------------------------- data


def load_lfw(data: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, unit vectors, person labels)`` of every LFW photo (the embedding cache, filled if missing)."""
    if not CACHE.exists():
        import lfw_common

        root = lfw_common.data_dir(data)
        names = lfw_common.all_images(root)
        log(f"no embedding cache at {CACHE}: detecting and embedding {len(names)} LFW photos (slow, once)")
        dets = lfw_common.detect_images(root, names)
        lfw_common.embed_images(root, dets, MODEL)
    with np.load(CACHE) as z:
        names = [str(s) for s in z["names"]]
        vectors = np.asarray(z["vectors"], np.float32)
    order = np.argsort(names, kind="stable")
    names = [names[i] for i in order]
    vectors = vectors[order]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    people = [n.split("/")[0] for n in names]
    ids = {p: i for i, p in enumerate(sorted(set(people)))}
    return names, vectors, np.array([ids[p] for p in people], np.int64)


def face_results(uris: list[str], vectors: np.ndarray) -> list:
    """One ``ObjectResult`` per photo with one face, as the embedding job hands them to ``write_results``."""
    from lookalike.faces.types import DetectedFace
    from lookalike.records import ObjectResult
    from lookalike.storage import ObjectInfo

    marks = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32)
    return [
        ObjectResult(
            info=ObjectInfo(uri=u, size=10_000, content_type="image/jpeg", updated=NOW, generation="1"),
            source=u.rsplit("/", 1)[0],
            status="ok",
            faces=[DetectedFace(bbox=(0.0, 0.0, 112.0, 112.0), landmarks=marks, score=0.99)],
            embeddings=vectors[i : i + 1],
        )
        for i, u in enumerate(uris)
    ]


def write_faces(path: str, uris: list[str], vectors: np.ndarray, chunk: int = 10_000) -> dict[str, float]:
    """Write photos into the dataset's table (created on first use), then recalibrate it, as indexing does."""
    from lookalike.dataset import store as dstore
    from lookalike.dataset import writer
    from lookalike.faces.registry import get_card
    from lookalike.ingest import recalibrate

    t0 = time.perf_counter()
    with writer(path) as con:
        info = dstore.ensure_table(con, TABLE, get_card(MODEL))
        for s in range(0, len(uris), chunk):
            dstore.write_results(con, info, face_results(uris[s : s + chunk], vectors[s : s + chunk]))
    t1 = time.perf_counter()
    cal = recalibrate(path, TABLE)
    return {"write_s": t1 - t0, "recalibrate_s": time.perf_counter() - t1, "calibration": cal.to_dict()}


def fresh_path(workdir: str, name: str) -> str:
    path = os.path.join(workdir, name)
    for p in (path, path + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)
    return path


def exported_labels(ds: Any, uri_pos: dict[str, int], n: int) -> np.ndarray:
    """Each photo's person id from ``people.export()`` (-1: in no person)."""
    pred = np.full(n, -1, np.int64)
    for r in ds.people.export(TABLE):
        if r["person_id"] is not None:
            pred[uri_pos[r["uri"]]] = int(r["person_id"])
    return pred


# -------------------------------------------------------------------------------------------------------- ours


def run_ours(args: argparse.Namespace, names: list[str], vectors: np.ndarray, truth: np.ndarray) -> dict:
    import lookalike
    from lookalike.search.calibration import Calibration, grouping_thresholds

    uris = [f"/lfw/{n}" for n in names]
    uri_pos = {u: i for i, u in enumerate(uris)}
    path = fresh_path(args.workdir, "lfw-all.duckdb")
    written = write_faces(path, uris, vectors)
    pair = grouping_thresholds(Calibration(**written["calibration"]))
    assert pair is not None
    default_face, default_t = pair
    log(
        f"ours: wrote {len(uris)} faces in {written['write_s']:.1f} s; default thresholds {default_face:.4f} (faces)"
        f" - {default_t:.4f} (groups)"
    )
    ds = lookalike.open(path)
    rows: list[dict] = []

    def one(setting: str, min_faces: int, threshold: float | None, full: bool, role: str) -> None:
        t0 = time.perf_counter()
        rep = ds.people.cluster(TABLE, full=full, min_faces=min_faces, threshold=threshold)
        secs = time.perf_counter() - t0
        pred = exported_labels(ds, uri_pos, len(names))
        r = row(
            "ours (average linkage, kNN 16)",
            setting,
            truth,
            pred,
            secs,
            role=role,
            min_faces=min_faces,
            threshold=rep.threshold,
            face_threshold=rep.face_threshold,
            persons=rep.persons,
            unassigned=rep.unassigned,
            report=rep.to_dict(),
        )
        rows.append(r)
        log(
            f"  {setting:32s} BCubed F {r['bcubed_f']:.4f}  pairwise F {r['pairwise_f']:.4f}  persons "
            f"{rep.persons}  {secs:.1f} s"
        )

    one("default, min_faces 3 (first run)", 3, None, False, "default")
    for m in (2, 1):
        one(f"default, min_faces {m}", m, None, True, "default")
    for m in args.min_faces_sweep:
        for t in args.thresholds:
            one(f"group threshold {t:.3f}, min_faces {m}", m, t, True, "sweep")
    return {
        "default_threshold": default_t,
        "default_face_threshold": default_face,
        "calibration": written["calibration"],
        "write_s": written["write_s"],
        "rows": rows,
    }


# -------------------------------------------------------------------------------------------------------- peers


def run_peers(args: argparse.Namespace, vectors: np.ndarray, truth: np.ndarray, t_ours: float) -> list[dict]:
    import warnings

    from sklearn.cluster import DBSCAN, HDBSCAN

    warnings.filterwarnings("ignore", category=FutureWarning)
    rows: list[dict] = []
    eu = float(np.sqrt(2 * t_ours))  # our cosine linkage distance as a euclidean distance on unit vectors

    def add(r: dict) -> None:
        rows.append(r)
        log(f"  {r['method']:18s} {r['setting']:48s} BCubed F {r['bcubed_f']:.4f}  {r['seconds']:.1f} s")

    # DBSCAN -------------------------------------------------------------------------------------------------
    eps_list = sorted(set(args.eps) | {round(t_ours, 4)})
    for ms in (1, 2, 3):
        for eps in eps_list:
            t0 = time.perf_counter()
            lab = DBSCAN(eps=eps, min_samples=ms, metric="cosine").fit_predict(vectors)
            secs = time.perf_counter() - t0
            role = "matched" if eps == round(t_ours, 4) else "sweep"
            add(
                row(
                    "DBSCAN",
                    f"cosine eps {eps:.3f}, min_samples {ms}",
                    truth,
                    lab,
                    secs,
                    role=role,
                    persons=int(lab.max() + 1),
                    params={"eps": eps, "min_samples": ms},
                )
            )

    # HDBSCAN (euclidean on unit vectors, precomputed matrix) -------------------------------------------------
    t0 = time.perf_counter()
    dist = np.sqrt(np.clip(2.0 - 2.0 * (vectors @ vectors.T), 0.0, None)).astype(np.float64)
    np.fill_diagonal(dist, 0.0)
    matrix_s = time.perf_counter() - t0
    for mcs in (2, 3):
        for ms in (None, 1):
            for how in ("eom", "leaf"):
                t0 = time.perf_counter()
                hdb = HDBSCAN(
                    min_cluster_size=mcs, min_samples=ms, metric="precomputed", copy=True, cluster_selection_method=how
                )
                lab = hdb.fit_predict(dist)
                secs = time.perf_counter() - t0 + matrix_s
                params = {"min_cluster_size": mcs, "min_samples": ms, "method": how}
                add(
                    row(
                        "HDBSCAN",
                        f"mcs {mcs}, min_samples {ms or mcs}, {how}",
                        truth,
                        lab,
                        secs,
                        role="sweep",
                        persons=int(lab.max() + 1),
                        matrix_s=matrix_s,
                        params=params,
                    )
                )
                if how == "eom":  # the same hierarchy cut flat at our distance (DBSCAN* on mutual reachability)
                    t0 = time.perf_counter()
                    lab = hdb.dbscan_clustering(cut_distance=eu, min_cluster_size=mcs)
                    cut_s = time.perf_counter() - t0
                    add(
                        row(
                            "HDBSCAN",
                            f"mcs {mcs}, min_samples {ms or mcs}, cut at {eu:.3f}",
                            truth,
                            lab,
                            secs + cut_s,
                            role="matched",
                            persons=int(lab.max() + 1),
                            matrix_s=matrix_s,
                            params={**params, "method": "dbscan_clustering", "cut_distance": eu},
                        )
                    )
    # cluster_selection_epsilon = our distance would be the other natural match; it raises on NumPy 2.x in
    # scikit-learn 1.9 (scikit-learn issue #33219), so it is tried once and the outcome recorded
    try:
        lab = HDBSCAN(min_cluster_size=2, metric="precomputed", copy=True, cluster_selection_epsilon=eu).fit_predict(
            dist
        )
        add(
            row(
                "HDBSCAN",
                f"mcs 2, min_samples 2, eom, epsilon {eu:.3f}",
                truth,
                lab,
                float("nan"),
                role="matched",
                persons=int(lab.max() + 1),
                params={"min_cluster_size": 2, "epsilon": eu},
            )
        )
    except TypeError as e:
        log(f"  HDBSCAN cluster_selection_epsilon={eu:.3f} failed: {e} (scikit-learn #33219)")
        rows.append(
            {
                "method": "HDBSCAN",
                "setting": f"cluster_selection_epsilon {eu:.3f}",
                "role": "error",
                "error": f"TypeError: {e} (scikit-learn issue #33219, NumPy 2.x)",
            }
        )
    del dist

    # Chinese Whispers --------------------------------------------------------------------------------------
    import dlib

    sims = vectors @ vectors.T
    n = len(vectors)
    loops = [(i, i) for i in range(n)]
    sweep = []
    for cos_t in args.cw_thresholds:
        t0 = time.perf_counter()
        i, j = np.nonzero(np.triu(sims > 1.0 - cos_t, 1))
        edges = loops + list(zip(i.tolist(), j.tolist(), strict=True))
        lab = np.asarray(dlib.chinese_whispers(edges), np.int64)
        secs = time.perf_counter() - t0
        r = row(
            "Chinese Whispers",
            f"euclid {np.sqrt(2 * cos_t):.3f} (cos {cos_t:.3f}), edge list",
            truth,
            lab,
            secs,
            role="sweep",
            persons=len(np.unique(lab)),
            params={"euclidean": float(np.sqrt(2 * cos_t)), "cosine": cos_t},
        )
        add(r)
        sweep.append(r)
    del sims
    best = max(sweep, key=lambda r: r["bcubed_f"])
    descriptors = [dlib.vector(v.astype(np.float64).tolist()) for v in vectors]
    for cos_t, role in ((t_ours, "matched"), (best["params"]["cosine"], "best (real call)")):
        t0 = time.perf_counter()
        lab = np.asarray(dlib.chinese_whispers_clustering(descriptors, float(np.sqrt(2 * cos_t))), np.int64)
        secs = time.perf_counter() - t0
        add(
            row(
                "Chinese Whispers",
                f"euclid {np.sqrt(2 * cos_t):.3f} (cos {cos_t:.3f})",
                truth,
                lab,
                secs,
                role=role,
                persons=len(np.unique(lab)),
                params={"euclidean": float(np.sqrt(2 * cos_t)), "cosine": cos_t},
            )
        )
    return rows


# -------------------------------------------------------------------------------------------------------- populations


def best_peer(peers: list[dict], method: str) -> dict | None:
    """The peer's sweep row with the highest BCubed F on LFW, or ``None``."""
    rows = [r for r in peers if r["method"] == method and r.get("role") == "sweep" and "params" in r]
    return max(rows, key=lambda r: r["bcubed_f"]) if rows else None


def cw_labels(vectors: np.ndarray, cos_t: float) -> np.ndarray:
    """dlib's Chinese Whispers on every pair under ``cos_t`` (plus self-loops), as ``run_peers``' sweep."""
    import dlib

    sims = vectors @ vectors.T
    i, j = np.nonzero(np.triu(sims > 1.0 - cos_t, 1))
    edges = [(k, k) for k in range(len(vectors))] + list(zip(i.tolist(), j.tolist(), strict=True))
    return np.asarray(dlib.chinese_whispers(edges), np.int64)


def run_populations(args: argparse.Namespace, peers: list[dict]) -> list[dict]:
    """Part 3b: each cached labelled set of ``fair_data.py`` grouped by us (default) and by the LFW-best peers."""
    import lookalike
    from lookalike.people import cluster
    from lookalike.search.calibration import Calibration

    out: list[dict] = []
    files = sorted((HERE / "cache").glob(f"fair-{MODEL}-extra-*.npz"))
    if not files:
        log("populations: no cached labelled sets (run benchmarks/fairness.py with --extra first); skipped")
    for f in files:
        name = f.stem.removeprefix(f"fair-{MODEL}-extra-")
        with np.load(f) as z:
            ok = z["ok"].astype(bool)
            names = [str(v) for v in z["names"][ok]]
            vectors = np.asarray(z["vectors"][ok], np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        people = [n.split("/")[0] for n in names]
        ids = {p: i for i, p in enumerate(sorted(set(people)))}
        truth = np.array([ids[p] for p in people], np.int64)
        per = np.bincount(truth)
        info = {"set": name, "photos": len(names), "people": len(per), "median_photos": float(np.median(per))}
        log(f"population {name}: {len(names)} photos of {len(per)} people")
        uris = [f"/{name}/{n}" for n in names]
        path = fresh_path(args.workdir, f"pop-{name}.duckdb")
        written = write_faces(path, uris, vectors)
        ds = lookalike.open(path)
        uri_pos = {u: i for i, u in enumerate(uris)}
        rows = []
        for m in (3, 1):
            t0 = time.perf_counter()
            rep = ds.people.cluster(TABLE, full=True, min_faces=m)
            secs = time.perf_counter() - t0
            rows.append(
                row(
                    "ours",
                    f"default ({rep.face_threshold:g}-{rep.threshold:g}), min_faces {m}",
                    truth,
                    exported_labels(ds, uri_pos, len(names)),
                    secs,
                    role="ours",
                    min_faces=m,
                )
            )
        cal = Calibration(**written["calibration"])
        flat = (
            max(0.35, cal.mode - 4.6 * cal.spread)
            if cal.mode is not None and cal.spread is not None
            else 0.82 * cal.card_threshold
        )
        flat = float(min(cal.threshold, flat))
        a, b, _ = cluster.neighbour_graph(vectors, vectors, cluster.DEFAULT_NEIGHBOURS, same=True)
        t0 = time.perf_counter()
        lab = cluster.agglomerate(cluster.Nodes.faces(vectors), a, b, flat)
        rows.append(
            row(
                "ours, before",
                f"flat at the table-calibrated linkage {flat:.3f}",
                truth,
                lab,
                time.perf_counter() - t0,
                role="before",
            )
        )
        dbs, hdb, cw = best_peer(peers, "DBSCAN"), best_peer(peers, "HDBSCAN"), best_peer(peers, "Chinese Whispers")
        if dbs is not None:
            from sklearn.cluster import DBSCAN

            t0 = time.perf_counter()
            lab = DBSCAN(
                eps=dbs["params"]["eps"], min_samples=dbs["params"]["min_samples"], metric="cosine"
            ).fit_predict(vectors)
            rows.append(row("DBSCAN", "LFW-best: " + dbs["setting"], truth, lab, time.perf_counter() - t0, role="peer"))
        if hdb is not None and hdb["params"].get("method") in ("eom", "leaf"):
            from sklearn.cluster import HDBSCAN

            t0 = time.perf_counter()
            dist = np.sqrt(np.clip(2.0 - 2.0 * (vectors @ vectors.T), 0.0, None)).astype(np.float64)
            np.fill_diagonal(dist, 0.0)
            hp = hdb["params"]
            lab = HDBSCAN(
                min_cluster_size=hp["min_cluster_size"],
                min_samples=hp["min_samples"],
                metric="precomputed",
                cluster_selection_method=hp["method"],
            ).fit_predict(dist)
            rows.append(
                row("HDBSCAN", "LFW-best: " + hdb["setting"], truth, lab, time.perf_counter() - t0, role="peer")
            )
        if cw is not None:
            t0 = time.perf_counter()
            lab = cw_labels(vectors, cw["params"]["cosine"])
            rows.append(
                row("Chinese Whispers", "LFW-best: " + cw["setting"], truth, lab, time.perf_counter() - t0, role="peer")
            )
        for r in rows:
            log(
                f"  {r['method']:18s} {r['setting']:48s} BCubed F {r['bcubed_f']:.4f} "
                f"(min 3: {r['min3']['bcubed_f']:.4f})"
            )
        out.append({**info, "calibration": written["calibration"], "rows": rows})
    return out


# -------------------------------------------------------------------------------------------------------- incremental


def run_incremental(args: argparse.Namespace, names: list[str], vectors: np.ndarray, truth: np.ndarray) -> dict:
    import lookalike

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(names))
    uris = [f"/lfw/{n}" for n in names]
    uri_pos = {u: i for i, u in enumerate(uris)}
    parts = np.array_split(order, args.batches)

    path = fresh_path(args.workdir, "lfw-incremental.duckdb")
    ds = lookalike.open(path)
    batches = []
    t_all = 0.0
    for k, part in enumerate(parts, 1):
        w = write_faces(path, [uris[i] for i in part], vectors[part])
        t0 = time.perf_counter()
        rep = ds.people.cluster(TABLE)
        secs = time.perf_counter() - t0
        t_all += secs
        seen = np.concatenate(parts[:k])
        pred = exported_labels(ds, uri_pos, len(names))[seen]
        f = scores(truth[seen], pred)["bcubed_f"]
        batches.append(
            {
                "batch": k,
                "faces": rep.faces,
                "looked_at": rep.looked_at,
                "joined_existing": rep.joined_existing,
                "new_persons": rep.new_persons,
                "persons": rep.persons,
                "unassigned": rep.unassigned,
                "threshold": rep.threshold,
                "bcubed_f_so_far": f,
                "cluster_s": secs,
                "write_s": w["write_s"],
            }
        )
        log(
            f"  batch {k}: {rep.faces} faces, threshold {rep.threshold}, +{rep.joined_existing} joined, "
            f"+{rep.new_persons} new persons, {rep.unassigned} unassigned, BCubed F so far {f:.4f}, {secs:.1f} s"
        )
    incr = row(
        "ours",
        f"incremental, {args.batches} batches",
        truth,
        exported_labels(ds, uri_pos, len(names)),
        t_all,
        persons=batches[-1]["persons"],
        threshold=batches[-1]["threshold"],
    )

    def full_run(on: Any, setting: str) -> dict:
        t0 = time.perf_counter()
        rep = on.people.cluster(TABLE, full=True)
        secs = time.perf_counter() - t0
        pred = exported_labels(on, uri_pos, len(names))
        return row("ours", setting, truth, pred, secs, persons=rep.persons, threshold=rep.threshold)

    regroup = full_run(ds, "incremental dataset, then cluster(full=True)")
    path2 = fresh_path(args.workdir, "lfw-full.duckdb")
    write_faces(path2, [uris[i] for i in order], vectors[order])
    full = full_run(lookalike.open(path2), "one full run, all photos")
    diff = 100 * (incr["bcubed_f"] - full["bcubed_f"])
    log(f"  incremental BCubed F {incr['bcubed_f']:.4f} vs full {full['bcubed_f']:.4f}: {diff:+.2f} points")
    return {
        "seed": args.seed,
        "batches": batches,
        "incremental": incr,
        "incremental_then_full": regroup,
        "full": full,
        "bcubed_f_points_incremental_minus_full": diff,
        "within_1_point": abs(diff) <= 1.0,
    }


# -------------------------------------------------------------------------------------------------------- scale

#: Synthetic identities: centres from a Gaussian whose covariance has this participation ratio (effective
#: dimensions), so different-identity cosine distances spread like LFW's (~0.099 around 1.0).
SYN_PARTICIPATION = 50.0
#: Median squared noise norm per face: same-identity cosine distance is about s^2 / (1 + s^2) (median ~0.30).
SYN_NOISE2 = 0.43


def synthetic(n: int, seed: int = 0, dim: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors and their identity labels (1-20 faces per identity, uniform)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 21, size=n // 5 + 1)
    counts = counts[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    counts[-1] -= int(counts.sum()) - n
    ids = len(counts)
    j = np.arange(1, dim + 1, dtype=np.float64)
    alphas = np.linspace(0.0, 3.0, 3001)
    ratios = [(j**-a).sum() ** 2 / (j ** (-2 * a)).sum() for a in alphas]
    lam = j ** -alphas[int(np.argmin(np.abs(np.array(ratios) - SYN_PARTICIPATION)))]
    scale = np.sqrt(lam).astype(np.float32)
    centres = np.empty((ids, dim), np.float32)
    step = 100_000
    for s in range(0, ids, step):
        e = min(ids, s + step)
        block = rng.standard_normal((e - s, dim), dtype=np.float32) * scale
        centres[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    noise2 = SYN_NOISE2 * np.exp(0.35 * rng.standard_normal(ids))  # per identity
    labels = np.repeat(np.arange(ids, dtype=np.int64), counts)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, step):
        e = min(n, s + step)
        lab = labels[s:e]
        sd = np.sqrt(noise2[lab] * np.exp(0.3 * rng.standard_normal(e - s)) / dim).astype(np.float32)
        block = centres[lab] + rng.standard_normal((e - s, dim), dtype=np.float32) * sd[:, None]
        out[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    perm = rng.permutation(n)  # faces arrive in no particular order
    return out[perm], labels[perm]


def rotated_lfw(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` unit vectors made of LFW's real embeddings: the original 13,233, then copies under random orthogonal
    rotations (one per block), each block's people new identities. Within a block the geometry is LFW's own
    (real genuine and impostor distances, real hard cases); between blocks distances are like random directions'.
    Returns ``(vectors, labels, rows of the original LFW faces)``, shuffled."""
    _, base, truth = load_lfw(None)
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    out = np.empty((n, dim), np.float32)
    labels = np.empty(n, np.int64)
    people = int(truth.max()) + 1
    pos = 0
    block = 0
    while pos < n:
        take = min(len(base), n - pos)
        if block == 0:
            rows = base[:take]
        else:
            q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
            rows = base[:take] @ (q * np.sign(np.diag(r))).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[pos : pos + take] = rows
        labels[pos : pos + take] = block * people + truth[:take]
        pos += take
        block += 1
    perm = rng.permutation(n)
    original = np.flatnonzero(perm < min(n, len(base)))  # where the block-0 rows went
    return out[perm], labels[perm], original


def _distance_profile(x: np.ndarray, labels: np.ndarray, sample: int = 4000) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    idx = rng.choice(len(x), min(sample, len(x)), replace=False)
    d = 1.0 - x[idx] @ x[idx].T
    same = labels[idx][:, None] == labels[idx][None, :]
    iu = np.triu_indices(len(idx), 1)
    d, same = d[iu], same[iu]
    out: dict[str, Any] = {
        "impostor_median": float(np.median(d[~same])),
        "impostor_std": float(d[~same].std()),
        "impostor_p0.01": float(np.percentile(d[~same], 0.01)),
    }
    if same.any():
        out["genuine_p5_50_95"] = [float(v) for v in np.percentile(d[same], [5, 50, 95])]
    return out


class Progress:
    """A JSON file the scale worker rewrites after every phase, so a crash leaves what was measured."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.data["maxrss_mib"] = maxrss_mib()
        Path(self.path).write_text(json.dumps(self.data, indent=2, default=str))


def scale_worker(args: argparse.Namespace) -> None:
    """Child process: one scale measurement (``--scale-worker core|full``), results in ``--worker-out``."""
    from lookalike.people import cluster
    from lookalike.search.calibration import calibrate, grouping_thresholds

    out = Progress(args.worker_out)
    n = args.scale
    t0 = time.perf_counter()
    original = None
    data = args.scale_data[0]
    if data == "lfw-rotated":
        x, labels, original = rotated_lfw(n, seed=args.seed)
    else:
        x, labels = synthetic(n, seed=args.seed)
    out["synthetic"] = {
        "data": data,
        "faces": n,
        "identities": int(labels.max() + 1),
        "seconds": time.perf_counter() - t0,
        **_distance_profile(x, labels),
    }
    truth_people = np.bincount(labels)
    out["identities_2plus"] = int((truth_people >= 2).sum())
    from lookalike.faces.registry import get_card

    card = get_card(MODEL)
    cal = calibrate(x if original is None else x[original], card.threshold, card.safe_threshold)
    pair = grouping_thresholds(cal)
    assert pair is not None
    face_threshold, threshold = pair
    given = None
    out["threshold"] = threshold
    out["face_threshold"] = face_threshold
    if args.scale_worker == "core":
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        qi, bi, _ = cluster.neighbour_graph(x, x, cluster.DEFAULT_NEIGHBOURS, same=False)
        out["graph"] = {"seconds": time.perf_counter() - t0, "edges": len(qi), "exact": n <= cluster.EXACT_LIMIT}
        t0 = time.perf_counter()
        try:
            lab = cluster.agglomerate(cluster.Nodes.faces(x), qi, bi, threshold, face_threshold=face_threshold)
        except MemoryError as e:
            out["agglomerate"] = {"seconds": time.perf_counter() - t0, "error": f"MemoryError: {e}"}
            raise
        finally:
            if prof:
                prof.disable()
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
                out["profile_tottime"] = s.getvalue().splitlines()[:45]
        out["agglomerate"] = {"seconds": time.perf_counter() - t0}
        _, inv, sizes = np.unique(lab, return_inverse=True, return_counts=True)
        pred = np.where(sizes[inv] >= 3, lab, -1)  # min_faces 3, as grouping.run
        out["scores"] = {**scores(labels, pred), "persons": int((sizes >= 3).sum())}
        if original is not None:  # the real LFW faces alone (the exact graph gives 95.70 % on LFW alone)
            out["scores_original_lfw"] = scores(labels[original], pred[original])
    else:
        import lookalike

        path = fresh_path(args.workdir, f"synthetic-{n}.duckdb")
        uris = [f"/synthetic/{i // 1000:04d}/{i:07d}.jpg" for i in range(n)]
        # the last faces arrive later, for one incremental run after the first one (which sees all the others)
        extra = min(args.late_faces, n // 10)
        first = n - extra
        late = x[first:].copy()
        w = write_faces(path, uris[:first], x[:first], chunk=args.insert_chunk)
        out["write"] = {
            "seconds": w["write_s"],
            "rows_per_s": first / w["write_s"],
            "recalibrate_s": w["recalibrate_s"],
            "file_mib": os.path.getsize(path) / 2**20,
            "calibration": w["calibration"],
        }
        del x
        if args.skip_grouping:
            out["cluster"] = {"skipped": args.skip_grouping}
        else:
            ds = lookalike.open(path)
            t0 = time.perf_counter()
            rep = ds.people.cluster(TABLE, threshold=given)
            out["cluster"] = {"seconds": time.perf_counter() - t0, "report": rep.to_dict()}
            if extra:
                w = write_faces(path, uris[first:], late, chunk=args.insert_chunk)
                t0 = time.perf_counter()
                rep = ds.people.cluster(TABLE, threshold=given)
                out["late"] = {
                    "faces": extra,
                    "write_s": w["write_s"],
                    "seconds": time.perf_counter() - t0,
                    "report": rep.to_dict(),
                }
            t0 = time.perf_counter()
            uri_pos = {u: i for i, u in enumerate(uris)}
            pred = exported_labels(ds, uri_pos, n)
            out["export_s"] = time.perf_counter() - t0
            out["scores"] = {**scores(labels, pred), "persons": rep.persons}
            if original is not None:
                out["scores_original_lfw"] = scores(labels[original], pred[original])
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    out["done"] = True


def spawn(
    args: argparse.Namespace, kind: str, n: int, data: str, profile: bool = False, skip_grouping: str = ""
) -> dict:
    """Run one scale measurement in a child; its results plus peak RSS, exit status and wall time."""
    fd, tmp = tempfile.mkstemp(prefix=f"scale-{kind}-{n}-", suffix=".json", dir=args.workdir)
    os.close(fd)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--scale-worker",
        kind,
        "--scale",
        str(n),
        "--worker-out",
        tmp,
        "--workdir",
        args.workdir,
        "--seed",
        str(args.seed),
        "--insert-chunk",
        str(args.insert_chunk),
        "--scale-data",
        data,
        "--late-faces",
        str(args.late_faces),
    ]
    if profile:
        cmd.append("--profile")
    if skip_grouping:
        cmd += ["--skip-grouping", skip_grouping]
    limit = int(args.scale_mem_gib * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    log(f"scale: {kind} at {n:,} {data} faces (address space capped at {args.scale_mem_gib} GiB)")
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, preexec_fn=cap)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(args.scale_timeout, kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {
        "data": data,
        "kind": kind,
        # other work on the machine: the 1-minute load average when the child started and ended
        "loadavg_start_end": [load_start, os.getloadavg()[0]],
        "faces": n,
        "wall_s": time.perf_counter() - t0,
        "exit": proc.returncode,
        "child_maxrss_mib": usage.ru_maxrss / 1024,
        "timed_out": killed.is_set(),
    }
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        result.update(json.loads(Path(tmp).read_text()))
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    result["ok"] = bool(result.get("done")) and proc.returncode == 0
    log(
        f"scale: {kind} at {n:,}: {'ok' if result['ok'] else 'FAILED'} in {result['wall_s']:.0f} s, "
        f"peak RSS {result['child_maxrss_mib']:.0f} MiB"
    )
    return result


def run_scale(args: argparse.Namespace) -> list[dict]:
    results = []
    sizes = [*args.scale_steps, args.scale]
    for data in args.scale_data:
        for k, n in enumerate(sizes):
            skip = ""
            if "core" in args.scale_paths:
                core = spawn(args, "core", n, data, profile=(k == 0 and len(sizes) > 1 and data == args.scale_data[0]))
                results.append(core)
                skip = "" if core["ok"] else "the core algorithm failed at this size"
            if "full" in args.scale_paths:
                results.append(spawn(args, "full", n, data, skip_grouping=skip))
    return results


# -------------------------------------------------------------------------------------------------------- report


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _secs(part: dict) -> str:
    return f"{part['seconds']:.1f}" if "seconds" in part else ""


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib', '?')} GiB, {m['platform']}; "
        f"run {payload['finished']}; commit {payload['git']['commit'][:10]}"
        + (" (grouping code edited)" if payload["git"]["people_code_changed"] else "")
        + ("" if payload["git"] == payload.get("git_end", payload["git"]) else "; the code changed during the run")
        + ".",
        "",
    ]
    if "data" in payload:
        d = payload["data"]
        lines += [
            f"LFW: {d['photos']:,} photos, {d['people']:,} people ({d['people_2plus']:,} with >= 2 photos, "
            f"{d['people_3plus']:,} with >= 3). Scores in %; unassigned / noise faces are singletons.",
            "",
        ]
    head = (
        "| method | setting | pairwise P | R | F | BCubed P | R | F | NMI | persons | groups>=2 | groups>=3 | seconds |"
    )
    sep = "|" + "---|" * 13

    def line(r: dict) -> str:
        return (
            f"| {r['method']} | {r['setting']} | {_pct(r['pairwise_precision'])} | {_pct(r['pairwise_recall'])} "
            f"| {_pct(r['pairwise_f'])} | {_pct(r['bcubed_precision'])} | {_pct(r['bcubed_recall'])} | "
            f"{_pct(r['bcubed_f'])} | {_pct(r['nmi'])} | {r.get('persons', '')} | {r['groups>=2']} | "
            f"{r['groups>=3']} | {r['seconds']:.1f} |"
        )

    if "ours" in payload:
        ours = payload["ours"]
        lines += [
            f"Default thresholds: two single faces merge up to {ours['default_face_threshold']:.4f}, large groups up "
            f"to {ours['default_threshold']:.4f} (0.8 and 0.93 x the card's threshold; the table's calibration: "
            f"{ours['calibration']['note']}).",
            "",
            "Ours and the peers (best = highest BCubed F of the sweep; "
            "matched = the same distance as our face threshold, in the peer's metric):",
            "",
            head,
            sep,
        ]
        rows = ours["rows"]
        for r in rows:
            if r["role"] == "default":
                lines.append(line(r))
        for m_ in sorted({r["min_faces"] for r in rows if r["role"] == "sweep"}, reverse=True):
            best = max((r for r in rows if r["role"] == "sweep" and r["min_faces"] == m_), key=lambda r: r["bcubed_f"])
            lines.append(line({**best, "setting": "best: " + best["setting"]}))
        for name in ("DBSCAN", "HDBSCAN", "Chinese Whispers"):
            peer = [r for r in payload.get("peers", []) if r["method"] == name]
            if not peer:
                continue
            best = max((r for r in peer if r["role"] in ("sweep", "matched")), key=lambda r: r["bcubed_f"])
            lines.append(line({**best, "setting": "best: " + best["setting"]}))
            matched = [r for r in peer if r["role"] == "matched"]
            if matched:
                mb = max(matched, key=lambda r: r["bcubed_f"])
                lines.append(line({**mb, "setting": "matched: " + mb["setting"]}))
            for r in peer:
                if r["role"] == "best (real call)":
                    lines.append(line({**r, "setting": "best, real call: " + r["setting"]}))
        lines += [
            "",
            "Everyone with min_faces 3 applied (groups of fewer than 3 faces count as singletons, as in our "
            "default); each peer's best and matched settings chosen again under that rule:",
            "",
            head,
            sep,
        ]
        first = next(r for r in rows if r["role"] == "default")
        lines.append(line({**first, **first["min3"]}))
        for name in ("DBSCAN", "HDBSCAN", "Chinese Whispers"):
            peer = [r for r in payload.get("peers", []) if r["method"] == name and "min3" in r]
            for role in ("sweep", "matched"):
                pool = [r for r in peer if r["role"] in (("sweep", "matched") if role == "sweep" else ("matched",))]
                if pool:
                    b = max(pool, key=lambda r: r["min3"]["bcubed_f"])
                    label = "best" if role == "sweep" else "matched"
                    lines.append(line({**b, **b["min3"], "setting": f"{label}: {b['setting']}"}))
        lines += ["", "Our threshold sweep:", "", head, sep]
        lines += [line(r) for r in rows if r["role"] == "sweep"]
    if payload.get("populations"):
        lines += [
            "",
            "Other populations (each set's own DuckDB dataset; peers at their LFW-best setting; "
            "BCubed F in %, and with min_faces 3 applied):",
            "",
            "| set | photos | people | method | setting | BCubed P | R | F | F, min_faces 3 | persons (min 3) |",
            "|" + "---|" * 10,
        ]
        for pop in payload["populations"]:
            for r in pop["rows"]:
                lines.append(
                    f"| {pop['set']} | {pop['photos']} | {pop['people']} | {r['method']} | {r['setting']} | "
                    f"{_pct(r['bcubed_precision'])} | {_pct(r['bcubed_recall'])} | {_pct(r['bcubed_f'])} | "
                    f"{_pct(r['min3']['bcubed_f'])} | {r['min3']['persons']} |"
                )
    if "incremental" in payload:
        inc = payload["incremental"]
        lines += [
            "",
            f"Incremental against full (photos shuffled with seed {inc['seed']}, "
            f"{len(inc['batches'])} batches; min_faces 3, the default thresholds):",
            "",
            head,
            sep,
            line(inc["incremental"]),
            line(inc["incremental_then_full"]),
            line(inc["full"]),
            "",
            f"Incremental minus full: {inc['bcubed_f_points_incremental_minus_full']:+.2f} BCubed F points.",
            "",
            "| batch | faces | looked at | joined existing | new persons | persons | unassigned | threshold "
            "| BCubed F so far | cluster s |",
            "|" + "---|" * 10,
        ]
        lines += [
            f"| {b['batch']} | {b['faces']} | {b['looked_at']} | {b['joined_existing']} | {b['new_persons']} "
            f"| {b['persons']} | {b['unassigned']} | {b['threshold']} | {_pct(b['bcubed_f_so_far'])} | "
            f"{b['cluster_s']:.1f} |"
            for b in inc["batches"]
        ]
    if "scale" in payload:
        lines += [
            "",
            f"Scale (child processes, address space capped at {payload['args']['scale_mem_gib']} GiB; min_faces 3"
            + (
                f"; from {payload['scale_from']['file']}, commit {payload['scale_from']['git']['commit'][:10]}, "
                f"run {payload['scale_from']['finished']}"
                if "scale_from" in payload
                else ""
            )
            + "):",
            "",
            "| data | faces | path | ok | graph s | agglomerate s | write s | cluster s | wall s | peak RSS MiB "
            "| BCubed F | persons | note |",
            "|" + "---|" * 13,
        ]
        for r in payload["scale"]:
            g = r.get("graph", {})
            a = r.get("agglomerate", {})
            w = r.get("write", {})
            c = r.get("cluster", {})
            sc = r.get("scores", {})
            note = a.get("error") or c.get("skipped") or ("timed out" if r.get("timed_out") else "")
            if not r["ok"] and not note:
                note = f"exit {r['exit']}"
            if "late" in r:
                note = f"then {r['late']['faces']:,} more: incremental run {r['late']['seconds']:.1f} s " + note
            if "scores_original_lfw" in r:
                note = f"original LFW faces: BCubed F {_pct(r['scores_original_lfw']['bcubed_f'])} " + note
            lines.append(
                f"| {r.get('data', 'synthetic')} | {r['faces']:,} | "
                f"{'core' if r['kind'] == 'core' else 'DuckDB + people.cluster()'} | "
                f"{'yes' if r['ok'] else 'no'} | {_secs(g)} | {_secs(a)} | {_secs(w)} | {_secs(c)} | "
                f"{r['wall_s']:.0f} | {r['child_maxrss_mib']:.0f} | "
                f"{_pct(sc['bcubed_f']) if 'bcubed_f' in sc else ''} | {sc.get('persons', '')} | {note[:80]} |"
            )
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------------- main


def git_state() -> dict[str, str]:
    """The commit the benchmark ran on, and whether the grouping code differed from it."""

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=HERE.parent, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "people_code_changed": git("status", "--porcelain", "src/lookalike/people").strip(),
    }


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder holding lfw/ (only needed when the embedding cache is missing)")
    ap.add_argument(
        "--json",
        dest="json_out",
        default=str(HERE / "results" / "cluster_lfw.json"),
        help="results JSON (default: benchmarks/results/cluster_lfw.json; '' for none)",
    )
    ap.add_argument("--md", help="also write the summary tables (markdown) to this file")
    ap.add_argument("--workdir", help="where the DuckDB datasets go (default: a temporary folder, removed after)")
    ap.add_argument(
        "--thresholds",
        type=_floats,
        default=_floats("0.50,0.55,0.575,0.60,0.625,0.65,0.675,0.70,0.75"),
        help="our group thresholds to sweep (comma-separated cosine distances; the face threshold is 0.8 of each)",
    )
    ap.add_argument("--min-faces-sweep", type=_ints, default=[3, 1], help="min_faces values of our sweep")
    ap.add_argument(
        "--eps",
        type=_floats,
        default=_floats("0.30,0.35,0.40,0.45,0.475,0.50,0.525,0.55,0.60,0.65"),
        help="DBSCAN eps sweep (cosine)",
    )
    ap.add_argument(
        "--cw-thresholds",
        type=_floats,
        default=_floats("0.40,0.45,0.475,0.50,0.525,0.55,0.60,0.65"),
        help="Chinese Whispers sweep, as cosine distances (converted to euclidean)",
    )
    ap.add_argument("--batches", type=int, default=10, help="batches of the incremental check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-lfw", action="store_true", help="skip parts 1-3 (LFW)")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-incremental", action="store_true")
    ap.add_argument("--skip-populations", action="store_true", help="skip part 3b (other labelled sets)")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--scale-from", help="take part 4 from this earlier results JSON instead of running it")
    ap.add_argument("--scale", type=int, default=1_000_000, help="synthetic faces of the scale test")
    ap.add_argument(
        "--scale-steps",
        type=_ints,
        default=[100_000],
        help="smaller sizes measured first (comma-separated; the first is profiled)",
    )
    ap.add_argument(
        "--scale-paths",
        type=lambda t: [v for v in t.split(",") if v],
        default=["core", "full"],
        help="what the scale test runs: core (graph + agglomerate), full (DuckDB + people.cluster()), or both",
    )
    ap.add_argument("--scale-mem-gib", type=float, default=16.0, help="address-space cap of each scale child")
    ap.add_argument("--scale-timeout", type=float, default=5400.0, help="seconds before a scale child is killed")
    ap.add_argument(
        "--scale-data",
        type=lambda t: [v for v in t.split(",") if v],
        default=["synthetic"],
        help="comma-separated: synthetic (identities drawn to look like LFW's distances; default) and/or "
        "lfw-rotated (LFW's real embeddings plus randomly rotated copies of them)",
    )
    ap.add_argument(
        "--late-faces",
        type=int,
        default=1000,
        help="faces of the DuckDB scale run written after its first grouping, then grouped incrementally",
    )
    ap.add_argument("--insert-chunk", type=int, default=10_000, help="photos per write_results call (scale)")
    ap.add_argument("--scale-worker", choices=("core", "full"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--skip-grouping", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.scale_worker:
        scale_worker(args)
        return

    from machine import print_banner

    machine = print_banner()
    own_workdir = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="cluster_lfw-")
    os.makedirs(args.workdir, exist_ok=True)
    payload: dict[str, Any] = {
        "machine": machine,
        "git": git_state(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith(("worker", "scale_worker"))},
    }
    started = time.perf_counter()
    try:
        if not args.skip_lfw:
            names, vectors, truth = load_lfw(args.data)
            per = np.bincount(truth)
            payload["data"] = {
                "photos": len(names),
                "people": len(per),
                "people_2plus": int((per >= 2).sum()),
                "people_3plus": int((per >= 3).sum()),
                "embeddings": str(CACHE.relative_to(HERE.parent)),
            }
            log(f"LFW: {len(names)} photos, {len(per)} people")
            payload["ours"] = run_ours(args, names, vectors, truth)
            if not args.skip_peers:
                payload["peers"] = run_peers(args, vectors, truth, payload["ours"]["default_face_threshold"])
            if not args.skip_incremental:
                payload["incremental"] = run_incremental(args, names, vectors, truth)
        if not args.skip_populations:
            payload["populations"] = run_populations(args, payload.get("peers", []))
        if args.scale_from:
            earlier = json.loads(Path(args.scale_from).read_text())
            payload["scale"] = earlier["scale"]
            payload["scale_from"] = {"file": args.scale_from, "git": earlier["git"], "finished": earlier["finished"]}
        elif not args.skip_scale:
            payload["scale"] = run_scale(args)
    finally:
        if own_workdir:
            shutil.rmtree(args.workdir, ignore_errors=True)
    payload["git_end"] = git_state()
    payload["seconds"] = time.perf_counter() - started
    payload["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = markdown(payload)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        log(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
