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
list's order), the view ranks the scan's candidates by them (:mod:`~lookalike.search.vindex.refine`) and hands
back only the best few for the exact re-rank. A view of many codes is scanned in parts: one query's parts from
several threads (:data:`SPLIT_FROM`), each thread scoring its part's share of the candidates as soon as it has
them (:data:`PART_SHARE_PERCENT`), and a batch's parts in turn (:data:`BATCH_FROM`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.config import num_threads
from lookalike.search.vindex._faiss import faiss as load_faiss
from lookalike.search.vindex.build import list_ids
from lookalike.search.vindex.ids import in_sorted
from lookalike.search.vindex.refine import RefineCodes, refine_codes

if TYPE_CHECKING:
    from lookalike.search.vindex.searcher import LoadedIndex

_LOCK = threading.Lock()


#: A view over this many codes or more is scanned in parts from several threads (one query's scan is one faiss
#: thread): at most one part per core and :data:`PART_MIN` codes a part. Measured here (2 vCPUs AMD EPYC,
#: 2026-12-01/02), one query's scan of 10M codes for 5,000-10,000 candidates took 10.4-11.9 ms in one thread and
#: 8.8-9.7 ms in two halves; at 1M codes the whole search was slower in two (2.4-3.6 ms against 2.1-2.9 ms).
SPLIT_FROM = 4_000_000
PART_MIN = 2_000_000
#: From this many queries at once, the parts are scanned one after another, each by faiss's threads sharing out
#: the queries: a part's codes are then read from memory once for several queries. The scan is bound by memory
#: bandwidth: one query's scan of 10M codes reads 320 MB, and this VM's two cores read 34-45 GB/s together
#: (25-31 GB/s one alone), so one query cannot scan 10M codes in less than 7-9 ms however it is split.
#: Measured on the ``benchmarks/ann.py`` 10M table (2 vCPUs AMD EPYC, 2026-12-02), ms a query for 2, 4, 8 and
#: 100 queries at once: 8.0, 5.6, 4.9, 6.1 this way, against 11.9, 8.0, 7.9, 7.0 with each query's parts from
#: the threads.
BATCH_FROM = 2
#: One query's parts are each scanned for this share (in percent) of an even split of its candidates, and
#: scored by their refine codes in the part's thread, so that one part is scored while another is still
#: scanned (see :meth:`FlatScan._refined_one`). Alternating A/B on the ``benchmarks/ann.py`` 10M table (2 vCPUs
#: AMD EPYC, 2026-12-02, 6 rounds of 300 queries), one query at a time: median 12.0 ms against 13.95 ms with
#: the whole view's best 5,603 scored after the scan, same-person recall 99.59 % against 99.56 %. None of the
#: 1,680 queries had to scan a part again (one did with 2,000 candidates). With parts of consecutive blocks
#: instead of dealt ones, 10.5 % had to, and most did with 2,000 candidates: that table's real gallery, nearer
#: every query than its rotated distractors, was all in the first part.
PART_SHARE_PERCENT = 110

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="lookalike-scan")
    return _POOL


def _cores() -> int:
    """Threads for one query's scan: the process's (``LOOKALIKE_THREADS`` or all cores), at most 8."""
    return min(8, num_threads())


@dataclass(frozen=True, slots=True)
class FlatScan:
    """A plain fast-scan index over an IVF list's codes, in one or more parts, and the id held at each list
    position.

    The list's blocks of codes (``block`` codes each) are dealt to the parts in turn: part ``i`` of ``n`` holds
    blocks ``i``, ``i + n``, ``i + 2n``... So rows indexed together (a folder of one person, or of look-alikes)
    spread evenly over the parts, and one query's best codes do not crowd into one of them.
    """

    parts: tuple[tuple[Any, int], ...]  # (faiss.IndexPQFastScan, its number)
    ids: np.ndarray
    #: the index's refine codes in the list's order (None: it has none)
    refine: RefineCodes | None = None
    block: int = 32

    @property
    def index(self) -> Any:
        """The one fast-scan index of an unsplit view."""
        assert len(self.parts) == 1
        return self.parts[0][0]

    def scan(self, queries: np.ndarray, k: int, *, ordered: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, positions)`` of each query's ``k`` best codes, best first as faiss gives them (in no
        particular order with ``ordered=False``, which saves sorting the parts' merged candidates)."""
        if len(self.parts) == 1:
            dist, pos = self.parts[0][0].search(queries, k)
            return np.asarray(dist), np.asarray(pos)
        if queries.shape[0] >= BATCH_FROM:
            # faiss's own threads share out the queries, and each part's codes are read once for several
            found = [part[0].search(queries, k) for part in self.parts]
        else:
            found = list(_pool().map(lambda part: part[0].search(queries, k), self.parts))
        dist = np.concatenate([d for d, _ in found], axis=1)
        pos = np.concatenate([self._listed(i, p) for i, (_, p) in enumerate(found)], axis=1)
        # each part's distances come from the same lookup tables, so they compare across parts
        better = np.where(pos >= 0, self._sign() * dist, np.inf)
        if k < pos.shape[1]:
            top = np.argpartition(better, k - 1, axis=1)[:, :k]
            dist, pos, better = (np.take_along_axis(a, top, 1) for a in (dist, pos, better))
        if not ordered:
            return dist, pos
        order = np.lexsort((pos, better), axis=1)
        return np.take_along_axis(dist, order, 1), np.take_along_axis(pos, order, 1)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The ids of each query's ``k`` best codes, -1 where there are fewer, as ``IndexIVF.search`` gives."""
        return self._ids(self.scan(queries, k)[1])

    def search_refined(
        self, queries: np.ndarray, scanned: int, keep: int, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """The ids of the ``keep`` best by the refine codes among each query's ``scanned`` best codes (-1 where
        there are fewer), counting only ids among the sorted ``allowed`` (all when None); needs :attr:`refine`."""
        assert self.refine is not None
        if queries.shape[0] == 1 and len(self.parts) > 1:
            return self._refined_one(queries[0], scanned, keep, allowed)[None, :]
        pos = self.scan(queries, scanned, ordered=False)[1]
        out = np.full((pos.shape[0], keep), -1, np.int64)

        def share(first: int, step: int) -> None:
            for qi in range(first, pos.shape[0], step):
                out[qi] = _ranked([self._best_scored(queries[qi], pos[qi][pos[qi] >= 0], keep, allowed)], keep)

        threads = min(_cores(), pos.shape[0]) if pos.shape[0] > 1 else 1
        if threads > 1:  # each thread scores a share of the queries (numpy lets go of the GIL while it counts)
            list(_pool().map(lambda t: share(t, threads), range(threads)))
        else:
            share(0, 1)
        return out

    def _refined_one(self, query: np.ndarray, scanned: int, keep: int, allowed: np.ndarray | None) -> np.ndarray:
        """:meth:`search_refined` for one query over several parts, each part's thread scanning it for a share
        of the candidates (:data:`PART_SHARE_PERCENT`) and scoring them at once, while other parts are still scanned.

        Never fewer candidates than the ``scanned`` best codes of the whole view: a part whose share might leave
        out codes among those (the candidates crowd into it) is scanned again for all ``scanned``, and its codes
        that make the whole view's best ``scanned`` are scored too.
        """
        q = query[None, :]
        share = min(scanned, -(-scanned * PART_SHARE_PERCENT // (100 * len(self.parts))))
        sign = self._sign()

        def codes(part: tuple[Any, int], k: int) -> tuple[np.ndarray, np.ndarray]:  # (rank keys, positions)
            index, number = part
            dist, pos = index.search(q, min(k, int(index.ntotal)))
            ok = pos[0] >= 0
            return sign * dist[0][ok], self._listed(number, pos[0][ok])  # smaller keys are better, best first

        def head(part: tuple[Any, int]) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
            key, pos = codes(part, share)
            return key, pos, self._best_scored(query, pos, keep, allowed)

        def limit_of(keys: list[np.ndarray]) -> float:  # the scanned-th best of all keys (inf: fewer keys)
            pooled = np.concatenate(keys)
            return float(np.partition(pooled, scanned - 1)[scanned - 1]) if pooled.size > scanned else np.inf

        heads = list(_pool().map(head, self.parts))
        chosen = [found for _, _, found in heads]
        keys = [key for key, _, _ in heads]
        # no code after a part's share is better than its share's last: when that is worse than the heads'
        # scanned-th best, the part's share holds all its codes among the view's best (which can only be better)
        limit = limit_of(keys)
        crowded = [
            i
            for i, (key, (index, _)) in enumerate(zip(keys, self.parts, strict=True))
            if key.size == share < int(index.ntotal) and key[-1] <= limit
        ]
        if crowded:
            again = list(_pool().map(lambda i: codes(self.parts[i], scanned), crowded))
            for i, (key, _) in zip(crowded, again, strict=True):
                keys[i] = key
            limit = limit_of(keys)
            for i, (key, pos) in zip(crowded, again, strict=True):
                more = pos[(key <= limit) & ~np.isin(pos, heads[i][1])]
                if more.size:
                    chosen.append(self._best_scored(query, more, keep, allowed))
        return _ranked(chosen, keep)

    def _best_scored(
        self, query: np.ndarray, positions: np.ndarray, keep: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` of the ``keep`` best of ``positions`` by the refine codes (in no order), counting
        only ids among the sorted ``allowed`` (all when None)."""
        refine = self.refine
        assert refine is not None
        ids = self.ids[positions]
        if allowed is not None:
            ok = in_sorted(allowed, ids)
            positions, ids = positions[ok], ids[ok]
        score = refine.scores(query, positions)
        if positions.size > keep:
            top = np.argpartition(-score, keep - 1)[:keep]
            ids, score = ids[top], score[top]
        return ids, score

    def _sign(self) -> float:
        """What the scan's distances are multiplied by so that smaller is better."""
        return -1.0 if self.parts[0][0].metric_type == load_faiss().METRIC_INNER_PRODUCT else 1.0

    def _listed(self, part: int, pos: np.ndarray) -> np.ndarray:
        """The list positions of part ``part``'s positions ``pos`` (-1 stays -1)."""
        n, size = len(self.parts), self.block
        if n == 1:
            return pos
        return np.where(pos >= 0, ((pos // size) * n + part) * size + pos % size, -1)

    def _ids(self, pos: np.ndarray) -> np.ndarray:
        return np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)


def _ranked(found: list[tuple[np.ndarray, np.ndarray]], keep: int) -> np.ndarray:
    """The ``keep`` best ids of the ``(ids, scores)`` pairs in ``found``, best first (ties: lower id first), -1
    where there are fewer."""
    ids = np.concatenate([i for i, _ in found])
    score = np.concatenate([s for _, s in found])
    order = np.lexsort((ids, -score))[:keep]
    out = np.full(keep, -1, np.int64)
    out[: order.size] = ids[order]
    return out


def make_flat_scan(index: Any, refine: Any = None, *, parts: int | None = None) -> FlatScan | None:
    """The plain fast-scan view of ``index`` (with its ``refine`` codes when given and of the same size), or None
    when it is not a one-list PQ fast-scan IVF (or is empty). ``parts``: how many parts to scan it in (default:
    from its size and the cores, see :data:`SPLIT_FROM`)."""
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
    per_block = int(lists.n_per_block)
    blocks = -(-size // per_block)
    block_bytes = int(lists.block_size)
    probe = faiss.IndexPQFastScan(ivf.d, ivf.pq.M, ivf.pq.nbits, ivf.metric_type, ivf.bbs)
    if int(probe.bbs) != per_block or int(probe.M2) != int(ivf.M2):
        return None  # packed differently: the IVF path stays
    if parts is None:
        parts = min(_cores(), size // PART_MIN) if size >= SPLIT_FROM else 1
    parts = max(1, min(parts, blocks))
    packed = faiss.rev_swig_ptr(lists.get_codes(0), blocks * block_bytes).reshape(blocks, block_bytes)
    made = []
    for p in range(parts):
        mine = np.arange(p, blocks, parts)  # the blocks dealt to this part (see FlatScan)
        flat = faiss.IndexPQFastScan(ivf.d, ivf.pq.M, ivf.pq.nbits, ivf.metric_type, ivf.bbs)
        flat.pq = ivf.pq
        flat.is_trained = True
        flat.codes.resize(mine.size * block_bytes)
        into = faiss.rev_swig_ptr(flat.codes.get(), mine.size * block_bytes).reshape(mine.size, block_bytes)
        np.take(packed, mine, axis=0, out=into)
        last = int(mine[-1])  # only the list's last block can be short, and it is its part's last
        flat.ntotal = (mine.size - 1) * per_block + min(per_block, size - last * per_block)
        flat.ntotal2 = mine.size * per_block
        made.append((flat, p))
    ids = list_ids(index)
    codes = refine_codes(refine) if refine is not None and int(refine.ntotal) == size else None
    return FlatScan(tuple(made), ids, codes, per_block)


def flat_scan(loaded: LoadedIndex) -> FlatScan | None:
    """``loaded``'s plain fast-scan view, made on first use and kept with it (a loaded index never changes)."""
    if loaded.flat is None:
        with _LOCK:
            if loaded.flat is None:
                view = make_flat_scan(loaded.index, loaded.refine)
                loaded.flat = view if view is not None else False
    return loaded.flat or None
