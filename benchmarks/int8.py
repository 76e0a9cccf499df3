"""int8 dynamic quantisation of the identity network: its speed and its LFW cost, on this machine's CPU.

Quantises the vendored ``fr_feature.onnx`` with onnxruntime's ``quantize_dynamic`` (int8 weights, activations
quantised at run time; the file goes to a temporary folder, nothing is shipped), then:

- times both networks on the same ``--faces`` LFW faces (batches of 32, one thread, after a warm-up), twice each,
  alternating;
- embeds every image of LFW's 6,000 verification pairs with both (the detections and fp32 embeddings come from
  the caches ``lfw_verify.py`` writes) and reports 10-fold accuracy and TAR at FAR 0.1 %.

    python benchmarks/int8.py --json benchmarks/results/int8.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LOOKALIKE_THREADS", "1")  # before lookalike reads it: one thread, as the bound measures

from lfw_common import (
    data_dir,
    detect_images,
    embed_images,
    load_rgb,
    pair_distances,
    read_pairs,
    tar_at_far,
    ten_fold,
    write_json,
)
from machine import print_banner


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=256, help="faces timed per network")
    ap.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    print_banner()

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from lookalike.faces import models as fm
    from lookalike.faces.registry import get_model
    from lookalike.faces.runtime import ort_session

    root = data_dir(None)
    pairs = read_pairs(root / "lfw_protocols" / "pairs.txt")
    names = list(dict.fromkeys(pairs.left + pairs.right))
    dets = detect_images(root, names)
    fp32 = get_model("fr-feature")
    int8 = fm.FrFeatureModel(fp32.card, threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fr_feature_int8.onnx"
        quantize_dynamic(str(fm.WEIGHTS_DIR / "fr_feature.onnx"), str(path), weight_type=QuantType.QInt8)
        size_mb = path.stat().st_size / 1e6
        int8._session = ort_session(path, 1)  # the same pipeline (alignment, normalisation), int8 weights

    items = [(load_rgb(root / "lfw" / n), dets.face(i)) for i, n in enumerate(names[: args.faces])]
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(2):
        for label, model in (("fp32", fp32), ("int8", int8)):
            model.embed(items[:32])
            t0 = time.perf_counter()
            for s in range(0, len(items), 32):
                model.embed(items[s : s + 32])
            times[label].append((time.perf_counter() - t0) / len(items) * 1e3)

    results: dict[str, dict[str, float]] = {}
    for label, model in (("fp32", fp32), ("int8", int8)):
        if label == "fp32":
            emb = embed_images(root, dets, "fr-feature")
        else:
            emb = embed_images(root, dets, "fr-feature", embed=model.embed, cache_key="fr-feature-int8")
        dist = pair_distances(emb, pairs.left, pairs.right)
        folds = ten_fold(dist, pairs.same, pairs.fold)
        tar, _ = tar_at_far(dist, pairs.same, 1e-3)
        results[label] = {
            "ms_per_face": min(times[label]),
            "ms_per_face_runs": times[label],  # type: ignore[dict-item]
            "lfw_accuracy": float(folds["accuracy_mean"]),  # type: ignore[arg-type]
            "tar_at_far_0.1%": tar,
        }
        runs = ", ".join(f"{t:.2f}" for t in times[label])
        print(
            f"{label}: {min(times[label]):.2f} ms per face (one thread, runs {runs}), "
            f"LFW {100 * results[label]['lfw_accuracy']:.2f} %, TAR@FAR0.1% {100 * tar:.2f} %",
            flush=True,
        )
    write_json(args.json_out, {"int8_file_mb": size_mb, "faces_timed": len(items), **results})


if __name__ == "__main__":
    main()
