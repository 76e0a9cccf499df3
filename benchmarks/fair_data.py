"""Face sets for the demographic benchmark (``fairness.py``): which photos, which group, their embeddings.

A *set* is a folder of photos. Two layouts are read:

- labelled: ``ROOT/<person>/<photo>`` (several photos per person): gives same-person pairs (false non-matches)
  and different-person pairs (false matches);
- unlabelled: ``ROOT/<photo>``, every photo a different person (UTKFace): different-person pairs only.

Each photo's largest face is embedded through the production pipeline (``detect_and_embed``) and cached in
``benchmarks/cache/fair-<model>-<set>.npz``, keyed by file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
SHARED = HERE.parent.parent / "shared" / "data"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".gif"}


@dataclass
class FaceSet:
    """Embeddings of one set: ``vectors (N, d)``, ``person`` labels (``None`` when unlabelled), file names."""

    name: str
    group: str
    files: list[str]
    person: list[str] | None
    vectors: np.ndarray
    missed: int = 0


def list_photos(root: Path, labelled: bool) -> tuple[list[str], list[str] | None]:
    if labelled:
        files = sorted(
            f"{d.name}/{f.name}"
            for d in root.iterdir()
            if d.is_dir()
            for f in d.iterdir()
            if f.suffix.lower() in IMAGE_EXT
        )
        return files, [f.split("/", 1)[0] for f in files]
    files = sorted(f.name for f in root.iterdir() if f.suffix.lower() in IMAGE_EXT)
    return files, None


def embed_set(name: str, group: str, root: Path, model: str, labelled: bool, batch: int = 64) -> FaceSet:
    """Embed the largest face of every photo under ``root`` (cached); photos without a face are dropped."""
    from lookalike.embedding import detect_and_embed
    from lookalike.faces.registry import get_model
    from lookalike.images import decode_image

    files, person = list_photos(root, labelled)
    path = CACHE / f"fair-{model}-{name}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            names, vectors, ok = z["names"], z["vectors"], z["ok"]
        cached = {str(n): v for n, v, good in zip(names, vectors, ok, strict=True) if good}
        missing_marker = {str(n) for n, good in zip(names, ok, strict=True) if not good}
    else:
        missing_marker = set()
    todo = [f for f in files if f not in cached and f not in missing_marker]
    if todo:
        m = get_model(model)
        for s in range(0, len(todo), batch):
            chunk = todo[s : s + batch]
            imgs = [decode_image((root / f).read_bytes(), uri=str(root / f)) for f in chunk]
            for f, (faces, emb) in zip(chunk, detect_and_embed(m, imgs, largest_only=True), strict=True):
                if faces:
                    cached[f] = emb[0]
                else:
                    missing_marker.add(f)
        names = sorted(cached) + sorted(missing_marker)
        dim = m.card.dim
        vecs = np.stack([cached[n] for n in sorted(cached)] + [np.zeros(dim, np.float32)] * len(missing_marker))
        ok = np.array([True] * len(cached) + [False] * len(missing_marker))
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, names=np.array(names), vectors=vecs.astype(np.float32), ok=ok)
        os.replace(tmp, path)
    keep = [i for i, f in enumerate(files) if f in cached]
    return FaceSet(
        name=name,
        group=group,
        files=[files[i] for i in keep],
        person=[person[i] for i in keep] if person is not None else None,
        vectors=np.stack([cached[files[i]] for i in keep]).astype(np.float32),
        missed=len(files) - len(keep),
    )


UTK_GROUPS = (
    "asian_men",
    "asian_women",
    "black_men",
    "black_women",
    "indian_men",
    "indian_women",
    "white_men",
    "white_women",
)


def standard_sets(model: str, shared: Path = SHARED, extra: list[str] | None = None) -> list[FaceSet]:
    """UTKFace's eight groups, LFW's colour crops, and any ``GROUP=DIR`` labelled extra sets."""
    out = []
    utk = shared / "utkface_adults"
    for g in UTK_GROUPS:
        if (utk / g).is_dir():
            out.append(embed_set(f"utk-{g}", g, utk / g, model, labelled=False))
    if (shared / "lfw_color12").is_dir():
        out.append(embed_set("lfw_color12", "lfw (mostly white men)", shared / "lfw_color12", model, labelled=True))
    for spec in extra or []:
        group, _, folder = spec.partition("=")
        root = Path(folder)
        out.append(embed_set(f"extra-{root.name}", group, root, model, labelled=True))
    return out
