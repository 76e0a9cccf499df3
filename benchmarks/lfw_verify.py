"""LFW 1:1 verification, standard 10-fold protocol (``pairs.txt``), for one registered face model.

For each of the 10 folds the cosine-distance threshold that maximises accuracy on the other 9 folds is
applied to the held-out fold; we report the mean and standard deviation of the 10 fold accuracies, the
mean chosen threshold, and TAR at FAR 0.1 % and 1 % over all 6,000 pairs. Detection and embeddings are
cached under ``benchmarks/cache/`` (see ``lfw_common.py``), so a rerun costs seconds.

    python benchmarks/lfw_verify.py --model fr-feature
    python benchmarks/lfw_verify.py --model mobilefacenet --limit-folds 1 --json out.json
"""

from __future__ import annotations

import argparse

import numpy as np

from lfw_common import (
    data_dir,
    detect_images,
    embed_images,
    pair_distances,
    read_pairs,
    tar_at_far,
    ten_fold,
    write_json,
)
from machine import print_banner


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fr-feature", help="registered model name (default: fr-feature)")
    ap.add_argument("--data", help="folder holding lfw/ and lfw_protocols/ (default: ../shared/data)")
    ap.add_argument("--limit-folds", type=int, default=None, help="only use the first N folds (quick run)")
    ap.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    print_banner()

    from lookalike.faces.registry import resolve_name

    model = resolve_name(args.model)
    root = data_dir(args.data)
    pairs = read_pairs(root / "lfw_protocols" / "pairs.txt")
    keep = np.ones(len(pairs.same), dtype=bool)
    if args.limit_folds:
        keep = pairs.fold < args.limit_folds
    left = [n for n, k in zip(pairs.left, keep, strict=True) if k]
    right = [n for n, k in zip(pairs.right, keep, strict=True) if k]
    same, fold = pairs.same[keep], pairs.fold[keep]

    names = list(dict.fromkeys(left + right))
    dets = detect_images(root, names)
    emb = embed_images(root, dets, model)
    dist = pair_distances(emb, left, right)

    if len(np.unique(fold)) > 1:
        res = ten_fold(dist, same, fold)
    else:  # one fold: report the best (optimistic) in-fold accuracy
        from lfw_common import best_threshold

        t, acc = best_threshold(dist, same)
        res = {"accuracy_mean": acc, "accuracy_std": 0.0, "threshold_mean": t, "note": "single fold, in-fold"}
    tar3, t3 = tar_at_far(dist, same, 1e-3)
    tar2, t2 = tar_at_far(dist, same, 1e-2)
    misses = int(np.sum(dets.n_faces == 0))
    payload: dict[str, object] = {
        "model": model,
        "pairs": len(dist),
        "folds": len(np.unique(fold)),
        **res,
        "tar_at_far_0.1%": tar3,
        "threshold_far_0.1%": t3,
        "tar_at_far_1%": tar2,
        "threshold_far_1%": t2,
        "images": len(names),
        "no_face_detected": misses,
        "several_faces": int(np.sum(dets.n_faces > 1)),
        "detect_ms_per_image": round(dets.ms_per_image, 2),
        "embed_ms_per_face": round(emb.ms_per_face, 2),
    }
    write_json(args.json_out, payload)
    print(
        f"{model}: LFW {100 * float(res['accuracy_mean']):.2f} ± {100 * float(res['accuracy_std']):.2f} %"  # type: ignore[arg-type]
        f", TAR@FAR0.1% {100 * tar3:.2f} %, threshold {float(res['threshold_mean']):.4f}"  # type: ignore[arg-type]
        f", misses {misses}"
    )


if __name__ == "__main__":
    main()
