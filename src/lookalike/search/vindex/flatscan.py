"""An exhaustive TREE_AH index's codes scanned without the inverted-file machinery.

A default TREE_AH index is faiss ``IVF1,PQ<m>x4fs``: one list holding every 4-bit code, all of it scanned. faiss's
IVF fast-scan search keeps its top candidates more slowly than the plain ``IndexPQFastScan`` does when many are
asked for: measured here (2 vCPUs, AMD EPYC, 2026-12-02), one query asking for 1,118 candidates of 1M codes took
3.0-3.6 ms through the IVF and 1.9-2.1 ms through the plain index, 500 of 200k 0.38-0.50 ms against 0.24-0.32 ms,
with the same candidates and distances. The plain index has no id selector. So where some held rows must not
come back (deleted since the build, left out by a pre-filter), the searcher asks it for that many more candidates
and keeps the first ones admitted, which are those the selector would give; where they are more than the
candidates, it searches the IVF with its selector.

:func:`flat_scan` makes the plain index once per loaded index, from a copy of the IVF list's packed codes (the two
indexes pack 4-bit codes into blocks of 32 alike: ``tests/unit/test_vindex.py`` checks they return the same
candidates); it costs one more copy of the codes (32 bytes a 512-d face).

Where the index has refine codes (:func:`~lookalike.search.vindex.build.wants_refine`: 4-bit scalar codes in the
list's order), the view pairs them with the scan in a faiss ``IndexRefine``: the scan's candidates are ranked by
the scalar codes in one C++ call, and only the best few are handed back for the exact re-rank.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.search.vindex._faiss import faiss as load_faiss

if TYPE_CHECKING:
    from lookalike.search.vindex.searcher import LoadedIndex

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class FlatScan:
    """A plain fast-scan index over an IVF list's codes, and the id held at each of its positions."""

    index: Any  # faiss.IndexPQFastScan
    ids: np.ndarray
    #: the scan and the refine codes as one faiss IndexRefine (None: the index has no refine codes)
    refined: Any = None
    refine: Any = None  # the refine codes' index, kept alive beside the IndexRefine that points at it

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The ids of each query's ``k`` best codes, -1 where there are fewer, as ``IndexIVF.search`` gives."""
        _, pos = self.index.search(queries, k)
        return self._ids(pos)

    def search_refined(self, queries: np.ndarray, scanned: int, keep: int) -> np.ndarray:
        """The ids of the ``keep`` best by the refine codes among each query's ``scanned`` best codes (-1 where
        there are fewer); needs :attr:`refined`."""
        faiss = load_faiss()

        params = faiss.IndexRefineSearchParameters()
        params.k_factor = (scanned + 0.5) / keep  # faiss takes int(keep * k_factor) candidates: exactly `scanned`
        _, pos = self.refined.search(queries, keep, params=params)
        return self._ids(pos)

    def _ids(self, pos: np.ndarray) -> np.ndarray:
        return np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)


def make_flat_scan(index: Any, refine: Any = None) -> FlatScan | None:
    """The plain fast-scan view of ``index`` (paired with its ``refine`` codes when given), or None when it is
    not a one-list PQ fast-scan IVF (or is empty)."""
    faiss = load_faiss()

    ivf = faiss.downcast_index(index)
    if not isinstance(ivf, faiss.IndexIVFPQFastScan) or ivf.nlist != 1 or ivf.by_residual:
        return None
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.BlockInvertedLists):
        return None
    size = int(lists.list_size(0))
    if size == 0:
        return None
    blocks = -(-size // int(lists.n_per_block))
    nbytes = blocks * int(lists.block_size)
    flat = faiss.IndexPQFastScan(ivf.d, ivf.pq.M, ivf.pq.nbits, ivf.metric_type, ivf.bbs)
    if int(flat.bbs) != int(lists.n_per_block) or int(flat.M2) != int(ivf.M2):
        return None  # packed differently: the IVF path stays
    flat.pq = ivf.pq
    flat.is_trained = True
    faiss.copy_array_to_AlignedTable(faiss.rev_swig_ptr(lists.get_codes(0), nbytes), flat.codes)
    flat.ntotal = size
    flat.ntotal2 = blocks * int(lists.n_per_block)
    ids = np.array(faiss.rev_swig_ptr(lists.get_ids(0), size), dtype=np.int64, copy=True)
    if refine is None or int(refine.ntotal) != size:
        return FlatScan(flat, ids)
    return FlatScan(flat, ids, faiss.IndexRefine(flat, refine), refine)


def flat_scan(loaded: LoadedIndex) -> FlatScan | None:
    """``loaded``'s plain fast-scan view, made on first use and kept with it (a loaded index never changes)."""
    if loaded.flat is None:
        with _LOCK:
            if loaded.flat is None:
                view = make_flat_scan(loaded.index, loaded.refine)
                loaded.flat = view if view is not None else False
    return loaded.flat or None
