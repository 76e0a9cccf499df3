"""What machine a benchmark ran on: every benchmark prints this first and stores it in its JSON.

A speed figure holds for the CPU it was measured on. The CPU model matters beyond its core count: denormal
floats, for one, cost 7-10x on some Intel CPUs and nothing measurable on AMD EPYC.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe() -> dict[str, Any]:
    """A JSON-ready description: CPU model, cores, memory, OS, Python, and the runtimes that do the maths."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    import numpy

    info["numpy"] = numpy.__version__
    try:
        from lookalike.faces import fpmode

        info["flush_denormals"] = fpmode.supported()
    except ImportError:
        pass
    try:
        from lookalike.faces.runtime import onnx_device

        info["device"], note = onnx_device()
        if note:
            info["device_note"] = note
    except ImportError:
        pass
    return info


def banner() -> str:
    """One line for the top of a benchmark's output."""
    d = describe()
    mem = f", {d['memory_gib']} GiB" if "memory_gib" in d else ""
    dev = f", onnxruntime on {d['device'].upper()}" if "device" in d else ""
    return f"machine: {d['cpu']}, {d['cores']} cores{mem}, {d['platform']}, Python {d['python']}{dev}"


def print_banner() -> dict[str, Any]:
    """Print :func:`banner` and return :func:`describe` (for the JSON output)."""
    print(banner(), flush=True)
    return describe()
