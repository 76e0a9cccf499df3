"""Inference runtimes, set up in one place: onnxruntime sessions and the floating-point mode around model calls.

Every onnxruntime session of the detector and the identity models comes from :func:`ort_session`, so each one
gets the same thread settings and flushes denormal floats to zero (see :mod:`lookalike.faces.fpmode` for why).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from lookalike.config import flush_denormals_enabled, num_threads
from lookalike.faces import fpmode
from lookalike.faces.fpmode import supported

__all__ = ["flush_denormals", "ort_session", "ort_session_options", "supported"]

#: onnxruntime's session config key for flushing denormals to zero in the session's threads.
DENORMAL_AS_ZERO = "session.set_denormal_as_zero"


def flush_denormals() -> contextlib.AbstractContextManager[None]:
    """:func:`lookalike.faces.fpmode.flush_denormals`, unless ``LOOKALIKE_FLUSH_DENORMALS=0``."""
    return fpmode.flush_denormals() if flush_denormals_enabled() else contextlib.nullcontext()


def ort_session_options(threads: int | None = None) -> Any:
    """onnxruntime ``SessionOptions``: ``threads`` intra-op threads (default :func:`num_threads`), one inter-op
    thread, quiet logs, denormals flushed to zero."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry(DENORMAL_AS_ZERO, "1" if flush_denormals_enabled() else "0")
    return so


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for the model file at ``path`` (see :func:`ort_session_options`)."""
    import onnxruntime as ort

    # onnxruntime sets the flush mode on the thread that builds a session and leaves it there; building inside
    # the block restores the caller's mode afterwards
    with flush_denormals():
        return ort.InferenceSession(
            str(path), sess_options=ort_session_options(threads), providers=["CPUExecutionProvider"]
        )
