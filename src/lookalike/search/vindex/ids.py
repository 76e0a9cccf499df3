"""Row identities for an index over a table without an id column: a 63-bit hash of each vector's bytes.

SQL tables (``CREATE TABLE ... AS SELECT * FROM ML.GENERATE_EMBEDDING(...)``) have no stable row id, so an
index over one names each row by its vector. Rows with identical vectors share an id; the searcher expands an
id back to every row that holds it, so duplicates come back exactly as an exact search returns them.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 16384
_rng = np.random.default_rng(0x10CA11CE)
_MULT: dict[int, np.ndarray] = {}


def _multipliers(width: int) -> np.ndarray:
    if width not in _MULT:
        _MULT[width] = (_rng.integers(1, 2**62, size=width, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
    return _MULT[width]


def content_ids(matrix: np.ndarray) -> np.ndarray:
    """``(n,)`` non-negative int64 ids, one per row of the float32 ``matrix``, equal for equal rows."""
    mat = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = mat.shape
    words = mat.view(np.uint32)
    mult = _multipliers(d)
    out = np.empty(n, np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n, _CHUNK):
            block = words[start : start + _CHUNK].astype(np.uint64)
            h = (block * mult).sum(axis=1, dtype=np.uint64)  # wraps modulo 2**64
            h ^= h >> np.uint64(31)
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
            out[start : start + _CHUNK] = h
    return (out & np.uint64(0x7FFF_FFFF_FFFF_FFFF)).astype(np.int64)


def in_sorted(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are among the sorted ``keys`` (a boolean array shaped like ``values``)."""
    if not keys.size:
        return np.zeros(values.shape, bool)
    return keys[np.minimum(np.searchsorted(keys, values), keys.size - 1)] == values
