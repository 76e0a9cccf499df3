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

from lookalike.dataset.store import FaceMatrix

_MAX_ENTRIES = 4
_cache: OrderedDict[tuple[str, str], FaceMatrix] = OrderedDict()
_lock = threading.Lock()


def get_matrix(dataset_path: str, table: str, version: int, load: Callable[[], FaceMatrix]) -> FaceMatrix:
    """The cached matrix for (dataset, table) if it is at ``version``; else ``load()`` and cache it."""
    key = (os.path.realpath(dataset_path), table)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit.version == version:
            _cache.move_to_end(key)
            return hit
    fresh = load()
    with _lock:
        _cache[key] = fresh
        _cache.move_to_end(key)
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    return fresh


def clear() -> None:
    with _lock:
        _cache.clear()
