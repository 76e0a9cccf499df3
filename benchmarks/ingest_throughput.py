"""Ingest throughput: Lookalike's full index job vs a face_recognition-style dlib pipeline, in one run.

Both sides process the same photos (a seeded sample of LFW by default) from disk on this machine:

- **lookalike**: ``Dataset.index`` end to end: list, read, decode, detect (MTCNN), align, embed (batched),
  write to a fresh DuckDB file; with one process, and with the default worker count (one per core; the
  workers' start-up and model loading are inside the timing).
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
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    machine = print_banner()

    images = sample_images(args.root, args.images, args.seed)
    print(f"{len(images)} photos from {args.root} (seed {args.seed}), {os.cpu_count()} CPUs")
    results = {}
    for workers in args.workers:
        label = f"lookalike ({workers} process{'es' if workers > 1 else ''})" if workers else "lookalike (auto)"
        results[label] = run_lookalike(images, args.model, workers or None)
    if not args.skip_dlib:
        results["dlib_peer"] = run_dlib(images)
    for name, r in results.items():
        print(
            f"{name:>22}: {r['photos']} photos, {r['faces']} faces, {r['no_face']} without a face, "
            f"{r['seconds']:.1f} s -> {r['photos_per_s']:.1f} photos/s, {r['faces_per_s']:.1f} faces/s"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "images": len(images), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
