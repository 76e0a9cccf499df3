"""Per-process cache of face matrices, keyed by dataset file, table and table version.

Loading 1M x 512 embeddings from DuckDB takes a while; searching them takes milliseconds. The cache keeps the
most recently used matrices and reloads one only when its table's version (bumped by every committed write)
has changed.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from lookalike import config
from lookalike.dataset.store import FaceMatrix

_MAX_ENTRIES = 4
_cache: OrderedDict[tuple[str, str], FaceMatrix] = OrderedDict()
_lock = threading.Lock()


def get_matrix(dataset_path: str, table: str, version: int, load: Callable[[], FaceMatrix]) -> FaceMatrix:
    """The cached matrix for (dataset, table) if it is at ``version``; else ``load()`` and cache it (as float16
    with ``LOOKALIKE_VECTORS=float16``)."""
    dtype = config.vector_dtype()
    key = (os.path.realpath(dataset_path), f"{table}\0{dtype}")
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit.version == version:
            _cache.move_to_end(key)
            return hit
    fresh = load()
    if dtype == "float16":
        from lookalike.search.half import to_half

        fresh = to_half(fresh)
    with _lock:
        _cache[key] = fresh
        _cache.move_to_end(key)
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    return fresh


def clear() -> None:
    with _lock:
        _cache.clear()
