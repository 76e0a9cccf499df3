"""Close-ups: photos that are themselves face crops. Does every crop get a face, and does search still work?

Workload: the LFW 1:N queries (the first image of each of the 1,680 people with two or more images), each
cropped to its detected face box (from ``lfw_verify.py``'s detection cache) with no margin (``box``), and to the
central 80 % of that box (``box80``: the face cut at every edge). For each crop and each detection setting:

* ``detected``: the share of crops where the detector finds a face;
* ``rank1``: 1:N rank-1 of the crop's (largest) face against the normal LFW gallery (the other 11,553 images,
  embedded from their full photos; the embedding cache of ``lfw_verify.py``). A crop with no face is a miss.

Settings: ``default`` (what ``lookalike index`` does), and ``whole_photo_face`` (a photo with no detection is
taken as one face, aligned by O-Net's landmarks on the whole photo: ``lookalike index --whole-photo-face``).

    python benchmarks/closeups.py --json benchmarks/results/closeups.json
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from lfw_common import CACHE, all_images, data_dir, load_rgb, write_json
from machine import print_banner


def crop(img: np.ndarray, bbox: np.ndarray, keep: float) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in bbox)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * keep / 2, (y1 - y0) * keep / 2
    h, w = img.shape[:2]
    a, b = max(0, round(cx - hw)), max(0, round(cy - hh))
    c, d = min(w, round(cx + hw)), min(h, round(cy + hh))
    return np.ascontiguousarray(img[b:d, a:c])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder holding lfw/ (default: ../shared/data)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N queries")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    machine = print_banner()

    from lookalike.embedding import detect_and_embed
    from lookalike.faces.registry import get_model

    root = data_dir(args.data)
    names = all_images(root)
    det_npz = np.load(CACHE / "detect-mtcnn-ort-v2.npz")
    emb_npz = np.load(CACHE / "emb-fr-feature.npz")  # both written by lfw_verify.py; align them with ``names``
    det_pos = {str(n): i for i, n in enumerate(det_npz["names"])}
    emb_pos = {str(n): i for i, n in enumerate(emb_npz["names"])}
    det = {k: det_npz[k][[det_pos[n] for n in names]] for k in ("bbox", "n_faces")}
    emb = {"vectors": emb_npz["vectors"][[emb_pos[n] for n in names]]}
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(names):
        by_person[n.split("/")[0]].append(i)
    ids = {p: k for k, p in enumerate(sorted(by_person))}
    labels = np.array([ids[n.split("/")[0]] for n in names])
    q_idx = np.array([rows[0] for rows in by_person.values() if len(rows) > 1])
    q_idx = q_idx[det["n_faces"][q_idx] > 0]  # crops need a detected box to crop to
    if args.limit:
        q_idx = q_idx[: args.limit]
    g_mask = np.ones(len(names), bool)
    g_mask[q_idx] = False
    g_idx = np.flatnonzero(g_mask & np.isfinite(emb["vectors"]).all(axis=1))
    gallery = emb["vectors"][g_idx]
    model = get_model("fr-feature")
    results = []
    print(f"{len(q_idx)} queries, {len(g_idx)} gallery images")
    for kind, keep in (("box", 1.0), ("box80", 0.8)):
        crops = [crop(load_rgb(root / "lfw" / names[i]), det["bbox"][i], keep) for i in q_idx]
        sizes = np.array([c.shape[:2] for c in crops])
        for setting in ("default", "whole_photo_face"):
            t0 = time.perf_counter()
            whole = setting != "default"
            found = [detect_and_embed(model, [c], largest_only=True, whole_photo_face=whole)[0] for c in crops]
            secs = time.perf_counter() - t0
            ok = np.array([len(f) > 0 for f, _ in found])
            vec = np.stack([e[0] if len(f) else np.zeros(gallery.shape[1], np.float32) for f, e in found])
            dist = 1.0 - vec @ gallery.T
            dist[~ok] = 2.0  # a crop without a face finds nobody
            hit = np.argmin(dist, axis=1)  # a crop without a face is a miss
            rank1 = float(np.mean(ok & (labels[g_idx][hit] == labels[q_idx])))
            row = {
                "crop": kind,
                "setting": setting,
                "queries": len(q_idx),
                "median_side_px": int(np.median(sizes.min(axis=1))),
                "detected": float(ok.mean()),
                "rank1": rank1,
                "ms_per_photo": 1e3 * secs / len(crops),
            }
            results.append(row)
            print(
                f"{kind:<6} {setting:<17} detected {100 * row['detected']:6.2f} %  rank-1 {100 * rank1:6.2f} %  "
                f"({row['ms_per_photo']:.1f} ms/photo, crops ~{row['median_side_px']} px)",
                flush=True,
            )
    full = 1.0 - emb["vectors"][q_idx] @ gallery.T
    hit = np.argmin(full, axis=1)
    base = float(np.mean(labels[g_idx][hit] == labels[q_idx]))
    print(f"full photos (same queries): rank-1 {100 * base:.2f} %")
    write_json(args.json_out, {"machine": machine, "full_photo_rank1": base, "results": results})


if __name__ == "__main__":
    main()
