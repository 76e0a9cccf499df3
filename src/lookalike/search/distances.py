"""Distance functions and how a model's cosine threshold reads in each of them.

Embeddings are stored L2-normalised, so all three distances are monotone in the dot product ``s = q . x``:

========== ============================ =====================================================
name       distance                     notes
========== ============================ =====================================================
cosine     ``1 - s``                    in ``[0, 2]``; the default, and what thresholds are in
euclidean  ``sqrt(|q|^2 + |x|^2 - 2s)`` ``sqrt(2 - 2s)`` for unit vectors
dot        ``-s``                       BigQuery's DOT_PRODUCT distance is the negated product
========== ============================ =====================================================
"""

from __future__ import annotations

import math
from typing import Literal, cast, get_args

import numpy as np

from lookalike.errors import InvalidArgument

Distance = Literal["cosine", "euclidean", "dot"]
DISTANCES: tuple[Distance, ...] = get_args(Distance)

_ALIASES = {"dot_product": "dot", "dotproduct": "dot", "l2": "euclidean", "cos": "cosine"}


def parse_distance(name: str) -> Distance:
    """Normalise a user-given distance name (case-insensitive; BigQuery's names accepted)."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in DISTANCES:
        raise InvalidArgument(f"unknown distance {name!r}", hint="use one of: " + ", ".join(DISTANCES))
    return cast(Distance, key)


def from_similarity(sim: np.ndarray, distance: Distance, q_sq: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """Turn dot products ``sim`` (m, k) into distances, given squared norms of queries (m,) and rows (m, k)."""
    if distance == "cosine":
        # rounding can push a self-match's product a hair above 1; a distance is never negative
        return np.maximum(1.0 - sim, 0.0).astype(np.float32)
    if distance == "dot":
        return (0.0 - sim).astype(np.float32)  # 0 - s: never a negative zero
    d2 = q_sq[:, None] + x_sq - 2.0 * sim
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)


def threshold_for(distance: Distance, cosine_threshold: float) -> float:
    """The model's same-person threshold expressed in ``distance`` (for unit vectors)."""
    if distance == "cosine":
        return cosine_threshold
    if distance == "dot":
        return cosine_threshold - 1.0
    return math.sqrt(max(0.0, 2.0 * cosine_threshold))
