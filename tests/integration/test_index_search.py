"""End to end through the Python API on a real DuckDB file and real photos: index, re-index, search, verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.errors import DatasetError, InvalidArgument, NoFaceError, ObjectNotFound, TableNotFound

DATA = Path(__file__).resolve().parents[1] / "data"
PEOPLE = sorted(p.name for p in (DATA / "gallery").iterdir())


@pytest.fixture()
def ds(tmp_path: Path) -> lookalike.Dataset:
    return lookalike.open(tmp_path / "test.duckdb")


def _person(uri: str) -> str:
    return Path(uri).parent.name if "/gallery/" in uri or "/photos/" in uri else Path(uri).stem[:-5]


def test_index_then_every_query_finds_its_person_first(ds: lookalike.Dataset, photos: Path) -> None:
    report = ds.index(str(photos))
    assert (report.added, report.failed, report.no_face) == (36, 0, 0)
    assert report.faces >= 36
    queries = sorted(str(p) for p in (DATA / "queries").glob("*.jpg"))
    result = ds.search(queries, top_k=3, largest=True)
    top1 = {h.query_uri: h for h in result.hits if h.rank == 1}
    assert len(top1) == len(PEOPLE)
    wrong = {q: h.uri for q, h in top1.items() if _person(h.uri) != Path(q).stem[:-5]}
    assert not wrong, f"top-1 is another person: {wrong}"
    assert all(h.same_person for h in top1.values())
    # ranks are 1..k per query face, distances ascending
    for q in queries:
        rows = [h for h in result.hits if h.query_uri == q]
        assert [h.rank for h in rows] == [1, 2, 3]
        assert [h.distance for h in rows] == sorted(h.distance for h in rows)


def test_reindex_is_incremental(ds: lookalike.Dataset, photos: Path) -> None:
    ds.index(str(photos))
    again = ds.index(str(photos))
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 36)

    # change one photo (replace it with another person's), delete one, add one
    changed = photos / "Tony_Blair" / "Tony_Blair_0001.jpg"
    shutil.copy(DATA / "queries" / "Serena_Williams_0010.jpg", changed)
    (photos / "Colin_Powell" / "Colin_Powell_0002.jpg").unlink()
    shutil.copy(DATA / "queries" / "Hugo_Chavez_0010.jpg", photos / "Hugo_Chavez" / "Hugo_Chavez_0010.jpg")
    third = ds.index(str(photos))
    assert (third.added, third.updated, third.removed, third.unchanged) == (1, 1, 1, 34)

    stats = ds.tables()[0]
    assert stats["objects"] == 36
    # the changed photo now matches Serena, and the deleted one is gone from results
    hits = ds.search(str(DATA / "queries" / "Serena_Williams_0010.jpg"), top_k=1).hits
    assert hits[0].uri == str(changed)
    hits = ds.search(str(DATA / "queries" / "Colin_Powell_0010.jpg"), top_k=40).hits
    assert all("Colin_Powell_0002" not in h.uri for h in hits)


def test_bad_files_get_a_status_row_and_the_job_goes_on(ds: lookalike.Dataset, photos: Path) -> None:
    bad = photos / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("this is not an image")
    good = (photos / "Tony_Blair" / "Tony_Blair_0002.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 2])
    rng = np.random.default_rng(0)
    Image.fromarray(np.full((160, 160, 3), 128, np.uint8)).save(bad / "blank.png")
    Image.fromarray(rng.integers(0, 255, (120, 90), dtype=np.uint8)).save(bad / "noise.png")

    report = ds.index(str(photos))
    assert report.added == 41
    assert report.failed == 3, report.errors
    assert report.no_face == 2
    messages = dict(report.errors)
    for name in ("empty.jpg", "text.jpg", "truncated.jpg"):
        uri = str(bad / name)
        assert uri in messages and name in messages[uri]

    with duckdb.connect(ds.path, read_only=True) as con:
        rows = dict(con.execute("SELECT uri, status FROM faces_faces WHERE embedding IS NULL ORDER BY uri").fetchall())
    assert rows[str(bad / "blank.png")] == "no face detected"
    assert rows[str(bad / "empty.jpg")].startswith("error:")
    # the good photos were all indexed
    assert ds.tables()[0]["faces"] >= 36

    # fixing a failed file and re-running retries just the failed ones
    (bad / "text.jpg").write_bytes(good)
    again = ds.index(str(photos))
    assert again.unchanged == 38  # 36 good + 2 no-face photos are not redone
    assert again.updated == 3 and again.failed == 2


def test_missing_source_keeps_stored_rows(ds: lookalike.Dataset, photos: Path, tmp_path: Path) -> None:
    ds.index(str(photos))
    report = ds.index(str(photos), str(tmp_path / "nope"))
    assert report.source_errors and "nope" in report.source_errors[0][1]
    assert report.removed == 0 and report.unchanged == 36
    # a source that vanished entirely is an error, not "delete everything"
    shutil.rmtree(photos)
    gone = ds.index(str(photos))
    assert gone.removed == 0 and gone.source_errors
    assert ds.tables()[0]["objects"] == 36


def test_tables_are_separate_and_bound_to_a_model(ds: lookalike.Dataset, photos: Path) -> None:
    ds.index(str(photos / "Tony_Blair"), table="blair")
    ds.index(str(photos / "Serena_Williams"), table="serena")
    names = {t["name"]: t["objects"] for t in ds.tables()}
    assert names == {"blair": 3, "serena": 3}
    hits = ds.search(str(DATA / "queries" / "Tony_Blair_0010.jpg"), table="serena", top_k=1).hits
    assert "Serena" in hits[0].uri and not hits[0].same_person
    with pytest.raises(TableNotFound, match="did you mean 'blair'"):
        ds.search(str(DATA / "queries" / "Tony_Blair_0010.jpg"), table="blar")
    with pytest.raises(InvalidArgument, match="invalid table name"):
        ds.index(str(photos), table="bad name;drop")
    other = next(c.name for c in lookalike.faces.registry.list_cards() if c.name != "fr-feature")
    with pytest.raises(InvalidArgument, match="holds 'fr-feature' embeddings"):
        ds.index(str(photos), table="blair", model=other)


def test_search_by_indexed_face_and_by_vector(ds: lookalike.Dataset, photos: Path) -> None:
    ds.index(str(photos))
    first = ds.search(str(DATA / "queries" / "John_Ashcroft_0010.jpg"), top_k=1).hits[0]
    by_id = ds.search(f"face:{first.face_id}", top_k=2).hits
    assert by_id[0].face_id == first.face_id and by_id[0].distance == pytest.approx(0.0, abs=1e-5)
    assert _person(by_id[1].uri) == "John_Ashcroft"
    vec = ds.embed([str(DATA / "queries" / "John_Ashcroft_0010.jpg")])[0][0].embedding
    by_vec = ds.search(vec, top_k=1).hits[0]
    assert by_vec.face_id == first.face_id
    for distance in ("euclidean", "dot"):
        hit = ds.search(vec, top_k=1, distance=distance).hits[0]
        assert hit.face_id == first.face_id and hit.same_person


def test_verify_same_and_different(ds: lookalike.Dataset) -> None:
    same = ds.verify(str(DATA / "gallery/Hugo_Chavez/Hugo_Chavez_0001.jpg"), str(DATA / "queries/Hugo_Chavez_0010.jpg"))
    diff = ds.verify(
        str(DATA / "gallery/Hugo_Chavez/Hugo_Chavez_0001.jpg"), str(DATA / "queries/Serena_Williams_0010.jpg")
    )
    assert same.same_person and not diff.same_person
    assert same.distance < diff.distance


def test_query_errors(ds: lookalike.Dataset, photos: Path, tmp_path: Path) -> None:
    ds.index(str(photos))
    with pytest.raises(ObjectNotFound, match="missing.jpg"):
        ds.search(str(tmp_path / "missing.jpg"))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(blank)
    with pytest.raises(NoFaceError, match="blank.png"):
        ds.search(str(blank))
    res = ds.search([str(blank), str(DATA / "queries/Tony_Blair_0010.jpg")], top_k=1, skip_errors=True)
    assert len(res.hits) == 1 and len(res.errors) == 1 and "blank.png" in res.errors[0][0]


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("hello, I am a text file")
    ds = lookalike.open(bogus)
    with pytest.raises(DatasetError, match="not a DuckDB database"):
        ds.index(str(DATA / "gallery" / "Tony_Blair"))
    with pytest.raises(DatasetError, match="not a DuckDB database"):
        ds.tables()
    assert bogus.read_text() == "hello, I am a text file"  # nothing was overwritten


def test_worker_processes_give_the_same_rows(tmp_path: Path, photos: Path) -> None:
    one = lookalike.open(tmp_path / "one.duckdb")
    two = lookalike.open(tmp_path / "two.duckdb")
    one.index(str(photos / "Tony_Blair"), str(photos / "Ariel_Sharon"))
    report = two.index(str(photos / "Tony_Blair"), str(photos / "Ariel_Sharon"), workers=2, chunk_size=2)
    assert report.added == 6 and report.failed == 0
    q = str(DATA / "queries" / "Ariel_Sharon_0010.jpg")
    a = [(Path(h.uri).name, round(h.distance, 4)) for h in one.search(q, top_k=6).hits]
    b = [(Path(h.uri).name, round(h.distance, 4)) for h in two.search(q, top_k=6).hits]
    assert a == b


def test_every_face_is_a_row_largest_first(ds: lookalike.Dataset, tmp_path: Path) -> None:
    """A group photo (two people pasted on one canvas, one larger) gives two face rows; face 0 is the larger."""
    big = Image.open(DATA / "gallery/Serena_Williams/Serena_Williams_0001.jpg").convert("RGB").resize((180, 180))
    small = Image.open(DATA / "gallery/Tony_Blair/Tony_Blair_0001.jpg").convert("RGB")
    canvas = Image.new("RGB", (340, 220), (200, 200, 200))
    canvas.paste(small, (10, 60))
    canvas.paste(big, (150, 20))
    group = tmp_path / "group" / "two.png"
    group.parent.mkdir()
    canvas.save(group)
    report = ds.index(str(group.parent))
    assert report.faces == 2
    result = ds.search(str(group), top_k=1)
    assert [q.face_index for q in result.queries] == [0, 1]
    assert result.queries[0].bbox is not None and result.queries[1].bbox is not None
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in (result.queries[0].bbox, result.queries[1].bbox)]
    assert area[0] > area[1]
    # each query face finds itself among the indexed faces of the group photo
    assert [(h.query_face, h.face, h.uri) for h in result.hits] == [(0, 0, str(group)), (1, 1, str(group))]
    largest = ds.search(str(group), top_k=1, largest=True)
    assert len(largest.queries) == 1 and largest.queries[0].bbox == result.queries[0].bbox


def test_huge_image_is_refused_by_its_header_and_the_job_goes_on(tmp_path: Path) -> None:
    """A 9000x8000 photo (72 Mpx, over the 64 Mpx decompression-bomb limit) gets an error row naming it."""
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery" / "Tony_Blair", photos)
    Image.new("L", (9000, 8000), 128).save(photos / "huge.png")
    ds = lookalike.open(tmp_path / "huge.duckdb")
    report = ds.index(str(photos))
    assert report.added == 4 and report.faces == 3 and report.failed == 1
    uri, message = report.errors[0]
    assert uri == str(photos / "huge.png") and "huge.png" in message and "72" in message


def test_reindexing_a_subfolder_removes_its_deleted_photos(ds: lookalike.Dataset, photos: Path) -> None:
    """Photos indexed through a parent folder are removed when a re-index of their subfolder no longer sees them;
    files that a folder listing never yields (hidden, not images) and other folders are left alone."""
    ds.index(str(photos))
    notes = photos / "Tony_Blair" / "notes.txt"
    notes.write_text("not a photo")
    ds.index(str(notes))  # named on its own: indexed (as a failed object)
    (photos / "Tony_Blair" / "Tony_Blair_0002.jpg").unlink()
    report = ds.index(str(photos / "Tony_Blair"))
    assert (report.removed, report.unchanged) == (1, 2)
    stats = {t["name"]: t for t in ds.tables()}["faces"]
    assert stats["objects"] == 36  # 36 photos - 1 removed + notes.txt


def test_query_folders_and_globs_expand_to_their_images(ds: lookalike.Dataset, photos: Path) -> None:
    ds.index(str(photos))
    by_glob = ds.search(str(DATA / "queries" / "T*.jpg"), top_k=1)
    assert [Path(h.query_uri).name for h in by_glob.hits] == ["Tony_Blair_0010.jpg"]
    by_folder = ds.search(str(DATA / "queries"), top_k=1, largest=True)
    assert len(by_folder.hits) == 12
    assert all(Path(h.uri).parent.name == Path(h.query_uri).stem[:-5] for h in by_folder.hits)
    with pytest.raises(ObjectNotFound, match="no images"):
        ds.search(str(DATA / "queries" / "Nobody*.jpg"))
