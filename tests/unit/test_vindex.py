"""Vector index internals on synthetic vectors: options, row ids, and a searcher that never misses a row."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lookalike.errors import InvalidArgument
from lookalike.search.exact import top_k
from lookalike.search.vindex.build import build, pq_subquantizers, update
from lookalike.search.vindex.ids import content_ids
from lookalike.search.vindex.searcher import LoadedIndex, delta, search_rows
from lookalike.search.vindex.spec import MAX_LISTS, SearchKnobs, auto_num_lists, parse_index_options


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = _unit(rng.standard_normal((6000, 64)))
    q = _unit(x[:40] + 0.6 * rng.standard_normal((40, 64)))  # far from their match, as face queries are
    return x, np.arange(6000, dtype=np.int64) * 5 + 11, q


def _loaded(options: dict[str, object], x: np.ndarray, ids: np.ndarray) -> LoadedIndex:
    spec = parse_index_options(options)
    b = build(spec, x, ids)
    return LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, x.shape[1], refine=b.refine)


def test_options_are_checked() -> None:
    spec = parse_index_options({"INDEX_TYPE": "ivf", "distance_type": "cosine", "ivf_options": '{"num_lists": 7}'})
    assert (spec.index_type, spec.distance, spec.num_lists) == ("IVF", "cosine", 7)
    assert parse_index_options({"index_type": "TREE_AH"}).distance == "euclidean"  # BigQuery's default
    bad = [
        ({}, "index_type must be"),
        ({"index_type": "HNSW"}, "got 'HNSW'"),
        ({"index_type": "IVF", "colour": 1}, "unknown vector index option 'colour'"),
        ({"index_type": "IVF", "distance_type": "HAMMING"}, "unknown distance_type"),
        ({"index_type": "IVF", "ivf_options": "{bad"}, "ivf_options is not valid JSON"),
        ({"index_type": "IVF", "ivf_options": {"num_lists": 0}}, "num_lists must be an integer in 1..5000"),
        ({"index_type": "IVF", "ivf_options": {"num_lists": 5001}}, "num_lists must be"),
        ({"index_type": "IVF", "ivf_options": {"lists": 3}}, "unknown ivf_options key 'lists'"),
        ({"index_type": "TREE_AH", "ivf_options": {"num_lists": 3}}, "ivf_options goes with index_type = 'IVF'"),
        ({"index_type": "TREE_AH", "tree_ah_options": {"normalization_type": "L1"}}, "normalization_type"),
    ]
    for options, message in bad:
        with pytest.raises(InvalidArgument, match=message):
            parse_index_options(options)
    with pytest.raises(InvalidArgument, match="fraction_lists_to_search must be a number in"):
        SearchKnobs(fraction_lists_to_search=0)
    assert auto_num_lists(200_000) == 1789 and auto_num_lists(10**9) == MAX_LISTS and auto_num_lists(40) == 1
    assert (
        512 % pq_subquantizers(512) == 0
        and pq_subquantizers(512) == 64
        and pq_subquantizers(192) == 32
        and pq_subquantizers(64) == 32
    )


def test_content_ids_name_vectors() -> None:
    x = _unit(np.random.default_rng(1).standard_normal((100, 32)))
    ids = content_ids(x)
    assert ids.dtype == np.int64 and (ids >= 0).all() and len(set(ids.tolist())) == 100
    assert (content_ids(x.copy()) == ids).all()
    y = x.copy()
    y[3, 5] = np.nextafter(y[3, 5], 2)  # one bit of one value
    assert content_ids(y)[3] != ids[3] and (np.delete(content_ids(y), 3) == np.delete(ids, 3)).all()


@pytest.mark.parametrize("index_type", ["IVF", "TREE_AH"])
def test_fraction_one_is_exact(data: tuple[np.ndarray, np.ndarray, np.ndarray], index_type: str) -> None:
    x, ids, q = data
    loaded = _loaded({"index_type": index_type, "distance_type": "COSINE"}, x, ids)
    rows, dists, usage = search_rows(loaded, x, ids, q, 10, "cosine", SearchKnobs(1.0))
    want_rows, want_dists = top_k(x, q, 10, "cosine")
    assert usage.mode == "FULLY_USED"
    assert (rows == want_rows).all()
    np.testing.assert_allclose(dists, want_dists, atol=1e-6)


def test_default_tree_ah_keeps_far_matches(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, ids, q = data
    loaded = _loaded({"index_type": "TREE_AH", "distance_type": "COSINE"}, x, ids)
    rows, _, usage = search_rows(loaded, x, ids, q, 10, "cosine", SearchKnobs())
    want, _ = top_k(x, q, 10, "cosine")
    recall = np.mean([len(set(rows[i]) & set(want[i])) / 10 for i in range(len(q))])
    assert recall >= 0.95 and (rows[:, 0] == want[:, 0]).mean() >= 0.95
    assert usage.candidates == 500


def test_new_deleted_and_filtered_rows(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Rows the index lacks are found, deleted ones never come back, a narrow pre-filter still gives k rows."""
    x, ids, q = data
    loaded = _loaded(
        {"index_type": "IVF", "distance_type": "COSINE", "ivf_options": {"num_lists": 16}}, x[:4000], ids[:4000]
    )
    # the current rows: 2,000 new ones, and the first 500 indexed ones deleted
    cur = np.arange(500, 6000)
    rows, _, usage = search_rows(loaded, x[cur], ids[cur], q, 5, "cosine", SearchKnobs(1.0))
    want, _ = top_k(x[cur], q, 5, "cosine")
    assert usage.mode == "PARTIALLY_USED" and usage.unindexed_rows == 2000
    assert (rows == want).all()
    # a pre-filter that keeps 7 rows, 3 of them indexed: 5 rows back, all of them admitted, at any fraction
    keep = np.array([10, 700, 900, 4100, 4200, 4300, 5999])
    rows, _, usage = search_rows(loaded, x[keep], ids[keep], q, 5, "cosine", SearchKnobs(0.1))
    want, _ = top_k(x[keep], q, 5, "cosine")
    assert usage.mode == "UNUSED" and usage.reasons[0][0] == "FEW_ROWS_AFTER_FILTER"
    assert rows.shape == (len(q), 5) and (np.sort(rows, axis=1) == np.sort(want, axis=1)).all()


def test_duplicate_vectors_come_back_like_exact_search(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, _, q = data
    dup = np.concatenate([x[:1000], x[:50]])  # 50 rows twice: one id each
    ids = content_ids(dup)
    loaded = _loaded({"index_type": "TREE_AH", "distance_type": "COSINE"}, dup, ids)
    assert loaded.ids.size == 1000
    rows, _, _ = search_rows(loaded, dup, ids, q[:5], 6, "cosine", SearchKnobs(1.0))
    want, _ = top_k(dup, q[:5], 6, "cosine")
    assert (np.sort(rows, axis=1) == np.sort(want, axis=1)).all()


def test_update_adds_and_removes(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, ids, _ = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:3000], ids[:3000])
    up = update(spec, b.index, b.ids, x[1000:4000], ids[1000:4000], b.refine)
    assert (up.added, up.removed) == (1000, 1000) and b.index.ntotal == 3000
    assert (up.ids == np.sort(ids[1000:4000])).all()
    assert b.refine is None and up.refine is None  # refine codes only from REFINE_FROM_ROWS vectors
    assert build(spec, x[:10], ids[:10]).factory == "IVF1,Flat"  # too few rows to train codes: kept exact
    with pytest.raises(InvalidArgument, match="at least 1 vector"):
        build(spec, x[:0], ids[:0])


@pytest.fixture()
def refine_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refine codes for these small tables too (by default only from ``REFINE_FROM_ROWS`` = 50k vectors)."""
    import lookalike.search.vindex.build as build_mod

    monkeypatch.setattr(build_mod, "REFINE_FROM_ROWS", 100)


def test_refine_codes_follow_the_list_order(data: tuple[np.ndarray, np.ndarray, np.ndarray], refine_small) -> None:
    """A default TREE_AH build over a large table keeps 4-bit scalar codes in its list's order, and an update
    (which moves codes within the list when it removes some) keeps them there: position p's code decodes to the
    vector of the id at list position p."""
    from lookalike.search.vindex.build import list_ids, wants_refine

    x, ids, _ = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:3001], ids[:3001])
    assert wants_refine(b.factory, 3001) and b.refine is not None and b.refine.ntotal == 3001
    up = update(spec, b.index, b.ids, x[700:4333], ids[700:4333], b.refine)
    assert up.refine is not b.refine and b.refine.ntotal == 3001  # the loaded index's codes are left as they were
    for index, refine in ((build(spec, x[:3001], ids[:3001]).index, b.refine), (b.index, up.refine)):
        order = list_ids(index)
        assert refine.ntotal == order.size
        decoded = refine.reconstruct_n(0, order.size)
        truth = x[np.searchsorted(ids, order)]
        cos = np.einsum("ij,ij->i", decoded, truth) / np.linalg.norm(decoded, axis=1)
        assert cos.min() > 0.9  # each code is its own vector's (another's would be near 0 in 64-d)
    assert update(spec, b.index, up.ids, x[700:4333], ids[700:4333], up.refine).refine is up.refine  # no change
    assert build(spec, x[:10], ids[:10]).refine is None  # exact storage has no codes
    ivf = parse_index_options({"index_type": "IVF", "distance_type": "COSINE", "ivf_options": {"num_lists": 4}})
    assert build(ivf, x, ids).refine is None


def test_refined_search_reranks_the_best_few_exactly(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], refine_small
) -> None:
    """With refine codes, the scan's 500 candidates are narrowed to the best 50 by those codes before the exact
    re-rank: the same answer as re-ranking all 500 here, exact distances, and rows left out never come back."""
    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:3000], ids[:3000])
    refined = LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, 64, refine=b.refine)
    plain = LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, 64)
    for cur in (np.arange(3000), np.arange(100, 3000)):
        rows, dist, usage = search_rows(refined, x[cur], ids[cur], q, 10, "cosine", SearchKnobs())
        want, _, plain_usage = search_rows(plain, x[cur], ids[cur], q, 10, "cosine", SearchKnobs())
        assert (usage.candidates, usage.reranked_exactly) == (500, 50) and plain_usage.reranked_exactly == 500
        assert (rows[:, :5] == want[:, :5]).mean() >= 0.98
        exact, _ = top_k(x[cur], q, 10, "cosine")
        sims = np.einsum("qkd,qd->qk", x[cur][rows], q)
        assert np.allclose(dist, 1 - sims, atol=1e-5)  # distances from the stored vectors
        assert (rows[:, 0] == exact[:, 0]).mean() >= 0.95
    # scanned in two parts (as a table of millions is), the refine codes pick the same rows
    from lookalike.search.vindex.flatscan import make_flat_scan

    one, two = make_flat_scan(b.index, b.refine), make_flat_scan(b.index, b.refine, parts=2)
    assert one is not None and two is not None and len(two.parts) == 2
    got, want = two.search_refined(q, 500, 50), one.search_refined(q, 500, 50)
    assert np.mean([np.intersect1d(g, w).size for g, w in zip(got, want, strict=True)]) >= 49
    # searched from several threads at once (a server), each gets its own answer: the scan's thread pool and
    # the scoring's per-thread buffers are shared safely
    from concurrent.futures import ThreadPoolExecutor

    alone = [two.search_refined(q[i : i + 1], 500, 50)[0] for i in range(40)]
    assert np.mean([np.intersect1d(a, g).size for a, g in zip(alone, got, strict=True)]) >= 49
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: two.search_refined(q[i % 40 : i % 40 + 1], 500, 50), range(200)))
    assert all((answers[i][0] == alone[i % 40]).all() for i in range(200))


def test_one_query_over_parts_scores_every_one_of_the_best_codes(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], refine_small
) -> None:
    """One query's parts each give a share of its candidates, scored in the part's thread. The list's blocks are
    dealt to the parts in turn, so rows indexed together spread over them; where the best codes crowd into one
    part all the same (here: every other block), that part is scanned again, so the refine codes still see every
    one of the whole view's best codes: the answer is the one-part view's."""
    from lookalike.search.vindex.flatscan import make_flat_scan

    x, _, q = data
    rng = np.random.default_rng(3)
    near = _unit(q[0] + 0.8 * rng.standard_normal((3008, 64)) / 8)  # every one nearer q[0] than any of x
    table = np.empty((6000, 64), np.float32)
    block = np.arange(6000) // 32
    table[block % 2 == 0], table[block % 2 == 1] = near, x[:2992]  # the even blocks: the first part's
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, table, np.arange(6000, dtype=np.int64))
    one, two = make_flat_scan(b.index, b.refine), make_flat_scan(b.index, b.refine, parts=2)
    assert one is not None and two is not None and len(two.parts) == 2
    want = one.search_refined(q[:1], 500, 50)[0]
    assert (block[want] % 2 == 0).all()  # the best codes are all in the first part
    assert set(two.search_refined(q[:1], 500, 50)[0]) == set(want)
    assert set(two.search_refined(q[:2], 500, 50)[0]) == set(want)  # a batch takes the parts' best together
    # rows left out (deleted, filtered) are never returned, and do not take a place
    allowed = np.arange(1, 6000, 2, dtype=np.int64)
    got = two.search_refined(q[:1], 500, 50, allowed)[0]
    assert np.isin(got, allowed).all() and set(got) == set(one.search_refined(q[:1], 500, 50, allowed)[0])


def test_flat_scan_returns_the_ivf_candidates(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The plain fast-scan view of a TREE_AH index's codes finds what the IVF finds, distances included, also
    after an update has removed and added codes (which reorders the list), for a count not a multiple of 32."""
    import faiss

    from lookalike.search.vindex.flatscan import flat_scan, make_flat_scan

    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:3001], ids[:3001])
    update(spec, b.index, b.ids, x[700:4333], ids[700:4333])
    view = make_flat_scan(b.index)
    assert view is not None and view.index.ntotal == b.index.ntotal == 3633
    assert (np.sort(view.ids) == np.sort(ids[700:4333])).all()
    want_d, want = b.index.search(q, 200)
    got_d, pos = view.index.search(q, 200)
    assert (view.ids[pos] == want).all() and np.array_equal(got_d, want_d)
    assert (view.search(q, 5000) >= -1).all() and (view.search(q, 5000)[:, -1] == -1).all()
    # only one-list PQ fast-scan indexes have one; a loaded index makes it once
    assert make_flat_scan(build(spec, x[:10], ids[:10]).index) is None
    ivf = parse_index_options({"index_type": "IVF", "distance_type": "COSINE", "ivf_options": {"num_lists": 4}})
    assert make_flat_scan(build(ivf, x, ids).index) is None
    assert make_flat_scan(faiss.index_factory(64, "IVF1,PQ32x4fs")) is None  # empty
    loaded = LoadedIndex("t", spec, b.index, np.sort(ids[700:4333]), 1, True, 64)
    assert flat_scan(loaded) is flat_scan(loaded) is not None


def test_flat_scan_of_an_index_read_from_its_file(data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path) -> None:
    """The view is made from an index as the product loads it (written, then read back), not only a fresh one."""
    from lookalike.search.vindex.files import read_build, write_build
    from lookalike.search.vindex.flatscan import make_flat_scan

    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:2000], ids[:2000])
    index, held, _ = read_build(tmp_path, write_build(tmp_path, "t", b.index, b.ids))
    view = make_flat_scan(index)
    assert view is not None and (held == b.ids).all()
    assert (view.search(q, 50) == make_flat_scan(b.index).search(q, 50)).all()  # type: ignore[union-attr]


def test_refine_codes_are_written_and_checked(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path, refine_small
) -> None:
    """The refine codes travel in their own checksummed file: read back they search alike; altered or missing,
    the build is refused (and the search falls back to exact search, as for the other files)."""
    from lookalike.search.vindex.files import IndexFileError, read_build, write_build
    from lookalike.search.vindex.flatscan import make_flat_scan

    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:2000], ids[:2000])
    ref = write_build(tmp_path, "t", b.index, b.ids, b.refine)
    index, _, refine = read_build(tmp_path, ref)
    assert refine is not None and refine.ntotal == 2000
    got, want = make_flat_scan(index, refine), make_flat_scan(b.index, b.refine)
    assert got is not None and want is not None and got.refine is not None
    assert (got.search_refined(q, 500, 50) == want.search_refined(q, 500, 50)).all()
    path = tmp_path / ref.folder / "refine.faiss"
    data_bytes = bytearray(path.read_bytes())
    data_bytes[-1] ^= 1
    path.write_bytes(bytes(data_bytes))
    with pytest.raises(IndexFileError, match="refine.faiss does not match its checksum"):
        read_build(tmp_path, ref)
    path.unlink()
    with pytest.raises(IndexFileError, match="is missing"):
        read_build(tmp_path, ref)
    assert read_build(tmp_path, write_build(tmp_path, "u", b.index, b.ids))[2] is None  # a build without them


def test_files_that_checked_out_are_not_hashed_again_until_they_change(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that finds a file's stat stamp as it was when the file last checked out trusts it; a file written
    to since (its stamp changed) is hashed again and refused when altered; a file changed just before its check
    (within the racy window) gets no stamp; a read-only build folder still loads, hashing every time."""
    import lookalike.search.vindex.files as files_mod
    from lookalike.search.vindex.files import IndexFileError, read_build, read_ids, write_build

    x, ids, _ = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:500], ids[:500])
    hashed: list[str] = []
    real = files_mod._sha256
    monkeypatch.setattr(files_mod, "_sha256", lambda path: hashed.append(path.name) or real(path))
    ref = write_build(tmp_path, "t", b.index, b.ids)
    folder = tmp_path / ref.folder
    hashed.clear()
    read_build(tmp_path, ref)  # just written: inside the racy window, so no stamp is kept
    assert sorted(hashed) == ["ids.npy", "index.faiss"] and not (folder / "checked.json").exists()
    monkeypatch.setattr(files_mod, "_RACY_NS", 0)
    read_build(tmp_path, ref)
    assert (folder / "checked.json").exists()
    hashed.clear()
    read_build(tmp_path, ref)
    assert (read_ids(tmp_path, ref) == b.ids).all() and hashed == []  # trusted by their stamps
    # altered in place, its size kept and its modification time put back: the change time still moves
    path = folder / "index.faiss"
    st = path.stat()
    body = bytearray(path.read_bytes())
    body[-1] ^= 1
    path.write_bytes(bytes(body))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    if path.stat().st_ctime_ns == st.st_ctime_ns:  # a file clock too coarse to tell: replace the file instead
        path.unlink()
        path.write_bytes(bytes(body))
    with pytest.raises(IndexFileError, match="index.faiss does not match its checksum"):
        read_build(tmp_path, ref)
    assert "index.faiss" in hashed
    # a read-only folder: nothing kept, still checked
    ref2 = write_build(tmp_path, "u", b.index, b.ids)
    folder2 = tmp_path / ref2.folder
    folder2.chmod(0o555)
    try:
        hashed.clear()
        read_build(tmp_path, ref2)
        read_build(tmp_path, ref2)
        assert hashed.count("index.faiss") == (2 if not os.access(folder2, os.W_OK) else 1)
    finally:
        folder2.chmod(0o755)


@pytest.mark.parametrize("distance", ["COSINE", "EUCLIDEAN"])
def test_refine_scores_are_the_decoded_vectors(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], refine_small, distance: str
) -> None:
    """The numpy scoring of 4-bit codes gives faiss's own decoded vectors' inner products (or minus squared L2
    distances), for vectors that are not of unit length too."""
    from lookalike.search.vindex.refine import refine_codes

    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": distance})
    scaled = x * np.linspace(0.5, 2.0, x.shape[0], dtype=np.float32)[:, None] if distance == "EUCLIDEAN" else x
    b = build(spec, scaled[:3000], ids[:3000])
    codes = refine_codes(b.refine)
    assert codes is not None and codes.inner_product is (distance == "COSINE")
    pos = np.array([5, 0, 2999, 17, 17])
    decoded = b.refine.reconstruct_batch(pos)
    for query in q[:5] * 1.7:
        want = decoded @ query if distance == "COSINE" else -((decoded - query) ** 2).sum(1) + query @ query
        assert np.allclose(codes.scores(query, pos), want, atol=1e-4)
    import faiss

    assert refine_codes(faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit)) is None


def test_a_view_scanned_in_parts_finds_what_one_scan_finds(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Split into parts (scanned from several threads), the view returns the same best codes in the same order
    (ties aside), part offsets included, for a count of codes that does not fill the last block."""
    from lookalike.search.vindex.flatscan import BATCH_FROM, make_flat_scan

    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:5001], ids[:5001])
    one = make_flat_scan(b.index)
    assert one is not None and len(one.parts) == 1
    for parts in (2, 3):
        split = make_flat_scan(b.index, parts=parts)
        assert split is not None and len(split.parts) == parts
        assert sum(p.ntotal for p, _ in split.parts) == 5001
        for k in (10, 300, 6000):
            got_d, got = split.scan(q, k)
            want_d, want = one.index.search(q, k)
            assert np.array_equal(got_d, want_d)  # the same distances, best first
            # the scan's distances are quantized: a tie at the k-th place may be broken either way, every code
            # better than the k-th is found by both
            better = want_d > want_d[:, -1:]
            assert all(set(g[b]) == set(w[b]) for g, w, b in zip(got, want, better, strict=True))
        assert (split.search(q, 6000)[:, 5001:] == -1).all()
        # one query at a time (its parts from several threads) or all at once (the parts in turn, faiss's
        # threads sharing out the queries): the same distances
        single = np.concatenate([split.scan(q[i : i + 1], 300)[0] for i in range(len(q))])
        assert len(q) >= BATCH_FROM and np.array_equal(single, split.scan(q, 300)[0])


def test_flat_scan_with_rows_left_out(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Rows deleted since the build or left out by a pre-filter: when they are no more than the candidates, the
    plain scan asked for that many more gives what the IVF and its id selector give (a left-out row never comes
    back); when they are more, the IVF searches."""
    x, ids, q = data
    spec = parse_index_options({"index_type": "TREE_AH", "distance_type": "COSINE"})
    b = build(spec, x[:3000], ids[:3000])
    for cur, plain in ((np.arange(100, 3000), True), (np.arange(0, 3000, 2), False)):  # 100 out; 1,500 out
        loaded = LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, 64)
        ivf_only = LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, 64, flat=False)
        rows, dist, usage = search_rows(loaded, x[cur], ids[cur], q, 10, "cosine", SearchKnobs())
        want, want_d, _ = search_rows(ivf_only, x[cur], ids[cur], q, 10, "cosine", SearchKnobs())
        assert bool(loaded.flat) is plain and usage.candidates == 500
        assert (rows == want).all() and np.array_equal(dist, want_d)
        exact, _ = top_k(x[cur], q, 10, "cosine")
        assert (rows[:, 0] == exact[:, 0]).mean() >= 0.95
    # the id selector (78 ms to build over 1M ids) is made once per table version, and only for the IVF
    cur = np.arange(100, 3000)
    for loaded, selector in ((LoadedIndex("t", spec, b.index, b.ids, b.lists, b.unit, 64), False), (ivf_only, True)):
        d = delta(loaded, ids[cur])
        search_rows(loaded, x[cur], ids[cur], q, 10, "cosine", SearchKnobs(), cached=d)
        made = d.selector
        search_rows(loaded, x[cur], ids[cur], q, 10, "cosine", SearchKnobs(), cached=d)
        assert (made is not None) is selector and d.selector is made


def test_admitted_keeps_the_first_allowed_labels() -> None:
    from lookalike.search.vindex.searcher import _admitted

    labels = np.array([[5, 3, -1, 9, 7], [2, 4, 6, 8, 1]])
    allowed = np.array([1, 3, 4, 7, 8, 9])
    assert _admitted(labels, allowed, 2).tolist() == [[3, 9], [4, 8]]
    assert _admitted(labels, allowed, 4).tolist() == [[3, 9, 7, -1], [4, 8, 1, -1]]
    assert _admitted(labels, allowed[:0], 2).tolist() == [[-1, -1], [-1, -1]]


@pytest.mark.parametrize("index_type", ["IVF", "TREE_AH"])
def test_build_in_chunks_from_a_mapped_file(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], index_type: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table larger than memory is built from its memory-mapped file a chunk at a time, duplicate ids
    included, into the same index as one built in one go."""
    import faiss

    import lookalike.search.vindex.build as build_mod

    x = data[0]
    dup = np.concatenate([x[:3000], x[:40]])
    ids = content_ids(dup)
    path = tmp_path / "m.npy"
    np.save(path, dup)
    spec = parse_index_options({"index_type": index_type, "distance_type": "COSINE"})
    whole = build(spec, dup, ids)
    monkeypatch.setattr(build_mod, "_ADD_ROWS", 7)
    mapped = np.load(path, mmap_mode="r")
    chunked = build(spec, mapped, ids)
    assert chunked.index.ntotal == whole.index.ntotal == 3000
    assert (chunked.ids == whole.ids).all()
    assert faiss.serialize_index(chunked.index).tobytes() == faiss.serialize_index(whole.index).tobytes()


def test_rerank_candidates_grow_with_the_table() -> None:
    """The counts the README and docs/sql.md state: the square root up to 1M rows, faster growth beyond."""
    from lookalike.search.vindex.searcher import rerank_candidates

    assert [rerank_candidates(10, n) for n in (1_000, 200_000, 1_000_000, 10_000_000)] == [500, 500, 1118, 5603]
    assert rerank_candidates(100, 1_000) == 5000  # 50 per requested neighbour
    counts = [rerank_candidates(10, n) for n in range(100_000, 20_000_001, 100_000)]
    assert counts == sorted(counts)


def test_sorted_unique_is_np_unique() -> None:
    from lookalike.search.vindex.searcher import sorted_unique

    rng = np.random.default_rng(3)
    for values in (np.array([], np.int64), np.array([5]), rng.integers(-50, 50, 1000), rng.permutation(10_000)):
        assert (sorted_unique(values) == np.unique(values)).all()
