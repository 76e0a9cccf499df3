"""Importing faiss with OpenMP threads that sleep instead of spinning while they wait.

faiss runs on OpenMP. By default its idle threads spin, and on a small machine shared with BLAS, onnxruntime or
another process they then take the cores from the work: a 1,000-vector training measured 0.07 s alone and
12-20 s beside a busy process on 2 cores. ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) is read when
the OpenMP runtime loads, so every module imports faiss through :func:`faiss`.
"""

from __future__ import annotations

import os
from types import ModuleType


def faiss() -> ModuleType:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss as module

    return module
