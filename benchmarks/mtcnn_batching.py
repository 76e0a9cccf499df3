"""Would batching MTCNN's R-Net and O-Net across photos speed up detection? Their cost per crop, by batch size.

Lookalike's detector already runs R-Net on all of one photo's stage-1 boxes in one call, and O-Net on all its
stage-2 boxes. Batching *across* photos would only pay if a call's fixed cost dominated. This measures each
network's time per crop at batch sizes from 1 to 300 (random crops: the cost does not depend on the pixels), on
one thread as the index workers run it, and, for scale, how many crops a real photo sends to each (LFW colour
crops, ``../shared/data/lfw_color12``).

    python benchmarks/mtcnn_batching.py --json benchmarks/results/mtcnn-batching.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lfw_common import DEFAULT_DATA
from lookalike.faces import detectors
from lookalike.faces.detectors import get_detector
from lookalike.faces.fpmode import flush_denormals
from lookalike.images import decode_image
from machine import print_banner

BATCHES = (1, 4, 16, 64, 300)
NETS = {  # name: (session attribute, input, outputs, crop side)
    "rnet": ("_rnet", "input_2", ["dense_2", "softmax_1"], 24),
    "onet": ("_onet", "input_3", ["dense_5", "dense_6", "softmax_2"], 48),
}


def per_crop_ms(session, inp: str, outs: list[str], side: int, batch: int) -> float:
    x = np.random.default_rng(0).uniform(-1, 1, (batch, side, side, 3)).astype(np.float32)
    reps = max(5, 600 // batch)
    with flush_denormals():
        session.run(outs, {inp: x})
        t0 = time.perf_counter()
        for _ in range(reps):
            session.run(outs, {inp: x})
    return (time.perf_counter() - t0) / reps / batch * 1e3


def crops_per_photo(photos: int) -> dict[str, float]:
    """Mean crops that R-Net (24 px) and O-Net (48 px) get per photo of the LFW colour crops."""
    files = sorted((Path(DEFAULT_DATA) / "lfw_color12").glob("*/*"))[:photos]
    seen: dict[int, list[int]] = {24: [], 48: []}
    real = detectors._crops

    def counting(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
        seen.setdefault(size, []).append(len(boxes))
        return real(image, boxes, size)

    detectors._crops = counting
    try:
        det = get_detector()
        for f in files:
            det.detect(decode_image(f.read_bytes(), uri=str(f)))
    finally:
        detectors._crops = real
    n = max(1, len(files))
    return {"photos": len(files), "rnet": sum(seen[24]) / n, "onet": sum(seen[48]) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200, help="LFW colour crops to count crops on")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    machine = print_banner()
    det = get_detector()
    print(f"detector threads: {det.options.threads}")
    rows = []
    for name, (attr, inp, outs, side) in NETS.items():
        for batch in BATCHES:
            ms = per_crop_ms(getattr(det, attr), inp, outs, side, batch)
            rows.append({"net": name, "batch": batch, "ms_per_crop": ms})
            print(f"{name} batch {batch:4d}: {ms:.4f} ms per crop", flush=True)
    counts = crops_per_photo(args.photos)
    photos, rnet, onet = counts["photos"], counts["rnet"], counts["onet"]
    print(f"per photo ({photos:.0f} LFW colour crops): {rnet:.1f} R-Net crops, {onet:.1f} O-Net crops")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "per_crop": rows, "crops_per_photo": counts}, fh, indent=2)


if __name__ == "__main__":
    main()
