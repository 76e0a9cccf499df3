"""Ingest throughput: Lookalike's full index job vs a face_recognition-style dlib pipeline, in one run.

Both sides process the same photos (a seeded sample of LFW by default) from disk on this machine:

- **lookalike**: ``Dataset.index`` end to end: list, read, decode, detect (MTCNN), align, embed (batched),
  write to a fresh DuckDB file; with one process, and with the default worker count (one per core; the
  workers' start-up and model loading are inside the timing).
- **bound**: the models' own compute per photo (MTCNN detection, plus the identity network per face, batched
  as the job batches it), measured in a separate process with one thread, with the photos already decoded;
  spread over the cores it bounds what any scheduling of the job could reach:
  ``bound = cores / (detect + embed seconds per photo)``. The report gives each run's share of it.
- **parallel bound**: the same compute measured *on every core at once*: one single-thread process per core,
  each with its share of the photos decoded and its models loaded, all started together; photos over the
  slowest one's seconds. Cores that share caches, memory bandwidth or a host's hyper-threads deliver less than
  ``cores x`` one core's rate; this says how much less, for the models alone. Each run's share of it is
  reported too.
- **dlib peer**: what ``face_recognition.face_encodings(face_recognition.load_image_file(p))`` does: dlib's HOG
  detector with one upsample, the 5-point shape predictor, the ResNet descriptor (no jitter), one image at a
  time; nothing is stored.

- **ray** (``--executor ray``): the same job with ``executor="ray"`` on a local Ray cluster with one worker per
  core (started by the benchmark before the timing, as a user's cluster would already run; model loading on the
  workers is inside the timing, as it is for local processes), next to the local process executor in the same
  run. Plus the driver's **commit rate**: faces per second that the writer sustains when the embeddings are
  already computed (synthetic rows, 64 photos per committed chunk as a job commits them), the ceiling of what one
  driver can take from a big cluster.

Usage::

    python benchmarks/ingest_throughput.py --images 300 --json results.json
    python benchmarks/ingest_throughput.py --images 300 --executor ray --workers 0 --skip-dlib
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import lookalike
from machine import print_banner

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def sample_images(root: Path, n: int, seed: int) -> list[Path]:
    files = sorted(root.glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:n]


def run_lookalike(
    images: list[Path], model: str | None, workers: int | None, executor: str = "local", ray_address: str | None = None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in images:
            shutil.copy(p, folder / p.name)
        ds = lookalike.open(Path(tmp) / "bench.duckdb")
        # warm the model outside the timing (a long-running job pays this once)
        ds.embed([str(folder / images[0].name)], model=model)
        ticks: list[tuple[float, int]] = []

        def progress(n: int) -> None:
            ticks.append((time.perf_counter(), n))

        t0 = time.perf_counter()
        report = ds.index(
            str(folder),
            model=model,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            cluster=False,  # the grouping into persons after a job is not ingest (cluster_lfw.py measures it)
            on_progress=progress,
        )
        seconds = time.perf_counter() - t0
    # steady state: from the first committed batch to the last (the workers' start and the first batch left out)
    steady = None
    if len(ticks) >= 3:
        done_after_first = sum(n for _, n in ticks[1:])
        steady = done_after_first / (ticks[-1][0] - ticks[0][0])
    return {
        "photos": report.added,
        "faces": report.faces,
        "no_face": report.no_face,
        "seconds": seconds,
        "photos_per_s": report.added / seconds,
        "faces_per_s": report.faces / seconds,
        "first_batch_s": ticks[0][0] - t0 if ticks else None,
        "steady_photos_per_s": steady,
    }


def model_compute(images: list[Path], model: str | None, wait: bool = False) -> dict[str, float]:
    """Seconds of detection and of embedding per photo, on one thread (run in a child with LOOKALIKE_THREADS=1).
    ``wait``: once loaded and warm, say ``ready`` and wait for a line on stdin before timing (parallel bound)."""
    from lookalike.faces.registry import get_model

    m = get_model(model)
    decoded = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    m.embed([(decoded[0], f) for f in m.detect(decoded[0])[:1]])  # warm up
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()
    t0 = time.perf_counter()
    found = [m.detect(img) for img in decoded]
    detect_s = time.perf_counter() - t0
    items = [(img, f) for img, faces in zip(decoded, found, strict=True) for f in faces]
    t0 = time.perf_counter()
    for i in range(0, len(items), 32):
        m.embed(items[i : i + 32])
    embed_s = time.perf_counter() - t0
    return {
        "detect_s_per_photo": detect_s / len(images),
        "embed_s_per_photo": embed_s / len(images),
        "photos": len(images),
    }


def run_bound(n: int, root: Path, seed: int, model: str | None) -> dict[str, float]:
    """:func:`model_compute` in a child process with one thread, and the bound it gives on this machine."""
    env = dict(os.environ, LOOKALIKE_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--compute-only", "--images", str(n), "--root", str(root), "--seed", str(seed)]
    cmd += ["--model", model] if model else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    compute = json.loads(out.stdout.strip().splitlines()[-1])
    per_photo = compute["detect_s_per_photo"] + compute["embed_s_per_photo"]
    cores = os.cpu_count() or 1
    return {**compute, "cores": cores, "photos_per_s": cores / per_photo}


def run_parallel_bound(n: int, root: Path, seed: int, model: str | None) -> dict[str, float]:
    """The models' compute on every core at once: one single-thread child per core on its share of the photos,
    started together once all are loaded; photos per second over the slowest child's compute seconds."""
    env = dict(os.environ, LOOKALIKE_THREADS="1", OMP_NUM_THREADS="1")
    cores = os.cpu_count() or 1
    children = []
    for i in range(cores):
        cmd = [sys.executable, __file__, "--compute-only", "--wait", "--images", str(n), "--root", str(root)]
        cmd += ["--seed", str(seed), "--shard", f"{i}/{cores}"] + (["--model", model] if model else [])
        children.append(subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for child in children:  # every child loaded and warm
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    seconds = []
    for child in children:
        out, _ = child.communicate(timeout=3600)
        c = json.loads(out.strip().splitlines()[-1])
        seconds.append((c["detect_s_per_photo"] + c["embed_s_per_photo"]) * c["photos"])
    return {"cores": cores, "slowest_s": max(seconds), "photos_per_s": n / max(seconds)}


def measure_bounds(n: int, root: Path, seed: int, model: str | None) -> dict[str, Any]:
    """:func:`run_bound` and :func:`run_parallel_bound`, printed."""
    bound: dict[str, Any] = dict(run_bound(n, root, seed, model))
    print(
        f"bound: detection {1e3 * bound['detect_s_per_photo']:.1f} ms + embedding "
        f"{1e3 * bound['embed_s_per_photo']:.1f} ms per photo on one thread, x {bound['cores']} cores -> "
        f"{bound['photos_per_s']:.1f} photos/s"
    )
    parallel = run_parallel_bound(n, root, seed, model)
    bound["parallel"] = parallel
    print(
        f"parallel bound: the same compute on {parallel['cores']} cores at once -> {parallel['photos_per_s']:.1f} "
        f"photos/s ({100 * parallel['photos_per_s'] / bound['photos_per_s']:.0f} % of cores x one core)"
    )
    return bound


def run_dlib(images: list[Path]) -> dict[str, float]:
    import dlib
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    faces = 0
    no_face = 0
    t0 = time.perf_counter()
    for p in images:
        img = np.asarray(Image.open(p).convert("RGB"))
        boxes = detector(img, 1)
        if not boxes:
            no_face += 1
        for box in boxes:
            np.asarray(encoder.compute_face_descriptor(img, shape(img, box), 1))
            faces += 1
    seconds = time.perf_counter() - t0
    return {
        "photos": len(images),
        "faces": faces,
        "no_face": no_face,
        "seconds": seconds,
        "photos_per_s": len(images) / seconds,
        "faces_per_s": faces / seconds,
    }


def start_ray_cluster(cpus: int) -> tuple[str, Path]:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPUs; its address and temp folder."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = Path(tempfile.mkdtemp(prefix="lkb", dir="/tmp"))
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [ray, "start", "--head", "--num-cpus", str(cpus), "--port", str(port), "--node-ip-address", "127.0.0.1"]
    cmd += ["--disable-usage-stats", "--include-dashboard", "false", "--temp-dir", str(temp)]
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    return f"127.0.0.1:{port}", temp


def stop_ray_cluster(temp: Path) -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True)
    shutil.rmtree(temp, ignore_errors=True)


def commit_rate(faces: int = 20_000, per_chunk: int = 32, dim: int = 512) -> dict[str, float]:
    """Faces per second the driver's writer commits when the embeddings are already computed: synthetic rows
    (one face per photo, random unit vectors) in chunks of ``per_chunk`` photos, handed as fast as they come to
    the job's own writer (``ingest.commit_stream``, group commit), as an index job hands it what its executor
    returns."""
    from datetime import UTC, datetime

    from lookalike.dataset import store
    from lookalike.dataset.connection import connect
    from lookalike.faces.registry import get_card
    from lookalike.faces.types import DetectedFace
    from lookalike.records import ObjectResult
    from lookalike.storage import ObjectInfo

    rng = np.random.default_rng(0)
    card = get_card(None)
    face = DetectedFace(bbox=(10.0, 10.0, 90.0, 90.0), landmarks=np.zeros((5, 2), np.float32), score=0.99)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "commit.duckdb"
        with connect(path) as con:
            from lookalike.dataset.schema import migrate

            migrate(con)
            info = store.ensure_table(con, "faces", card)
        chunks = []
        for start in range(0, faces, per_chunk):
            n = min(per_chunk, faces - start)
            emb = rng.normal(size=(n, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            chunk = []
            for i in range(n):
                meta = ObjectInfo(
                    uri=f"s3://bucket/photo{start + i:09d}.jpg",
                    size=50_000,
                    content_type="image/jpeg",
                    updated=datetime.now(UTC),
                    etag=None,
                    md5=None,
                    generation=str(start + i),
                )
                chunk.append(
                    ObjectResult(info=meta, source="s3://bucket/", status="ok", faces=[face], embeddings=emb[i : i + 1])
                )
            chunks.append(chunk)
        from lookalike.ingest import commit_stream

        commits: list[int] = []
        t0 = time.perf_counter()
        commit_stream(path, info, iter(chunks), lambda group: commits.append(len(group)))
        seconds = time.perf_counter() - t0
    return {
        "faces": faces,
        "per_chunk": per_chunk,
        "commits": len(commits),
        "seconds": seconds,
        "faces_per_s": faces / seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--root", type=Path, default=LFW)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[1, 0], help="worker processes per run; 0 = the default (auto)"
    )
    ap.add_argument("--skip-dlib", action="store_true")
    ap.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="ray: also run the job on a local Ray cluster (one worker per core) and measure the commit rate",
    )
    ap.add_argument("--commit-faces", type=int, default=20_000, help="faces written for the commit rate (ray)")
    ap.add_argument("--compute-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.compute_only:  # the child of run_bound / run_parallel_bound
        part, parts = (int(x) for x in args.shard.split("/"))
        mine = sample_images(args.root, args.images, args.seed)[part::parts]
        print(json.dumps(model_compute(mine, args.model, wait=args.wait)))
        return
    machine = print_banner()

    images = sample_images(args.root, args.images, args.seed)
    print(f"{len(images)} photos from {args.root} (seed {args.seed}), {os.cpu_count()} CPUs")
    # the bounds are measured before and after the runs, and averaged: a VM's speed drifts within minutes
    bounds_before = measure_bounds(len(images), args.root, args.seed, args.model)
    results = {}
    for workers in args.workers:
        label = f"lookalike ({workers} process{'es' if workers > 1 else ''})" if workers else "lookalike (auto)"
        results[label] = run_lookalike(images, args.model, workers or None)
    extra: dict[str, object] = {}
    if args.executor == "ray":
        cores = os.cpu_count() or 1
        address, temp = start_ray_cluster(cores)
        try:
            results[f"lookalike (ray, {cores} workers)"] = run_lookalike(
                images, args.model, None, executor="ray", ray_address=address
            )
        finally:
            stop_ray_cluster(temp)
        rate = commit_rate(args.commit_faces)
        ray_run = results[f"lookalike (ray, {cores} workers)"]
        local_runs = [r for k, r in results.items() if k.startswith("lookalike (") and "ray" not in k]
        best_local = max(r["photos_per_s"] for r in local_runs)
        per_core = ray_run["faces_per_s"] / cores
        faces_per_photo = ray_run["faces"] / max(1, ray_run["photos"])
        extra = {
            "commit_rate": rate,
            "ray_vs_best_local": ray_run["photos_per_s"] / best_local,
            "faces_per_s_per_worker_core": per_core,
            "worker_cores_one_driver_feeds": rate["faces_per_s"] / per_core,
            "faces_per_photo": faces_per_photo,
            "driver_hours_for_100M_photos": 100e6 * faces_per_photo / rate["faces_per_s"] / 3600,
            "core_hours_for_100M_photos": 100e6 * faces_per_photo / per_core / 3600,
        }
        print(
            f"ray: {100 * extra['ray_vs_best_local']:.0f} % of the best local run's throughput; driver commits "
            f"{rate['faces_per_s']:,.0f} faces/s ({rate['per_chunk']} photos per chunk) = the output of "
            f"{extra['worker_cores_one_driver_feeds']:,.0f} worker cores at {per_core:.1f} faces/s each; "
            f"100M photos: {extra['core_hours_for_100M_photos']:,.0f} core-hours of embedding, at least "
            f"{extra['driver_hours_for_100M_photos']:,.1f} h of committing on one driver"
        )
    bounds_after = measure_bounds(len(images), args.root, args.seed, args.model)
    bound = {
        **{k: (bounds_before[k] + bounds_after[k]) / 2 for k in ("detect_s_per_photo", "embed_s_per_photo")},
        "cores": bounds_before["cores"],
        "photos_per_s": (bounds_before["photos_per_s"] + bounds_after["photos_per_s"]) / 2,
        "before": bounds_before,
        "after": bounds_after,
    }
    parallel = {
        "photos_per_s": (bounds_before["parallel"]["photos_per_s"] + bounds_after["parallel"]["photos_per_s"]) / 2
    }
    bound["parallel"] = parallel
    print(
        f"bounds, mean of before and after the runs: {bound['photos_per_s']:.1f} photos/s (cores x one core), "
        f"{parallel['photos_per_s']:.1f} photos/s (all cores at once)"
    )
    for r in results.values():
        r["share_of_bound"] = r["photos_per_s"] / bound["photos_per_s"]
        r["share_of_parallel_bound"] = r["photos_per_s"] / parallel["photos_per_s"]
        if r.get("steady_photos_per_s"):
            r["steady_share_of_bound"] = r["steady_photos_per_s"] / bound["photos_per_s"]
            r["steady_share_of_parallel_bound"] = r["steady_photos_per_s"] / parallel["photos_per_s"]
    if not args.skip_dlib:
        results["dlib_peer"] = run_dlib(images)
    for name, r in results.items():
        print(
            f"{name:>22}: {r['photos']} photos, {r['faces']} faces, {r['no_face']} without a face, "
            f"{r['seconds']:.1f} s -> {r['photos_per_s']:.1f} photos/s, {r['faces_per_s']:.1f} faces/s"
            + (
                f", {100 * r['share_of_bound']:.0f} % of the bound, {100 * r['share_of_parallel_bound']:.0f} % of the "
                "parallel bound"
                if "share_of_bound" in r
                else ""
            )
            + (
                f"; first batch after {r['first_batch_s']:.1f} s, then {r['steady_photos_per_s']:.1f} photos/s "
                f"({100 * r['steady_share_of_bound']:.0f} % / {100 * r['steady_share_of_parallel_bound']:.0f} %)"
                if r.get("steady_share_of_bound")
                else ""
            )
        )
    if args.json:
        with open(args.json, "w") as fh:
            out = {"machine": machine, "images": len(images), "bound": bound, "results": results, **extra}
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
