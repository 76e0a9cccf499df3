"""'Same person' decided by the table's persons (``lookalike.people.decide``), on the bundled real photos.

``lookalike index`` groups new faces into persons after the job (unless ``--no-cluster``); then a search row
whose face and query are both in persons is decided by them (``same_person_basis == "person"``), ``verify`` with
a table too, and a user's threshold still decides on the distance alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lookalike

DATA = Path(__file__).resolve().parents[1] / "data"


def _truth(uri: str) -> str:
    return Path(uri).parent.name if Path(uri).parent.name != "queries" else Path(uri).stem.rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> lookalike.Dataset:
    dataset = lookalike.open(tmp_path_factory.mktemp("decide") / "decide.duckdb")
    report = dataset.index(str(DATA / "gallery"))
    assert report.people is not None and "error" not in report.people
    assert report.people["mode"] == "incremental" and int(report.people["persons"]) >= 8  # type: ignore[call-overload]
    return dataset


def test_rows_of_a_photo_in_the_table_are_decided_by_its_person(ds: lookalike.Dataset) -> None:
    query = str(DATA / "gallery" / "Tony_Blair" / "Tony_Blair_0001.jpg")
    hits = ds.search(query, top_k=8, largest=True).hits
    assert hits[0].uri == query and hits[0].distance < 0.01
    own = hits[0].person_id
    assert own is not None
    for h in hits:
        if h.person_id == own:
            assert h.same_person is True and h.same_person_basis == "person" and _truth(h.uri) == "Tony_Blair"
        elif h.person_id is not None:
            assert h.same_person in (False, None) and h.same_person_basis == "person"
            assert _truth(h.uri) != "Tony_Blair"
        else:
            assert h.same_person_basis == "distance"
    assert any(h.person_id not in (None, own) and h.same_person is False for h in hits)


def test_a_new_photo_joins_its_person_and_rows_follow(ds: lookalike.Dataset) -> None:
    for name in ("Colin_Powell", "Serena_Williams", "Junichiro_Koizumi"):
        hits = ds.search(str(DATA / "queries" / f"{name}_0010.jpg"), top_k=6, largest=True).hits
        mine = [h for h in hits if _truth(h.uri) == name]
        assert mine and all(h.same_person is True and h.same_person_basis == "person" for h in mine), name
        assert all(h.same_person is not True for h in hits if _truth(h.uri) != name), name


def test_a_users_threshold_decides_on_the_distance_alone(ds: lookalike.Dataset) -> None:
    hits = ds.search(str(DATA / "queries" / "Colin_Powell_0010.jpg"), top_k=6, largest=True, threshold=1.5).hits
    assert all(h.same_person is True and h.same_person_basis == "distance" for h in hits)


def test_verify_with_a_table_uses_its_persons(ds: lookalike.Dataset) -> None:
    a = str(DATA / "queries" / "Colin_Powell_0010.jpg")
    same = ds.verify(a, str(DATA / "gallery" / "Colin_Powell" / "Colin_Powell_0001.jpg"), table="faces")
    assert same.same_person is True and same.same_person_basis == "person"
    assert same.persons[0] is not None and same.persons[0] == same.persons[1]
    other = ds.verify(a, str(DATA / "gallery" / "Tony_Blair" / "Tony_Blair_0001.jpg"), table="faces")
    assert other.same_person is False and other.same_person_basis == "person"
    assert other.persons[0] != other.persons[1]
    assert other.to_dict()["persons"] == list(other.persons)
    plain = ds.verify(a, str(DATA / "gallery" / "Colin_Powell" / "Colin_Powell_0001.jpg"))
    assert plain.same_person_basis == "distance" and plain.persons == (None, None)


def test_no_cluster_leaves_the_decision_to_the_distance(tmp_path: Path) -> None:
    ds = lookalike.open(tmp_path / "plain.duckdb")
    report = ds.index(str(DATA / "gallery"), cluster=False)
    assert report.people is None and ds.people.list() == []
    hits = ds.search(str(DATA / "queries" / "Colin_Powell_0010.jpg"), top_k=3).hits
    assert all(h.same_person_basis == "distance" and h.person_id is None for h in hits)
    again = ds.index(str(DATA / "gallery"))  # nothing changed: no grouping run either
    assert again.people is None


def test_cli_index_groups_and_says_so(tmp_path: Path) -> None:
    def index(*extra: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "lookalike.cli", "index", str(DATA / "gray"), "--json", *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    grouped = index("--dataset", str(tmp_path / "a.duckdb"))
    assert isinstance(grouped["people"], dict) and grouped["people"]["faces"] == 9  # type: ignore[index]
    plain = index("--dataset", str(tmp_path / "b.duckdb"), "--no-cluster")
    assert plain["people"] is None
    query = str(DATA / "gray" / "Bill_Gates" / "Bill_Gates_0001.jpg")
    rows = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", "search", query, "--dataset", str(tmp_path / "a.duckdb"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rows.returncode == 0, rows.stderr
    first = json.loads(rows.stdout)[0]
    assert first["same_person_basis"] == "person" and first["same_person"] is True
