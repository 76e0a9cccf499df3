"""Flushing denormal floats to zero: its speed effect and its effect on the embeddings, on this machine's CPU.

Runs the same work twice, each in a fresh process: once as shipped (denormals flushed to zero in every model
call, see ``lookalike.faces.fpmode``) and once with ``LOOKALIKE_FLUSH_DENORMALS=0`` (IEEE gradual underflow, the
runtimes' defaults). Each run detects the faces in ``--images`` LFW photos and embeds them with each model.
It prints, per model: ms per image for detection, ms per face for the embedding, the largest change of any
embedding and of any pairwise cosine distance between the two runs, and whether detection found the same faces.

On CPUs with a denormal penalty (many Intel ones) the flushed run is several times faster; on others (AMD EPYC)
both runs take the same time. The distances must agree to ~1e-5 either way.

    python benchmarks/denormals.py --models fr-feature mobilefacenet facenet dlib-resnet --images 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lfw_speed import images
from machine import print_banner


def run_once(models: list[str], n_images: int, repeats: int, out: Path) -> None:
    """The child: time detection and embedding, save the embeddings to ``out`` (.npz) and the times beside it."""
    from lookalike.faces.detectors import MTCNNDetector, MTCNNOptions, nearest_to_centre
    from lookalike.faces.registry import get_model

    imgs = images(n_images)
    det = MTCNNDetector(MTCNNOptions(threads=1))
    det.detect(imgs[0])
    det_runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = [det.detect(im) for im in imgs]
        det_runs.append(1000 * (time.perf_counter() - t0) / len(imgs))
    items = [(im, f) for im, fs in zip(imgs, found, strict=True) if (f := nearest_to_centre(fs, im.shape))]
    boxes = np.array([f.bbox for _, f in items], dtype=np.float64)
    arrays: dict[str, np.ndarray] = {"boxes": boxes}
    times: dict[str, float] = {"detect_ms_per_image": statistics.median(det_runs)}
    for name in models:
        model = get_model(name)
        model.embed(items[:4])
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            emb = model.embed(items)
            runs.append(1000 * (time.perf_counter() - t0) / len(items))
        arrays[name] = emb
        times[f"{name}_ms_per_face"] = statistics.median(runs)
    np.savez(out, **arrays)
    out.with_suffix(".json").write_text(json.dumps(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["fr-feature"])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_once(args.models, args.images, args.repeats, Path(args.child))
        return
    machine = print_banner()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {}
        for label, flag in (("flushed", "1"), ("ieee", "0")):
            out = Path(tmp) / f"{label}.npz"
            env = {**os.environ, "LOOKALIKE_FLUSH_DENORMALS": flag}
            cmd = [sys.executable, __file__, "--child", str(out), "--images", str(args.images)]
            cmd += ["--repeats", str(args.repeats), "--models", *args.models]
            subprocess.run(cmd, env=env, check=True)
            loaded[label] = (dict(np.load(out)), json.loads(out.with_suffix(".json").read_text()))
        (on, t_on), (off, t_off) = loaded["flushed"], loaded["ieee"]
        same_faces = on["boxes"].shape == off["boxes"].shape and bool(np.allclose(on["boxes"], off["boxes"], atol=1e-3))
        det = {"ms_flushed": t_on["detect_ms_per_image"], "ms_ieee": t_off["detect_ms_per_image"]}
        results["mtcnn"] = {**det, "same_faces": same_faces}
        print(f"{'mtcnn':>14}: {det['ms_ieee']:.1f} -> {det['ms_flushed']:.1f} ms per image, same faces: {same_faces}")
        for name in args.models:
            a, b = on[name], off[name]
            if a.shape != b.shape:
                print(f"{name:>14}: different face counts, not comparable")
                continue
            d_emb = float(np.abs(a - b).max())
            d_dist = float(np.abs((a @ a.T) - (b @ b.T)).max())
            ms_on, ms_off = t_on[f"{name}_ms_per_face"], t_off[f"{name}_ms_per_face"]
            results[name] = {
                "ms_flushed": ms_on,
                "ms_ieee": ms_off,
                "speedup": ms_off / ms_on,
                "max_embedding_change": d_emb,
                "max_cosine_distance_change": d_dist,
                "faces": len(a),
            }
            print(
                f"{name:>14}: {ms_off:.1f} -> {ms_on:.1f} ms per face ({ms_off / ms_on:.2f}x); largest change: "
                f"embedding {d_emb:.2e}, cosine distance {d_dist:.2e} over {len(a)} faces"
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "images": args.images, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
