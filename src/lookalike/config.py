"""Process-wide settings read from the environment (one place, documented)."""

from __future__ import annotations

import os

#: Default dataset file when none is given.
DEFAULT_DATASET = "lookalike.duckdb"
#: Default face table (collection) name.
DEFAULT_TABLE = "faces"


def num_threads() -> int:
    """Threads one process may use for model inference: ``LOOKALIKE_THREADS`` or all cores."""
    value = os.environ.get("LOOKALIKE_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, os.cpu_count() or 1)


def flush_denormals_enabled() -> bool:
    """Whether model calls flush denormal floats to zero (default yes; ``LOOKALIKE_FLUSH_DENORMALS=0`` turns it
    off, for measuring its effect: ``benchmarks/denormals.py``)."""
    return os.environ.get("LOOKALIKE_FLUSH_DENORMALS", "1").strip().lower() not in ("0", "false", "no", "off")


#: Values of ``LOOKALIKE_DEVICE``: where onnxruntime models (the detector, fr-feature, users' ONNX models) run.
DEVICES = ("auto", "cpu", "cuda")


def device() -> str:
    """``LOOKALIKE_DEVICE``: ``auto`` (default: the GPU when onnxruntime has its CUDA provider, else the CPU),
    ``cpu``, or ``cuda`` (the GPU or an error). See :mod:`lookalike.faces.runtime`."""
    value = os.environ.get("LOOKALIKE_DEVICE", "auto").strip().lower() or "auto"
    if value not in DEVICES:
        from lookalike.errors import InvalidArgument

        raise InvalidArgument(f"LOOKALIKE_DEVICE={value!r} is not a device", hint=f"use one of {', '.join(DEVICES)}")
    return value


def vector_dtype() -> str:
    """How face matrices are kept for search: ``float32`` (default) or ``float16`` (half the memory; see
    ``lookalike.search.half``), from ``LOOKALIKE_VECTORS``."""
    value = os.environ.get("LOOKALIKE_VECTORS", "float32").strip().lower()
    return "float16" if value in ("float16", "fp16", "half") else "float32"


def default_dataset() -> str:
    return os.environ.get("LOOKALIKE_DATASET", DEFAULT_DATASET)
