"""``/v1/people`` through the real app: the bundled gallery (12 people x 3 photos) grouped, named, merged, split,
hidden and forgotten, every error with its status and a message naming the input, and edits while a server
serves (the edit is written by the server's helper process; the catalog shows it at once)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _support import GALLERY, LiveServer, multipart, person_of, query_photo, start_server, stop_server
from fastapi.testclient import TestClient

import lookalike
from lookalike.server.routes import media

# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture()
def people_client(dataset_copy: Path, make_client: Callable[..., TestClient]) -> TestClient:
    """A client on a private copy of the gallery, grouped into persons through the API, with a second table
    ``other`` (Tony Blair's photos again) whose faces must not be accepted by edits of ``faces``."""
    lookalike.open(dataset_copy).index(str(GALLERY / "Tony_Blair"), table="other", cluster=False)
    client = make_client(dataset_copy)
    resp = client.post("/v1/people/cluster", json={})
    assert resp.status_code == 200, resp.text
    return client


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _error(resp: Any, status: int, code: str, *needles: str) -> str:
    """Assert an error answer: its status, code, and that its message names every needle."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    for needle in needles:
        assert needle in err["message"], f"{needle!r} not in {err['message']!r}"
    return str(err["message"])


def _people(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    body = _ok(client.get("/v1/people", params=params))
    people: list[dict[str, Any]] = body["people"]
    return people


def _person_of(client: TestClient, gallery_person: str) -> dict[str, Any]:
    """The person holding most of ``gallery_person``'s faces, with its face list."""
    rows = _ok(client.get("/v1/people/export"))["rows"]
    ids = [r["person_id"] for r in rows if person_of(r["uri"]) == gallery_person and r["person_id"] is not None]
    assert ids, f"{gallery_person} is in no person"
    best = max(set(ids), key=ids.count)
    detail: dict[str, Any] = _ok(client.get(f"/v1/people/{best}"))
    return detail


def _search(client: TestClient, person: str, **fields: Any) -> dict[str, Any]:
    photo = query_photo(person)
    with photo.open("rb") as fh:
        resp = client.post(
            "/v1/search", files={"image": (photo.name, fh, "image/jpeg")}, data={k: str(v) for k, v in fields.items()}
        )
    body: dict[str, Any] = _ok(resp)
    return body


# ---------------------------------------------------------------------------------------------- reading


def test_cluster_list_show_export(people_client: TestClient) -> None:
    client = people_client
    again = _ok(client.post("/v1/people/cluster", json={"table": "faces"}))
    assert again["mode"] == "incremental" and again["table"] == "faces" and again["new_persons"] == 0
    people = _people(client)
    assert 8 <= len(people) <= 12 and again["persons"] == len(people)
    rows = _ok(client.get("/v1/people/export"))["rows"]
    assert len(rows) == 36 and {"uri", "face", "face_id", "person_id", "person_name"} <= set(rows[0])
    assert sum(p["faces"] for p in people) == sum(1 for r in rows if r["person_id"] is not None)
    for p in people:  # every person is one gallery person: look-alike politicians, never mixed
        detail = _ok(client.get(f"/v1/people/{p['person_id']}"))
        assert detail["table"] == "faces" and detail["faces"] == len(detail["face_list"]) == p["faces"]
        assert len({person_of(f["uri"]) for f in detail["face_list"]}) == 1, detail["face_list"]
        assert detail["feature_face_id"] in {f["face_id"] for f in detail["face_list"]}
        assert all(f["bbox"] and f["manual"] is False for f in detail["face_list"])
    assert _ok(client.get("/v1/people", params={"table": "other"}))["people"] == []  # never grouped
    history = _ok(client.get("/v1/people/history", params={"limit": 5}))["entries"]
    assert [e["action"] for e in history] == ["cluster", "cluster"] and history[0]["detail"]["mode"] == "incremental"
    full = _ok(client.post("/v1/people/cluster", json={"full": True, "min_faces": 2, "threshold": 0.5}))
    assert full["mode"] == "full" and full["min_faces"] == 2 and full["threshold"] == 0.5


def test_unknown_table_and_person(people_client: TestClient) -> None:
    client = people_client
    _error(client.get("/v1/people", params={"table": "nope"}), 404, "table_not_found", "'nope'")
    _error(client.post("/v1/people/cluster", json={"table": "nope"}), 404, "table_not_found", "'nope'")
    _error(client.get("/v1/people/987654"), 404, "person_not_found", "987654")
    for path, body in [
        ("/v1/people/987654/name", {"name": "X"}),
        ("/v1/people/987654/hide", {"hidden": True}),
        ("/v1/people/987654/feature", {"face_id": 1}),
        ("/v1/people/987654/forget", {}),
    ]:
        _error(client.post(path, json=body), 404, "person_not_found", "987654")
    _error(client.delete("/v1/people/987654"), 404, "person_not_found", "987654")
    assert client.post("/v1/people/1/name", json={"name": "x", "extra": 1}).status_code == 422
    assert client.get("/v1/people/-1").status_code == 422


def test_people_routes_need_the_token(dataset_copy: Path, make_client: Callable[..., TestClient]) -> None:
    client = make_client(dataset_copy, token="people-secret")
    client.cookies.set("lookalike_token", "people-secret")  # the thumbnails' cookie authorises nothing here
    for resp in [
        client.get("/v1/people"),
        client.get("/v1/people/1"),
        client.get("/v1/people/export"),
        client.get("/v1/people/history"),
        client.post("/v1/people/cluster", json={}),
        client.post("/v1/people/1/name", json={"name": "x"}),
        client.post("/v1/people/merge", json={"person_ids": [1, 2]}),
        client.post("/v1/people/move", json={"face_ids": [1]}),
        client.post("/v1/people/1/forget", json={}),
        client.delete("/v1/people/1"),
    ]:
        _error(resp, 401, "unauthorized")
    client.cookies.clear()
    resp = client.get("/v1/people", headers={"Authorization": "Bearer people-secret"})
    assert _ok(resp) == {"table": "faces", "people": []}  # not grouped yet


# ---------------------------------------------------------------------------------------------- editing


def test_name_and_the_search_rows_show_it(people_client: TestClient) -> None:
    client = people_client
    before = _search(client, "Colin_Powell", top_k=3)["results"][0]  # the catalog has read the persons now
    assert person_of(before["uri"]) == "Colin_Powell" and before["person_id"] is not None
    assert before["person_name"] is None
    pid = before["person_id"]
    named = _ok(client.post(f"/v1/people/{pid}/name", json={"name": "  Colin Powell  "}))
    assert named["name"] == "Colin Powell" and named["confirmed"] is True
    after = _search(client, "Colin_Powell", top_k=3)["results"]
    assert after[0]["person_name"] == "Colin Powell"  # at once: not the snapshot from before the edit
    assert all(r["person_name"] == "Colin Powell" for r in after if r["person_id"] == pid)
    assert _people(client)[0]["name"] == "Colin Powell"  # named persons first

    by_person = _search(client, "Colin_Powell", top_k=4, people="true")["results"]
    assert by_person[0]["person_id"] == pid and by_person[0]["person_name"] == "Colin Powell"
    assert len({r["person_id"] for r in by_person}) == len(by_person) == 4
    assert all(r["person_id"] is not None for r in by_person)
    ref = _ok(client.post("/v1/search", json={"face_id": before["face_id"], "top_k": 2, "people": True}))
    assert ref["results"][0]["person_id"] == pid


def test_name_errors(people_client: TestClient) -> None:
    client = people_client
    pid = _people(client)[0]["person_id"]
    _error(client.post(f"/v1/people/{pid}/name", json={"name": ""}), 400, "invalid_argument", "empty")
    _error(client.post(f"/v1/people/{pid}/name", json={"name": "   "}), 400, "invalid_argument", "empty")
    _error(client.post(f"/v1/people/{pid}/name", json={"name": "x" * 1000}), 400, "invalid_argument", "1000")
    _error(client.post(f"/v1/people/{pid}/name", json={"name": "a\nb"}), 400, "invalid_argument", "control")
    raw = b'{"name": "bad \\ud800 half"}'  # valid JSON, not storable text
    resp = client.post(f"/v1/people/{pid}/name", content=raw, headers={"Content-Type": "application/json"})
    _error(resp, 400, "invalid_argument", "name")
    assert _ok(client.get(f"/v1/people/{pid}"))["name"] is None  # nothing was saved


def test_merge(people_client: TestClient) -> None:
    client = people_client
    a, b = _person_of(client, "Jacques_Chirac"), _person_of(client, "Jean_Chretien")
    _ok(client.post(f"/v1/people/{b['person_id']}/name", json={"name": "Jean"}))
    kept = _ok(client.post("/v1/people/merge", json={"person_ids": [a["person_id"], b["person_id"]]}))
    assert kept["person_id"] == a["person_id"] and kept["faces"] == a["faces"] + b["faces"]
    assert kept["name"] == "Jean"  # the first had none: it takes the other's
    _error(client.get(f"/v1/people/{b['person_id']}"), 404, "person_not_found", str(b["person_id"]))
    assert b["person_id"] not in {p["person_id"] for p in _people(client)}

    pid = a["person_id"]
    msg = _error(client.post("/v1/people/merge", json={"person_ids": [pid, pid]}), 409, "people_conflict", str(pid))
    assert "itself" in msg
    _error(client.post("/v1/people/merge", json={"person_ids": [pid, 987654]}), 404, "person_not_found", "987654")
    _error(client.post("/v1/people/merge", json={"person_ids": [pid]}), 400, "invalid_argument", "two")


def test_move_and_unassign(people_client: TestClient) -> None:
    client = people_client
    old = _person_of(client, "Hugo_Chavez")
    face = old["face_list"][0]["face_id"]
    new = _ok(client.post("/v1/people/move", json={"face_ids": [face], "to": None}))
    assert new["person_id"] != old["person_id"] and new["faces"] == 1 and new["confirmed"] is True
    detail = _ok(client.get(f"/v1/people/{new['person_id']}"))
    assert [(f["face_id"], f["manual"]) for f in detail["face_list"]] == [(face, True)]
    assert _ok(client.get(f"/v1/people/{old['person_id']}"))["faces"] == old["faces"] - 1

    back = _ok(client.post("/v1/people/move", json={"face_ids": [face], "to": old["person_id"]}))
    assert back["person_id"] == old["person_id"] and back["faces"] == old["faces"]
    _error(client.get(f"/v1/people/{new['person_id']}"), 404, "person_not_found")  # left without faces

    other_face = _ok(client.get("/v1/tables/other/faces"))["faces"][0]["face_id"]
    body = {"face_ids": [other_face], "to": None}
    _error(client.post("/v1/people/move", json=body), 404, "person_not_found", str(other_face), "'faces'")
    _error(client.post("/v1/people/move", json={"face_ids": [face], "to": 987654}), 404, "person_not_found", "987654")
    _error(client.post("/v1/people/move", json={"face_ids": []}), 400, "invalid_argument", "face")
    two = [f["face_id"] for f in _person_of(client, "Ariel_Sharon")["face_list"][:1]] + [face]
    _ok(client.post("/v1/people/move", json={"face_ids": two, "to": None}))  # two photos: allowed

    out = _ok(client.post("/v1/people/unassign", json={"face_ids": [face]}))
    assert out == {"table": "faces", "unassigned": 1}
    rows = _ok(client.get("/v1/people/export"))["rows"]
    assert next(r for r in rows if r["face_id"] == face)["person_id"] is None
    _error(client.post("/v1/people/unassign", json={"face_ids": [other_face]}), 404, "person_not_found")


def test_hide_and_feature(people_client: TestClient) -> None:
    client = people_client
    person = _person_of(client, "Serena_Williams")
    pid = person["person_id"]
    assert _ok(client.post(f"/v1/people/{pid}/hide", json={}))["hidden"] is True
    assert pid not in {p["person_id"] for p in _people(client)}
    assert pid in {p["person_id"] for p in _people(client, include_hidden=True)}
    assert _ok(client.post(f"/v1/people/{pid}/hide", json={"hidden": False}))["hidden"] is False
    assert pid in {p["person_id"] for p in _people(client)}

    choice = person["face_list"][-1]["face_id"]
    shown = _ok(client.post(f"/v1/people/{pid}/feature", json={"face_id": choice}))
    assert shown["feature_face_id"] == choice and shown["feature_chosen"] is True
    stranger = _person_of(client, "Donald_Rumsfeld")["face_list"][0]["face_id"]
    msg = _error(client.post(f"/v1/people/{pid}/feature", json={"face_id": stranger}), 400, "invalid_argument")
    assert str(stranger) in msg and str(pid) in msg


def test_forget(people_client: TestClient) -> None:
    client = people_client
    person = _person_of(client, "Junichiro_Koizumi")
    pid, faces = person["person_id"], [f["face_id"] for f in person["face_list"]]
    hits = _search(client, "Junichiro_Koizumi", top_k=5)["results"]
    assert hits[0]["face_id"] in faces
    thumb = f"/v1/faces/{faces[0]}/thumbnail?table=faces"
    assert client.get(thumb).status_code == 200  # now in the thumbnail cache

    report = _ok(client.post(f"/v1/people/{pid}/forget", json={"table": "faces"}))
    assert report["person_id"] == pid and report["table"] == "faces"
    assert sorted(report["face_ids"]) == sorted(faces) and report["faces_removed"] == len(faces)

    assert not [key for key in media._thumb_cache if key[1] in faces]  # dropped from the server's cache
    for face in faces:  # gone at once: thumbnails, photos, faces, searches
        _error(client.get(f"/v1/faces/{face}/thumbnail?table=faces"), 404, "not_found", str(face))
        _error(client.get(f"/v1/faces/{face}"), 404, "not_found", str(face))
        _error(client.get(f"/v1/faces/{face}/image"), 404, "not_found", str(face))
    after = _search(client, "Junichiro_Koizumi", top_k=10)["results"]
    assert after and not {r["face_id"] for r in after} & set(faces)
    assert not {r["uri"] for r in after} & {f["uri"] for f in person["face_list"]}
    rows = _ok(client.get("/v1/people/export"))["rows"]
    assert not {r["face_id"] for r in rows} & set(faces)

    again = client.post(f"/v1/people/{pid}/forget", json={})
    assert "forgotten" in _error(again, 404, "person_not_found", str(pid))
    _error(client.delete(f"/v1/people/{pid}"), 404, "person_not_found", str(pid))
    _error(client.get(f"/v1/people/{pid}"), 404, "person_not_found", "forgotten")

    other = _person_of(client, "George_W_Bush")
    gone = _ok(client.delete(f"/v1/people/{other['person_id']}", params={"table": "faces"}))
    assert gone["faces_removed"] == other["faces"]
    assert [e["action"] for e in _ok(client.get("/v1/people/history"))["entries"][:2]] == ["forget", "forget"]


def test_a_writer_process_that_died_is_started_again(people_client: TestClient) -> None:
    client = people_client
    pid = _people(client)[0]["person_id"]
    writer = client.app.state.people_writer  # type: ignore[attr-defined]
    helper = writer._proc
    assert helper is not None and helper.poll() is None  # the cluster of the fixture started it
    helper.kill()
    helper.wait(timeout=10)
    assert _ok(client.post(f"/v1/people/{pid}/name", json={"name": "Again"}))["name"] == "Again"
    assert writer._proc is not helper and writer._proc.poll() is None


# ---------------------------------------------------------------------------------------------- index jobs


def test_an_index_job_groups_the_new_faces(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    client = make_client(tmp_path / "fresh.duckdb", allow_sources=[str(GALLERY)])
    job = _ok(client.post("/v1/index", json={"source": str(GALLERY)}), 202)
    deadline = time.monotonic() + 120
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = _ok(client.get(f"/v1/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    report = job["people"]
    assert report["mode"] == "incremental" and report["faces"] == 36 and report["persons"] >= 8
    assert len(_people(client)) == report["persons"]
    assert _search(client, "Hugo_Chavez", top_k=1)["results"][0]["person_id"] is not None


# ---------------------------------------------------------------------------------------------- while serving


_HOLD_LOCK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: no other process can open the file now
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def _live_search(server: LiveServer, person: str) -> dict[str, Any]:
    body, ctype = multipart({"top_k": "1"}, {"image": ("q.jpg", query_photo(person).read_bytes())})
    status, _, raw = server.request("/v1/search", data=body, headers={"Content-Type": ctype}, timeout=20)
    assert status == 200, raw
    result: dict[str, Any] = json.loads(raw)
    return result


def _live_post(server: LiveServer, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, raw = server.request(
        path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, timeout=60
    )
    return status, json.loads(raw)


def test_edits_while_a_server_serves_and_another_process_writes(indexed_dataset: Path, tmp_path: Path) -> None:
    """``lookalike serve`` as users start it: an edit waits out another process's write lock, searches keep
    answering meanwhile, and the next search shows the edit."""
    dataset = tmp_path / "served.duckdb"
    shutil.copy(indexed_dataset, dataset)
    lookalike.open(dataset).people.cluster()
    server = start_server(dataset, tmp_path / "serve.log")
    try:
        first = _live_search(server, "Ariel_Sharon")["results"][0]
        pid = first["person_id"]
        assert pid is not None and first["person_name"] is None
        status, named = _live_post(server, f"/v1/people/{pid}/name", {"name": "Ariel"})
        assert status == 200 and named["name"] == "Ariel"
        assert _live_search(server, "Ariel_Sharon")["results"][0]["person_name"] == "Ariel"

        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(dataset)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        answers: list[tuple[int, dict[str, Any]]] = []
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
            edit = threading.Thread(
                target=lambda: answers.append(_live_post(server, f"/v1/people/{pid}/name", {"name": "Ariel S."}))
            )
            edit.start()
            time.sleep(1.0)
            during = _live_search(server, "Ariel_Sharon")  # answered from the catalog's last read
            assert during["stale"] is True and during["results"][0]["person_name"] == "Ariel"
            assert not answers, "the edit cannot have been written while another process held the file"
        finally:
            assert holder.stdin is not None
            holder.stdin.write(b"\n")
            holder.stdin.close()
            holder.wait(timeout=10)
        edit.join(timeout=60)
        assert answers and answers[0][0] == 200, answers
        assert answers[0][1]["name"] == "Ariel S."
        time.sleep(0.6)  # the catalog's refresh interval: the next look reads the file again
        assert _live_search(server, "Ariel_Sharon")["results"][0]["person_name"] == "Ariel S."
        status, _, raw = server.request(f"/v1/people/{pid}")
        assert status == 200 and json.loads(raw)["name"] == "Ariel S."
    finally:
        stop_server(server)
