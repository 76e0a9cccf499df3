"""People on real photos: grouping, incremental runs, manual decisions that survive ``--full``, forget, errors.

The bundled gallery holds 12 people x 3 colour photos (``tests/data/gallery``) and 3 people x 3 grayscale
photos (``tests/data/gray``); the folder name is the true person.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.errors import InvalidArgument, PeopleConflict, PersonNotFound
from lookalike.people import grouping
from lookalike.people import store as pstore

DATA = Path(__file__).resolve().parents[1] / "data"


def _truth(uri: str) -> str:
    return Path(uri).parent.name


def _groups(rows: list[dict[str, object]]) -> dict[int, set[str]]:
    """person_id -> the true people of its faces."""
    out: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        if r["person_id"] is not None:
            out[int(r["person_id"])].add(_truth(str(r["uri"])))  # type: ignore[call-overload]
    return out


def _bcubed_f(rows: list[dict[str, object]]) -> float:
    pred = [r["person_id"] if r["person_id"] is not None else f"single-{r['face_id']}" for r in rows]
    true = [_truth(str(r["uri"])) for r in rows]
    p = r_ = 0.0
    for i in range(len(rows)):
        same_pred = {j for j in range(len(rows)) if pred[j] == pred[i]}
        same_true = {j for j in range(len(rows)) if true[j] == true[i]}
        both = len(same_pred & same_true)
        p += both / len(same_pred)
        r_ += both / len(same_true)
    p, r_ = p / len(rows), r_ / len(rows)
    return 2 * p * r_ / (p + r_)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gallery and gray photos indexed and grouped once (tests that change it work on a copy)."""
    path = tmp_path_factory.mktemp("people") / "people.duckdb"
    ds = lookalike.open(path)
    ds.index(str(DATA / "gallery"), str(DATA / "gray"), cluster=False)
    report = ds.people.cluster()
    assert report.mode == "incremental" and report.looked_at == 45
    return path


@pytest.fixture()
def ds(clustered: Path, tmp_path: Path) -> lookalike.Dataset:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(clustered, copy)
    return lookalike.open(copy)


def test_grouping_is_pure_and_finds_most_people(clustered: Path) -> None:
    ds = lookalike.open(clustered)
    rows = ds.people.export()
    groups = _groups(rows)
    assert all(len(true) == 1 for true in groups.values()), groups  # no person mixes two people
    assert len(groups) >= 12 and len({next(iter(t)) for t in groups.values()}) == len(groups)
    assert _bcubed_f(rows) >= 0.85
    persons = ds.people.list()
    assert all(p.faces >= grouping.DEFAULT_MIN_FACES for p in persons)
    assert all(p.feature_face_id is not None and not p.feature_chosen for p in persons)


def test_incremental_runs_match_a_full_run(tmp_path: Path) -> None:
    """Photos arriving in three batches, grouped after each: the same result as one full run (at one linkage
    threshold; by default the threshold follows the table's calibration, which moves as a small table grows)."""
    people = sorted(p.name for p in (DATA / "gallery").iterdir())
    src = tmp_path / "photos"
    ds = lookalike.open(tmp_path / "inc.duckdb")
    for part in (people[:5], people[5:9], people[9:]):
        for name in part:
            shutil.copytree(DATA / "gallery" / name, src / name)
        ds.index(str(src), cluster=False)
        report = ds.people.cluster(threshold=0.5)
        assert report.looked_at < 36 or part is people[:5]
    incremental = _bcubed_f(ds.people.export())
    full = lookalike.open(tmp_path / "full.duckdb")
    full.index(str(src), cluster=False)
    full.people.cluster(full=True, threshold=0.5)
    assert abs(incremental - _bcubed_f(full.people.export())) <= 0.01


def test_a_second_incremental_run_looks_only_at_unassigned_faces(ds: lookalike.Dataset) -> None:
    before = {p.person_id: p.faces for p in ds.people.list()}
    unassigned = sum(1 for r in ds.people.export() if r["person_id"] is None)
    report = ds.people.cluster()
    assert report.looked_at == unassigned and report.new_persons == 0
    assert {p.person_id: p.faces for p in ds.people.list()} == before


def test_names_merges_and_moves_survive_a_full_run(ds: lookalike.Dataset) -> None:
    persons = ds.people.list()
    a, b, c = persons[0], persons[1], persons[2]
    ds.people.name(a.person_id, "Alice")
    ds.people.name(b.person_id, "Bob")
    moved_face = int(ds.people.show(c.person_id)["face_list"][0]["face_id"])  # type: ignore[index]
    ds.people.move([moved_face], to=a.person_id)  # a user's (wrong, on purpose) decision
    merged = ds.people.merge([a.person_id, b.person_id])
    assert merged.name == "Alice" and merged.faces == a.faces + b.faces + 1

    report = ds.people.cluster(full=True)
    assert report.mode == "full"
    after = {p.person_id: p for p in ds.people.list()}
    assert after[a.person_id].name == "Alice" and after[a.person_id].faces == merged.faces
    assert b.person_id not in after
    owner = ds.people.of_faces([moved_face])
    assert owner[moved_face] == (a.person_id, "Alice")  # the manual move stays
    # the person the face was moved out of never gets it back, however often it is regrouped
    ds.people.move([moved_face], to=None)
    ds.people.unassign([moved_face])
    ds.people.cluster(full=True)
    ds.people.cluster()
    assert ds.people.of_faces([moved_face]).get(moved_face, (None,))[0] not in (c.person_id, a.person_id)


def test_two_named_persons_are_never_merged_automatically(ds: lookalike.Dataset) -> None:
    """Split one person's faces into two named persons: a full run keeps them apart."""
    p = ds.people.list()[0]
    faces = [int(f["face_id"]) for f in ds.people.show(p.person_id)["face_list"]]  # type: ignore[index]
    other = ds.people.move(faces[:1], to=None)
    ds.people.name(p.person_id, "One")
    ds.people.name(other.person_id, "Two")
    ds.people.cluster(full=True)
    owners = ds.people.of_faces(faces)
    assert owners[faces[0]][0] == other.person_id
    assert {owners[f][0] for f in faces[1:]} == {p.person_id}


def test_two_faces_of_one_photo_never_share_a_person(tmp_path: Path) -> None:
    """A photo with two photos of Bill Gates side by side: his two faces in it are two people by definition."""
    src = tmp_path / "photos"
    shutil.copytree(DATA / "gray", src)
    left = Image.open(src / "Bill_Gates/Bill_Gates_0001.jpg").convert("RGB")
    right = Image.open(src / "Bill_Gates/Bill_Gates_0002.jpg").convert("RGB")
    both = Image.new("RGB", (500, 250))
    both.paste(left, (0, 0))
    both.paste(right, (250, 0))
    both.save(src / "Bill_Gates/two_of_them.jpg")
    ds = lookalike.open(tmp_path / "two.duckdb")
    ds.index(str(src), cluster=False)
    faces = [r for r in ds.people.export() if r["uri"].endswith("two_of_them.jpg")]  # type: ignore[union-attr]
    assert len(faces) == 2
    report = ds.people.cluster(min_faces=1)
    vecs = {
        int(r["face_id"]): r["embedding"]  # type: ignore[call-overload]
        for r in _face_rows(ds, [int(f["face_id"]) for f in faces])  # type: ignore[call-overload]
    }
    a, b = list(vecs.values())
    assert 1.0 - float(np.dot(a, b)) <= report.face_threshold  # close enough that only the rule keeps them apart
    owners = ds.people.of_faces(list(vecs))
    assert len({owners[f][0] for f in vecs if f in owners}) == len([f for f in vecs if f in owners])
    ds.people.cluster(full=True, min_faces=1)
    owners = ds.people.of_faces(list(vecs))
    assert len({owners[f][0] for f in vecs if f in owners}) == len([f for f in vecs if f in owners])
    # and a user cannot put them together either
    ids = list(vecs)
    with pytest.raises(PeopleConflict, match="two_of_them.jpg"):
        ds.people.move(ids, to=None)


def _face_rows(ds: lookalike.Dataset, face_ids: list[int]) -> list[dict[str, object]]:
    from lookalike.dataset import reader, store

    with reader(ds.path) as con:
        return store.face_rows(con, store.get_table(con, "faces"), face_ids=face_ids)


def test_search_rows_name_the_person_and_people_mode_gives_one_row_each(ds: lookalike.Dataset) -> None:
    query = str(DATA / "queries" / "Colin_Powell_0010.jpg")
    top = ds.search(query, top_k=3).hits
    pid = top[0].person_id
    assert pid is not None and _truth(top[0].uri) == "Colin_Powell"
    ds.people.name(pid, "Colin Powell")
    hits = ds.search(query, top_k=3).hits
    assert [h.person_name for h in hits if h.person_id == pid] == ["Colin Powell"] * sum(
        1 for h in hits if h.person_id == pid
    )
    people = ds.search(query, top_k=4, people=True).hits
    assert len(people) == 4 and len({h.person_id for h in people}) == 4
    assert people[0].person_id == pid and people[0].person_name == "Colin Powell"
    assert [h.distance for h in people] == sorted(h.distance for h in people)
    assert all(h.person_id is not None for h in people)


def test_forget_deletes_the_faces_and_they_do_not_come_back(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    ds = lookalike.open(tmp_path / "forget.duckdb")
    ds.index(str(photos), cluster=False)
    ds.people.cluster()
    query = str(DATA / "queries" / "Serena_Williams_0010.jpg")
    first = ds.search(query, top_k=1).hits[0]
    assert _truth(first.uri) == "Serena_Williams" and first.person_id is not None
    ds.create_vector_index(index_type="IVF")
    report = ds.people.forget(first.person_id)
    assert report["faces_removed"] == 3 and report["vector_index_entries_removed"] == 3
    hits = ds.search(query, top_k=10).hits
    assert all(_truth(h.uri) != "Serena_Williams" for h in hits)
    hits = ds.search(query, top_k=10, exact=True).hits
    assert all(_truth(h.uri) != "Serena_Williams" for h in hits)
    with duckdb.connect(ds.path, read_only=True) as con:
        kept = con.execute("SELECT count(*) FROM faces_faces WHERE uri LIKE '%Serena%' AND embedding IS NOT NULL")
        assert kept.fetchall()[0][0] == 0
        columns = [r[0] for r in con.execute("DESCRIBE lookalike_people_forgotten").fetchall()]
        assert "embedding" not in columns
    with pytest.raises(PersonNotFound, match="forgotten"):
        ds.people.forget(first.person_id)
    # the photos change (re-saved): they are embedded again, without the forgotten faces
    for photo in (photos / "Serena_Williams").glob("*.jpg"):
        photo.write_bytes(photo.read_bytes())
        os.utime(photo, (1_900_000_000, 1_900_000_000))
    report_index = ds.index(str(photos), cluster=False)
    assert report_index.updated == 3 and report_index.faces == 0
    hits = ds.search(query, top_k=10).hits
    assert all(_truth(h.uri) != "Serena_Williams" for h in hits)


def test_bad_input_gets_clear_errors(ds: lookalike.Dataset, tmp_path: Path) -> None:
    p = ds.people.list()[0]
    with pytest.raises(PersonNotFound, match="no person 99999"):
        ds.people.name(99999, "x")
    with pytest.raises(PeopleConflict, match="itself"):
        ds.people.merge([p.person_id, p.person_id])
    with pytest.raises(InvalidArgument, match="empty"):
        ds.people.name(p.person_id, "   ")
    with pytest.raises(InvalidArgument, match="at most"):
        ds.people.name(p.person_id, "x" * 1000)
    with pytest.raises(PersonNotFound, match="no face 424242"):
        ds.people.move([424242], to=p.person_id)
    ds.index(str(DATA / "queries"), table="other", cluster=False)
    other_face = int(ds.people.export("other")[0]["face_id"])  # type: ignore[call-overload]
    with pytest.raises(PersonNotFound, match=f"no face {other_face} in table 'faces'"):
        ds.people.move([other_face], to=p.person_id)
    with pytest.raises(InvalidArgument, match="is not a face of person"):
        ds.people.feature(p.person_id, int(ds.people.show(ds.people.list()[1].person_id)["face_list"][0]["face_id"]))  # type: ignore[index]


def test_a_cluster_run_that_dies_leaves_the_previous_grouping(
    ds: lookalike.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (the one stand-in here): the run fails after it has deleted the old assignments."""
    before = ds.people.export()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(pstore, "insert_persons", boom)
    with pytest.raises(RuntimeError):
        ds.people.cluster(full=True)
    assert ds.people.export() == before


def test_cli_people_commands(clustered: Path, tmp_path: Path) -> None:
    path = tmp_path / "cli.duckdb"
    shutil.copy(clustered, path)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "lookalike.cli", "people", *args, "--dataset", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    persons = json.loads(run("list", "--json").stdout)
    pid = persons[0]["person_id"]
    assert "Grandma" in run("name", str(pid), "Grandma").stdout
    shown = json.loads(run("show", str(pid), "--json").stdout)
    assert shown["name"] == "Grandma" and len(shown["face_list"]) == shown["faces"]
    rows = json.loads(run("export", "--json").stdout)
    assert {"uri", "face", "face_id", "person_id", "person_name"} <= set(rows[0])
    assert sum(1 for r in rows if r["person_name"] == "Grandma") == shown["faces"]
    bad = run("merge", str(pid), str(pid), check=False)
    assert bad.returncode == 1 and "itself" in bad.stderr
    assert run("move", "1", check=False).returncode == 2  # needs --to, --new or --none
    out = json.loads(run("forget", str(pid), "--yes", "--json").stdout)
    assert out["faces_removed"] == shown["faces"]
    again = run("forget", str(pid), "--yes", check=False)
    assert again.returncode == 1 and "forgotten" in again.stderr
    report = json.loads(run("cluster", "--full", "--json").stdout)
    assert report["mode"] == "full"


def test_grouping_leaves_the_dataset_free_while_it_computes_and_redoes_a_run_the_dataset_changed_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "free.duckdb"
    ds = lookalike.open(path)
    ds.index(str(DATA / "gallery"), cluster=False)
    real_plan = grouping._plan
    calls: list[int] = []

    def plan_while_another_process_writes(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            # another process opens the file for writing while the grouping computes: it is free, and what it
            # writes (a new log row for the table) must make the run start again rather than write a stale result
            sql = "INSERT INTO lookalike_people_log (tbl, action, detail) VALUES ('faces', 'note', '{}')"
            code = f"import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute({sql!r}); con.close()"
            done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        return real_plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(grouping, "_plan", plan_while_another_process_writes)
    report = ds.people.cluster(min_faces=2)
    assert len(calls) == 2  # the first result was thrown away
    assert report.persons > 0 and report.assigned > 0
    history = [h["action"] for h in ds.people.history()]
    assert history.count("cluster") == 1 and "note" in history
