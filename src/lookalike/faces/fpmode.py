"""Denormal floats flushed to zero while the face networks run.

Face networks produce tiny intermediate values. On many Intel CPUs every arithmetic operation on a *denormal*
(subnormal) float takes a slow microcode path: fr-feature ran at 60-88 ms per face on a Sapphire Rapids Xeon
instead of 9 ms. Flushing denormals to zero (the FTZ and DAZ bits of the x86 MXCSR register, the FZ bit of the
Arm FPCR register) removes that cost and changes no embedding measurably: values that small never decide a
face's identity.

- onnxruntime has a session option for it, set by :func:`lookalike.faces.runtime.ort_session`; it covers the
  session's own thread pool.
- LiteRT (MobileFaceNet), OpenCV's DNN module (FaceNet) and dlib have none, so :func:`flush_denormals` sets the
  bits on the calling thread for the duration of a call and restores them afterwards. Threads that a runtime
  creates inside that call (LiteRT's pool is made when its interpreter is built) inherit the mode on Linux.

The register is read and written by two tiny machine-code functions placed in an executable page through
``mmap`` and called with ``ctypes``. No well-kept Python package does this (numpy, for one, has no control for
it). On a CPU or OS where that is not possible, :func:`flush_denormals` does nothing and :func:`supported`
says so; models still run, only slower on CPUs with the penalty.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import platform
import sys
import threading
from collections.abc import Callable, Iterator

__all__ = ["flush_denormals", "flushing", "supported"]

# x86-64 (System V and Windows ABIs both pass the first int in edi/ecx; we only build for Linux/macOS SysV):
#   get: stmxcsr [rsp-4]; mov eax, [rsp-4]; ret          set: mov [rsp-4], edi; ldmxcsr [rsp-4]; ret
_X86_GET = bytes.fromhex("0fae5c24fc8b4424fcc3")
_X86_SET = bytes.fromhex("897c24fc0fae5424fcc3")
_X86_FLAGS = 0x8040  # FTZ (bit 15) | DAZ (bit 6)
# AArch64: get: mrs x0, fpcr; ret        set: msr fpcr, x0; ret
_ARM_GET = (0xD53B4400).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")
_ARM_SET = (0xD51B4400).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")
_ARM_FLAGS = 1 << 24  # FZ

_lock = threading.Lock()
_register: tuple[Callable[[], int], Callable[[int], None], int] | None = None
_tried = False
_pages: list[mmap.mmap] = []  # kept alive: the functions live in them


def _load() -> tuple[Callable[[], int], Callable[[int], None], int] | None:
    """The (get, set, flags) triple for this CPU, or None where it cannot be had."""
    global _register, _tried
    with _lock:
        if _tried:
            return _register
        _tried = True
        machine = platform.machine().lower()
        if sys.platform == "win32":
            return None
        width: type[ctypes.c_uint32] | type[ctypes.c_uint64]
        if machine in ("x86_64", "amd64"):
            get_code, set_code, flags, width = _X86_GET, _X86_SET, _X86_FLAGS, ctypes.c_uint32
        elif machine in ("aarch64", "arm64"):
            get_code, set_code, flags, width = _ARM_GET, _ARM_SET, _ARM_FLAGS, ctypes.c_uint64
        else:
            return None
        try:
            page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except (OSError, ValueError, AttributeError):  # W+X pages refused (hardened kernels, SELinux)
            return None
        page.write(get_code.ljust(32, b"\0") + set_code)
        _pages.append(page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(page))
        getter = ctypes.CFUNCTYPE(width)(base)
        setter = ctypes.CFUNCTYPE(None, width)(base + 32)
        _register = (lambda: int(getter()), lambda value: setter(value), flags)
        return _register


def supported() -> bool:
    """Whether this process can flush denormals to zero around model calls (x86-64 and AArch64, not Windows)."""
    return _load() is not None


def flushing() -> bool:
    """Whether the calling thread flushes denormals to zero right now."""
    reg = _load()
    return reg is not None and (reg[0]() & reg[2]) == reg[2]


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the calling thread inside the block; restore the old mode after it."""
    reg = _load()
    if reg is None:
        yield
        return
    get, put, flags = reg
    before = get()
    if before & flags == flags:
        yield
        return
    put(before | flags)
    try:
        yield
    finally:
        put(before)
