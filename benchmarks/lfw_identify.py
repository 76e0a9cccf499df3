"""LFW 1:N identification (closed set), for one registered face model.

Queries: the first image of each of the 1,680 people with two or more images. Gallery: every other LFW
image (11,553: the query people's other images and all images of everyone else). Each query's gallery
images are ranked by cosine distance; rank-k is the share of queries whose person is among the k nearest
*distinct people* (a person's best-matching image stands for them). Reuses the embedding cache of
``lfw_verify.py``.

    python benchmarks/lfw_identify.py --model fr-feature --json out.json
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from lfw_common import all_images, data_dir, detect_images, embed_images, write_json
from machine import print_banner


def rank_k(dist: np.ndarray, q_people: np.ndarray, g_people: np.ndarray, ks: tuple[int, ...]) -> dict:
    """Share of queries whose person is among the ``k`` nearest gallery people, for each ``k``.

    ``dist`` is ``(Q, G)``; people are integer ids. A person's distance is the minimum over their images.
    """
    order = np.argsort(g_people, kind="stable")
    gp = g_people[order]
    starts = np.flatnonzero(np.r_[True, gp[1:] != gp[:-1]])
    people = gp[starts]
    per_person = np.minimum.reduceat(dist[:, order], starts, axis=1)  # (Q, P)
    col = np.searchsorted(people, q_people)
    own = per_person[np.arange(len(q_people)), col]
    rank = np.sum(per_person < own[:, None], axis=1)  # 0 = first
    return {f"rank_{k}": float(np.mean(rank < k)) for k in ks}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fr-feature")
    ap.add_argument("--data", help="folder holding lfw/ (default: ../shared/data)")
    ap.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    print_banner()

    from lookalike.faces.registry import resolve_name

    model = resolve_name(args.model)
    root = data_dir(args.data)
    names = all_images(root)
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(names):
        by_person[n.split("/")[0]].append(i)
    person_ids = {p: k for k, p in enumerate(sorted(by_person))}
    labels = np.array([person_ids[n.split("/")[0]] for n in names])
    q_idx = np.array([idx[0] for idx in by_person.values() if len(idx) > 1])
    g_mask = np.ones(len(names), dtype=bool)
    g_mask[q_idx] = False
    g_idx = np.flatnonzero(g_mask)

    dets = detect_images(root, names)
    emb = embed_images(root, dets, model)
    q = emb.vectors[q_idx]
    g = emb.vectors[g_idx]
    dist = 1.0 - q @ g.T
    res = rank_k(dist, labels[q_idx], labels[g_idx], (1, 5, 10))
    payload: dict[str, object] = {
        "model": model,
        "queries": len(q_idx),
        "gallery": len(g_idx),
        **res,
        "no_face_detected": int(np.sum(dets.n_faces == 0)),
    }
    write_json(args.json_out, payload)
    print(
        f"{model}: rank-1 {100 * res['rank_1']:.2f} %, rank-5 {100 * res['rank_5']:.2f} % "
        f"({len(q_idx)} queries, {len(g_idx)} gallery images)"
    )


if __name__ == "__main__":
    main()
