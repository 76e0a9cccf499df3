"""Scoring an index's candidates by its 4-bit scalar refine codes, in numpy.

A refine code (faiss ``ScalarQuantizer.QT_4bit``) holds each component ``i`` of a vector as a 4-bit number
``c_i``, decoded as ``vmin_i + vdiff_i * (c_i + 0.5) / 15``; component ``2j`` sits in the low half of byte ``j``,
``2j + 1`` in the high half. The inner product with a query ``q`` is then ``A + sum_i w_i c_i`` with
``w_i = q_i vdiff_i / 15`` and ``A = q . vmin + 0.5 sum_i w_i``: two small matrix-vector products over the
candidates' unpacked halves, with no vector decoded. Measured here (2 vCPUs AMD EPYC, 2026-12-02), 5,603
candidates of 10M took 0.9-1.2 ms this way, against 3.8-6.0 ms through faiss's ``sa_decode`` and 4 ms through
its ``IndexRefine``, with the same scores to 1e-7.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.search.vindex._faiss import faiss as load_faiss


@dataclass(frozen=True, slots=True)
class RefineCodes:
    """The codes of a faiss 4-bit scalar quantizer index as a numpy view, and what decoding them needs."""

    index: Any  # the faiss IndexScalarQuantizer that owns the memory the view reads
    codes: np.ndarray  # (n, d / 2) uint8, a view over ``index``'s codes
    vmin: np.ndarray  # (d,) float32
    scale: np.ndarray  # (d,) float32: vdiff / 15
    inner_product: bool  # rank by inner product (else by L2 distance)

    def scores(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """How well each of ``positions`` matches ``query`` by its code, larger is better: the inner product
        with the decoded vector, or minus the squared L2 distance to it (less the query's squared norm)."""
        q = np.asarray(query, np.float32)
        out = np.empty(positions.size, np.float32)
        buf = _scratch(int(self.codes.shape[1]))
        if self.inner_product:
            w = q * self.scale
            weights = (np.ascontiguousarray(w[0::2]), np.ascontiguousarray(w[1::2]))
            base = np.float32(q @ self.vmin + 0.5 * w.sum())
        else:
            offset = self.vmin + 0.5 * self.scale
            halves = [(self.scale[h::2].copy(), offset[h::2].copy(), np.ascontiguousarray(q[h::2])) for h in (0, 1)]
        for start in range(0, positions.size, _CHUNK):
            rows = positions[start : start + _CHUNK]
            m = rows.size
            g = np.take(self.codes, rows, axis=0, out=buf.codes[:m])
            nib, val, res = buf.nibbles[:m], buf.values[:m], out[start : start + m]
            for half in (0, 1):  # the even components (low nibbles), then the odd ones (high nibbles)
                if half == 0:
                    np.bitwise_and(g, 15, out=nib)
                else:
                    np.right_shift(g, 4, out=nib)
                val[...] = nib
                if self.inner_product:
                    part = val @ weights[half]
                else:
                    scale, off, qh = halves[half]
                    val *= scale
                    val += off  # the decoded components
                    part = 2.0 * (val @ qh) - np.einsum("ij,ij->i", val, val)
                if half == 0:
                    res[...] = part
                else:
                    res += part
            if self.inner_product:
                res += base
        return out


#: Candidates scored at a time: their unpacked codes (1,024 x 256 float32, 1 MiB) stay in the core's cache, and the
#: buffers are reused. Whole-array temporaries of 5,600 candidates were fresh pages on every query (glibc maps
#: large blocks anew), which took 4 ms where the arithmetic takes 1.
_CHUNK = 1024


@dataclass(slots=True)
class _Scratch:
    codes: np.ndarray
    nibbles: np.ndarray
    values: np.ndarray


_LOCAL = threading.local()


def _scratch(width: int) -> _Scratch:
    """This thread's buffers for :data:`_CHUNK` candidates of ``width``-byte codes."""
    buf: _Scratch | None = getattr(_LOCAL, "buf", None)
    if buf is None or buf.codes.shape[1] != width:
        buf = _Scratch(
            np.empty((_CHUNK, width), np.uint8),
            np.empty((_CHUNK, width), np.uint8),
            np.empty((_CHUNK, width), np.float32),
        )
        _LOCAL.buf = buf
    return buf


def refine_codes(index: Any) -> RefineCodes | None:
    """The numpy view of a faiss 4-bit scalar quantizer index's codes, or None for any other kind of index."""
    faiss = load_faiss()

    sq = faiss.downcast_index(index)
    if not isinstance(sq, faiss.IndexScalarQuantizer) or int(sq.sq.qtype) != int(faiss.ScalarQuantizer.QT_4bit):
        return None
    if sq.metric_type not in (faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2) or sq.d % 2:
        return None
    d = int(sq.d)
    codes = codes_view(sq, int(sq.ntotal))
    trained = faiss.vector_to_array(sq.sq.trained).astype(np.float32)
    return RefineCodes(sq, codes, trained[:d].copy(), trained[d:] / 15.0, sq.metric_type == faiss.METRIC_INNER_PRODUCT)


def codes_view(index: Any, n: int) -> np.ndarray:
    """The first ``n`` codes of a flat-codes faiss index as a writable ``(n, code_size)`` numpy view of its memory."""
    faiss = load_faiss()

    size = int(index.code_size)
    if n == 0:
        return np.zeros((0, size), np.uint8)
    return faiss.rev_swig_ptr(index.codes.data(), n * size).reshape(n, size)
