"""Ingest throughput: Lookalike's full index job vs a face_recognition-style dlib pipeline, in one run.

Both sides process the same photos (a seeded sample of LFW by default) from disk on this machine:

- **lookalike**: ``Dataset.index`` end to end: list, read, decode, detect (MTCNN), align, embed (batched),
  write to a fresh DuckDB file; with one process, and with the default worker count (one per core; the
  workers' start-up and model loading are inside the timing).
- **bound**: the models' own compute per photo (MTCNN detection, plus the identity network per face, batched
  as the job batches it), measured in a separate process with one thread, with the photos already decoded;
  spread over the cores it bounds what any scheduling of the job could reach:
  ``bound = cores / (detect + embed seconds per photo)``. The report gives each run's share of it.
- **dlib peer**: what ``face_recognition.face_encodings(face_recognition.load_image_file(p))`` does: dlib's HOG
  detector with one upsample, the 5-point shape predictor, the ResNet descriptor (no jitter), one image at a
  time; nothing is stored.

Usage::

    python benchmarks/ingest_throughput.py --images 300 --json results.json
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

import numpy as np
from PIL import Image

import lookalike
from machine import print_banner

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def sample_images(root: Path, n: int, seed: int) -> list[Path]:
    files = sorted(root.glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:n]


def run_lookalike(images: list[Path], model: str | None, workers: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in images:
            shutil.copy(p, folder / p.name)
        ds = lookalike.open(Path(tmp) / "bench.duckdb")
        # warm the model outside the timing (a long-running job pays this once)
        ds.embed([str(folder / images[0].name)], model=model)
        t0 = time.perf_counter()
        report = ds.index(str(folder), model=model, workers=workers)
        seconds = time.perf_counter() - t0
    return {
        "photos": report.added,
        "faces": report.faces,
        "no_face": report.no_face,
        "seconds": seconds,
        "photos_per_s": report.added / seconds,
        "faces_per_s": report.faces / seconds,
    }


def model_compute(images: list[Path], model: str | None) -> dict[str, float]:
    """Seconds of detection and of embedding per photo, on one thread (run in a child with LOOKALIKE_THREADS=1)."""
    from lookalike.faces.registry import get_model

    m = get_model(model)
    decoded = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    m.embed([(decoded[0], f) for f in m.detect(decoded[0])[:1]])  # warm up
    t0 = time.perf_counter()
    found = [m.detect(img) for img in decoded]
    detect_s = time.perf_counter() - t0
    items = [(img, f) for img, faces in zip(decoded, found, strict=True) for f in faces]
    t0 = time.perf_counter()
    for i in range(0, len(items), 32):
        m.embed(items[i : i + 32])
    embed_s = time.perf_counter() - t0
    return {"detect_s_per_photo": detect_s / len(images), "embed_s_per_photo": embed_s / len(images)}


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
    ap.add_argument("--compute-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.compute_only:  # the child of run_bound
        print(json.dumps(model_compute(sample_images(args.root, args.images, args.seed), args.model)))
        return
    machine = print_banner()

    images = sample_images(args.root, args.images, args.seed)
    print(f"{len(images)} photos from {args.root} (seed {args.seed}), {os.cpu_count()} CPUs")
    results = {}
    for workers in args.workers:
        label = f"lookalike ({workers} process{'es' if workers > 1 else ''})" if workers else "lookalike (auto)"
        results[label] = run_lookalike(images, args.model, workers or None)
    bound = run_bound(len(images), args.root, args.seed, args.model)
    print(
        f"bound: detection {1e3 * bound['detect_s_per_photo']:.1f} ms + embedding "
        f"{1e3 * bound['embed_s_per_photo']:.1f} ms per photo on one thread, x {bound['cores']} cores -> "
        f"{bound['photos_per_s']:.1f} photos/s"
    )
    for r in results.values():
        r["share_of_bound"] = r["photos_per_s"] / bound["photos_per_s"]
    if not args.skip_dlib:
        results["dlib_peer"] = run_dlib(images)
    for name, r in results.items():
        print(
            f"{name:>22}: {r['photos']} photos, {r['faces']} faces, {r['no_face']} without a face, "
            f"{r['seconds']:.1f} s -> {r['photos_per_s']:.1f} photos/s, {r['faces_per_s']:.1f} faces/s"
            + (f", {100 * r['share_of_bound']:.0f} % of the bound" if "share_of_bound" in r else "")
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "images": len(images), "bound": bound, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
