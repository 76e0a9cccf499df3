"""Inference runtimes, set up in one place: onnxruntime sessions and the floating-point mode around model calls.

Every onnxruntime session of the detector and the identity models comes from :func:`ort_session`, so each one
gets the same thread settings and flushes denormal floats to zero (see :mod:`lookalike.faces.fpmode` for why).

**GPU.** With ``onnxruntime-gpu`` installed (``pip install lookalike[gpu]``, in place of ``onnxruntime``), the
sessions run on onnxruntime's CUDA execution provider. ``LOOKALIKE_DEVICE`` chooses: ``auto`` (default) uses the
GPU when the CUDA provider is there and starts, and the CPU otherwise, saying why (:func:`onnx_device`);
``cpu`` never uses the GPU; ``cuda`` uses it or fails with a clear error, never a silent CPU run. LiteRT, OpenCV's
DNN module and dlib always run on the CPU here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from lookalike.config import device, flush_denormals_enabled, num_threads
from lookalike.errors import ModelError
from lookalike.faces import fpmode
from lookalike.faces.fpmode import supported

__all__ = ["flush_denormals", "onnx_device", "ort_providers", "ort_session", "ort_session_options", "supported"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: Why this process runs onnxruntime on the CPU although ``auto`` would have used the GPU (set on a fallback).
_FALLBACK: dict[str, str] = {}

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


def ort_providers() -> list[str]:
    """The execution providers sessions are built with: the device :func:`onnx_device` says."""
    dev, _ = onnx_device()
    if dev == "cuda":
        return [CUDA, CPU]
    if dev == "none":
        raise ModelError(
            "LOOKALIKE_DEVICE=cuda, but this onnxruntime has no CUDA execution provider",
            hint="pip uninstall onnxruntime && pip install 'lookalike[gpu]' (onnxruntime-gpu) on a machine with "
            "CUDA, or set LOOKALIKE_DEVICE=auto to use the CPU",
        )
    return [CPU]


def onnx_device() -> tuple[str, str]:
    """``(device, note)`` for onnxruntime models in this process: ``("cuda", "")``, ``("cpu", why)``, or
    ``("none", why)`` when ``LOOKALIKE_DEVICE=cuda`` cannot be served."""
    import onnxruntime as ort

    wanted = device()
    if wanted == "cpu":
        return "cpu", "LOOKALIKE_DEVICE=cpu"
    if _FALLBACK:
        return "cpu", _FALLBACK["reason"]
    if CUDA in ort.get_available_providers():
        return "cuda", ""
    if wanted == "cuda":
        return "none", "LOOKALIKE_DEVICE=cuda, but this onnxruntime has no CUDA provider: its models will not load"
    return "cpu", "no GPU: this onnxruntime has no CUDA provider; pip install 'lookalike[gpu]' adds one"


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime session for the model file at ``path`` (see :func:`ort_session_options`), on the device
    ``LOOKALIKE_DEVICE`` asks for (module docstring)."""
    import onnxruntime as ort

    providers = ort_providers()
    # onnxruntime sets the flush mode on the thread that builds a session and leaves it there; building inside
    # the block restores the caller's mode afterwards
    with flush_denormals():
        try:
            session = ort.InferenceSession(str(path), sess_options=ort_session_options(threads), providers=providers)
        except Exception as err:  # onnxruntime raises its own types; a CUDA provider that fails to start is one
            if providers[0] != CUDA or device() == "cuda":
                raise
            _FALLBACK["reason"] = f"the CUDA provider failed to start ({type(err).__name__}: {err}); using the CPU"
            session = ort.InferenceSession(str(path), sess_options=ort_session_options(threads), providers=[CPU])
    if providers[0] == CUDA and session.get_providers()[0] != CUDA:
        if device() == "cuda":
            raise ModelError(
                f"LOOKALIKE_DEVICE=cuda, but onnxruntime put {Path(path).name} on {session.get_providers()[0]}",
                hint="check the CUDA and cuDNN libraries onnxruntime-gpu needs, or set LOOKALIKE_DEVICE=auto",
            )
        _FALLBACK["reason"] = "the CUDA provider did not start (onnxruntime fell back to the CPU)"
    return session


def model_device(card: Any) -> tuple[str, str]:
    """``(device, note)`` for a model card: onnxruntime models as :func:`onnx_device`; the other runtimes run on
    the CPU (for ``fusion``, its dlib half)."""
    runtime = str(getattr(card, "runtime", "onnxruntime"))
    if runtime == "remote":
        return "remote", "an HTTP service computes the embeddings; detection runs here"
    if runtime == "onnxruntime":
        return onnx_device()
    if runtime.startswith("onnxruntime+"):
        dev, note = onnx_device()
        other = runtime.split("+", 1)[1]
        return ("cpu", note) if dev == "cpu" else (f"{dev}+cpu", f"its {other} half runs on the CPU")
    return "cpu", f"{runtime} runs on the CPU"
