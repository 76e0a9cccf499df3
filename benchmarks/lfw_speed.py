"""Speed of the face pipeline on this machine: MTCNN per image, each model's embedding per face.

Detects faces in 64 LFW images (or the bundled test photos when LFW is absent), then embeds them in
batches of ``--batch`` (default 32) with each model, after one warm-up batch; prints milliseconds per
image / per face (median of ``--repeats`` runs).

    python benchmarks/lfw_speed.py --models fr-feature mobilefacenet --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from machine import print_banner

REPO = Path(__file__).resolve().parents[1]


def images(n: int) -> list[np.ndarray]:
    from PIL import Image

    lfw = REPO.parent / "shared" / "data" / "lfw"
    paths = sorted(lfw.glob("*/*_0001.jpg"))[:n] if lfw.is_dir() else []
    if not paths:
        paths = sorted((REPO / "tests" / "data").glob("**/*.jpg"))[:n]
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["fr-feature"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="model threads: sets LOOKALIKE_THREADS (default: all cores)")
    ap.add_argument("--detector-threads", type=int, default=1, help="MTCNN threads (default 1)")
    args = ap.parse_args()
    machine = print_banner()
    if args.threads:
        os.environ["LOOKALIKE_THREADS"] = str(args.threads)

    from lookalike.faces.detectors import MTCNNDetector, MTCNNOptions, nearest_to_centre
    from lookalike.faces.registry import get_model

    imgs = images(args.images)
    det = MTCNNDetector(MTCNNOptions(threads=args.detector_threads))
    det.detect(imgs[0])
    t0 = time.perf_counter()
    found = [det.detect(im) for im in imgs]
    det_ms = 1000 * (time.perf_counter() - t0) / len(imgs)
    items = [(im, f) for im, fs in zip(imgs, found, strict=True) if (f := nearest_to_centre(fs, im.shape))]
    result: dict[str, object] = {
        "machine": machine,
        "threads": args.threads or os.cpu_count(),
        "detector_threads": args.detector_threads,
        "detect_ms_per_image": round(det_ms, 2),
    }
    for name in args.models:
        model = get_model(name)
        model.embed(items[: args.batch])
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for s in range(0, len(items), args.batch):
                model.embed(items[s : s + args.batch])
            runs.append(1000 * (time.perf_counter() - t0) / len(items))
        result[f"{name}_ms_per_face"] = round(statistics.median(runs), 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
