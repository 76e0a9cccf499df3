"""The REST API through FastAPI's TestClient: search, verify, tables, faces, images, index jobs, errors."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _support import GALLERY, PEOPLE, person_of, query_photo
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

import lookalike
from lookalike.cli import main as cli_main


def _search(client: TestClient, photo: Path, **fields: Any) -> dict[str, Any]:
    with photo.open("rb") as fh:
        resp = client.post(
            "/v1/search", files={"image": (photo.name, fh, "image/jpeg")}, data={k: str(v) for k, v in fields.items()}
        )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _jpeg(resp: Any) -> Image.Image:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    assert resp.content[:3] == b"\xff\xd8\xff"
    img = Image.open(io.BytesIO(resp.content))
    img.load()
    return img


# ---------------------------------------------------------------------------------------------- search


def test_search_upload_finds_every_person_first(client: TestClient) -> None:
    for person in PEOPLE:
        body = _search(client, query_photo(person), table="faces", top_k=3, distance="cosine")
        assert body["faces"], f"no face found in {person}'s query"
        main_face = max(body["faces"], key=lambda f: (f["bbox"][2] - f["bbox"][0]) * (f["bbox"][3] - f["bbox"][1]))
        rows = [r for r in body["results"] if r["query_face"] == main_face["face"]]
        assert [r["rank"] for r in rows] == [1, 2, 3]
        assert person_of(rows[0]["uri"]) == person, f"{person}: first match is {rows[0]['uri']}"
        assert rows[0]["same_person"] is True
        assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    assert body["table"] == "faces" and body["distance"] == "cosine"
    assert body["image"] == {"width": 100, "height": 100}
    assert body["stale"] is False and body["table_version"] >= 1


def test_search_rows_equal_the_cli_json(client: TestClient, indexed_dataset: Path) -> None:
    photo = query_photo("Tony_Blair")
    body = _search(client, photo, top_k=4, distance="euclidean")
    out = CliRunner().invoke(
        cli_main,
        ["search", str(photo), "--dataset", str(indexed_dataset), "--top-k", "4", "--distance", "euclidean", "--json"],
    )
    assert out.exit_code == 0, out.output
    cli_rows = json.loads(out.output)
    assert len(body["results"]) == len(cli_rows) == 4
    for api_row, cli_row in zip(body["results"], cli_rows, strict=True):
        assert api_row.keys() == cli_row.keys()
        assert api_row["query_uri"] == "<upload>"
        assert {k: v for k, v in api_row.items() if k != "query_uri"} == {
            k: v for k, v in cli_row.items() if k != "query_uri"
        }
    # the query faces' boxes come with the rows
    assert body["faces"][0]["bbox"] == [round(v, 1) for v in cli_rows[0]["query_bbox"]]


def test_search_by_indexed_uri_and_by_face_id(client: TestClient) -> None:
    uri = str(GALLERY / "Serena_Williams" / "Serena_Williams_0002.jpg")
    resp = client.post("/v1/search", json={"uri": uri, "table": "faces", "top_k": 2})
    assert resp.status_code == 200, resp.text
    rows = resp.json()["results"]
    assert rows[0]["uri"] == uri and rows[0]["distance"] == pytest.approx(0.0, abs=1e-4)
    assert rows[0]["query_uri"] == uri
    assert person_of(rows[1]["uri"]) == "Serena_Williams"

    by_face = client.post("/v1/search", json={"face_id": rows[0]["face_id"], "top_k": 2})
    assert by_face.status_code == 200, by_face.text
    assert [r["face_id"] for r in by_face.json()["results"]] == [r["face_id"] for r in rows]


def test_search_options_are_validated(client: TestClient) -> None:
    photo = query_photo("Hugo_Chavez")
    for fields, status, code in [
        ({"top_k": "0"}, 422, "invalid_request"),
        ({"top_k": "many"}, 422, "invalid_request"),
        ({"distance": "manhattan"}, 400, "invalid_argument"),
        ({"table": "nope"}, 404, "table_not_found"),
        ({"colour": "red"}, 422, "invalid_request"),
    ]:
        with photo.open("rb") as fh:
            resp = client.post("/v1/search", files={"image": fh}, data=fields)
        assert resp.status_code == status, (fields, resp.text)
        assert resp.json()["error"]["code"] == code
    missing = client.post("/v1/search", data={"top_k": "3"}, files={"other": b"x"})
    assert missing.status_code == 400 and "image" in missing.json()["error"]["message"]
    assert client.post("/v1/search", json=[1, 2]).json()["error"]["code"] == "bad_request"
    both = client.post("/v1/search", json={"uri": "a", "face_id": 1})
    assert both.status_code == 400
    text = client.post("/v1/search", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and text.json()["error"]["code"] == "unsupported_media_type"


def test_photo_without_a_face(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (200, 180, 160)).save(buf, format="PNG")
    resp = client.post("/v1/search", files={"image": ("blank.png", buf.getvalue(), "image/png")})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "no_face"


def test_verify(client: TestClient) -> None:
    def verify(a: Path, b: Path) -> dict[str, Any]:
        with a.open("rb") as fa, b.open("rb") as fb:
            resp = client.post("/v1/verify", files={"image_a": fa, "image_b": fb})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    same = verify(query_photo("Colin_Powell"), GALLERY / "Colin_Powell" / "Colin_Powell_0001.jpg")
    assert same["same_person"] is True and same["distance"] < same["threshold"]
    assert same["a"]["bbox"] and same["model"]
    other = verify(query_photo("Colin_Powell"), GALLERY / "Serena_Williams" / "Serena_Williams_0001.jpg")
    assert other["same_person"] is False
    one = client.post("/v1/verify", files={"image_a": query_photo("Colin_Powell").read_bytes()})
    assert one.status_code == 422 and one.json()["error"]["code"] == "invalid_request"


# ---------------------------------------------------------------------------------------------- tables, faces


def test_tables(client: TestClient) -> None:
    tables = client.get("/v1/tables").json()["tables"]
    assert [t["name"] for t in tables] == ["faces"]
    t = tables[0]
    assert (t["objects"], t["faces"], t["errors"], t["no_face"]) == (36, 36, 0, 0)
    assert t["dim"] == 512 and 0 < t["threshold"] < 2
    assert client.get("/v1/tables/faces").json() == t
    missing = client.get("/v1/tables/facez")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "table_not_found"


def test_faces_are_paged(client: TestClient) -> None:
    first = client.get("/v1/tables/faces/faces", params={"limit": 10}).json()
    assert (first["total"], first["offset"], first["limit"], len(first["faces"])) == (36, 0, 10, 10)
    seen = [f["face_id"] for f in first["faces"]]
    offset = 10
    while offset < first["total"]:
        page = client.get("/v1/tables/faces/faces", params={"offset": offset, "limit": 10}).json()
        seen += [f["face_id"] for f in page["faces"]]
        offset += 10
    assert len(seen) == len(set(seen)) == 36 and seen == sorted(seen)
    face = first["faces"][0]
    assert set(face) == {"face_id", "uri", "face", "bbox"} and len(face["bbox"]) == 4
    assert client.get("/v1/tables/faces/faces", params={"offset": 100}).json()["faces"] == []
    assert client.get("/v1/tables/faces/faces", params={"limit": 0}).status_code == 422
    one = client.get(f"/v1/faces/{face['face_id']}").json()
    assert one == {"table": "faces", **face}


def test_thumbnail_and_full_images(client: TestClient) -> None:
    face = client.get("/v1/tables/faces/faces", params={"limit": 1}).json()["faces"][0]
    thumb = _jpeg(client.get(f"/v1/faces/{face['face_id']}/thumbnail"))
    assert max(thumb.size) <= 192 and min(thumb.size) >= 50  # a crop of a 100 x 100 photo, margin included
    small = _jpeg(client.get(f"/v1/faces/{face['face_id']}/thumbnail", params={"size": 32, "table": "faces"}))
    assert max(small.size) == 32
    full = _jpeg(client.get(f"/v1/faces/{face['face_id']}/image"))
    assert full.size == (100, 100)
    by_uri = _jpeg(client.get("/v1/tables/faces/image", params={"uri": face["uri"]}))
    assert by_uri.size == (100, 100)
    assert client.get("/v1/faces/999999/thumbnail").status_code == 404
    assert client.get("/v1/faces/999999/image").json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------------------------------------- index jobs


def test_index_job_runs_to_completion_with_per_file_errors(
    make_client: Any, dataset_copy: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "new_photos"
    photos.mkdir()
    for name in ("Tony_Blair", "Serena_Williams"):
        shutil.copy(query_photo(name), photos / f"{name}_0010.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a real jpeg")
    client = make_client(dataset_copy, allow_sources=[str(tmp_path)])
    resp = client.post("/v1/index", json={"source": str(photos), "table": "more", "chunk_size": 1})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running") and job["table"] == "more"
    deadline = time.monotonic() + 60
    seen_progress = set()
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/v1/jobs/{job['id']}").json()
        seen_progress.add(job["progress"])
    assert job["status"] == "succeeded", job
    assert (job["total"], job["done"], job["progress"]) == (3, 3, 1.0)
    report = job["report"]
    assert (report["added"], report["failed"], report["faces"]) == (3, 1, 2)
    assert [Path(e["uri"]).name for e in job["errors"]] == ["broken.jpg"]
    assert job["errors"][0]["message"]
    assert job["started_at"] and job["finished_at"]
    assert any(j["id"] == job["id"] for j in client.get("/v1/jobs").json()["jobs"])

    # the new table is there without a restart, and searchable
    assert {t["name"] for t in client.get("/v1/tables").json()["tables"]} == {"faces", "more"}
    body = _search(client, GALLERY / "Tony_Blair" / "Tony_Blair_0002.jpg", table="more", top_k=1)
    assert person_of(body["results"][0]["uri"]) == "new_photos"
    assert "Tony_Blair" in Path(body["results"][0]["uri"]).name


def test_index_job_errors(make_client: Any, dataset_copy: Path, tmp_path: Path) -> None:
    client = make_client(dataset_copy, allow_sources=[str(tmp_path)])
    bad_table = client.post("/v1/index", json={"source": str(tmp_path), "table": "no spaces"})
    assert bad_table.status_code == 400 and bad_table.json()["error"]["code"] == "invalid_argument"
    bad_model = client.post("/v1/index", json={"source": str(tmp_path), "model": "no-such-model"})
    assert bad_model.status_code == 400 and bad_model.json()["error"]["code"] == "unknown_model"
    assert client.post("/v1/index", json={}).status_code == 422
    missing = client.post("/v1/index", json={"source": str(tmp_path / "missing")}).json()
    deadline = time.monotonic() + 60
    while missing["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        missing = client.get(f"/v1/jobs/{missing['id']}").json()
    assert missing["status"] == "failed" and missing["error"]["code"] == "source_error"
    unknown = client.get("/v1/jobs/nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------------------------------------- errors, docs, page


def test_error_shape_and_request_id(client: TestClient) -> None:
    resp = client.get("/v1/tables/nope/faces")
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert set(err) == {"code", "message", "hint", "request_id"}
    assert err["code"] == "table_not_found" and "nope" in err["message"]
    assert err["request_id"] == resp.headers["x-request-id"] and len(err["request_id"]) >= 16
    mine = client.get("/v1/tables/nope", headers={"X-Request-ID": "my-trace-42"})
    assert mine.json()["error"]["request_id"] == "my-trace-42" == mine.headers["x-request-id"]
    ok = client.get("/v1/tables")
    assert ok.headers["x-request-id"] and ok.headers["x-content-type-options"] == "nosniff"
    route = client.get("/v1/no/such/route")
    assert route.status_code == 404 and route.json()["error"]["code"] == "not_found"
    method = client.delete("/v1/tables")
    assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"


def test_docs_page_and_static_files_work_offline(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/search",
        "/v1/verify",
        "/v1/tables",
        "/v1/tables/{table}/faces",
        "/v1/faces/{face_id}/thumbnail",
        "/v1/index",
        "/v1/jobs/{job_id}",
    ):
        assert path in spec["paths"], path
    content = spec["paths"]["/v1/search"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "swagger-ui-bundle.js" in docs.text and "cdn.jsdelivr" not in docs.text  # served from local files
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<title>Lookalike" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        resp = client.get(asset)
        assert resp.status_code == 200 and "http://" not in resp.text and "https://" not in resp.text
    assert "https://" not in page.text


def test_a_crash_is_a_json_500_with_the_request_id(indexed_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.server import create_app

    app = create_app(indexed_dataset)

    def broken() -> list[dict[str, object]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.catalog, "tables", broken)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        resp = c.get("/v1/tables", headers={"X-Request-ID": "crash-1"})
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal_error"
    assert resp.json()["error"]["request_id"] == "crash-1" == resp.headers["x-request-id"]
    assert "boom" not in resp.text  # no internals in the answer


def test_search_uses_the_vector_index_and_keeps_answering_through_a_rebuild(
    dataset_copy: Path, make_client: Callable[..., TestClient]
) -> None:
    """The response says how the index was used; another process rebuilding it changes no answer."""
    lookalike.open(dataset_copy).create_vector_index(index_type="IVF")
    client = make_client(dataset_copy)
    query = {"uri": str(next(GALLERY.glob("Tony_Blair/*.jpg"))), "table": "faces", "top_k": 4}
    first = client.post("/v1/search", json=query).json()
    assert first["index_usage"]["index_usage_mode"] == "FULLY_USED"
    assert first["index_usage"]["index_name"] == "faces_index"
    exact = client.post("/v1/search", json={**query, "exact": True}).json()
    assert exact["index_usage"]["index_usage_mode"] == "UNUSED"
    full = client.post("/v1/search", json={**query, "fraction_lists": 1.0}).json()
    assert [r["face_id"] for r in full["results"]] == [r["face_id"] for r in exact["results"]]
    bad = client.post("/v1/search", json={**query, "fraction_lists": 0})
    assert bad.status_code == 422
    rebuilt = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", "vector-index", "rebuild", "--dataset", str(dataset_copy)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    time.sleep(0.6)  # past the server's snapshot refresh interval
    after = client.post("/v1/search", json={**query, "fraction_lists": 1.0}).json()
    assert after["index_usage"]["index_usage_mode"] == "FULLY_USED"
    assert [r["face_id"] for r in after["results"]] == [r["face_id"] for r in full["results"]]


def test_a_full_queue_answers_503_with_retry_after(
    make_client: Callable[..., TestClient], indexed_dataset: Path
) -> None:
    client = make_client(indexed_dataset, max_queue=2, embed_concurrency=1)
    gate = client.app.state.gate  # type: ignore[attr-defined]
    gate._admitted = gate.capacity  # as if two uploads were being searched or waiting
    with query_photo("Tony_Blair").open("rb") as fh:
        resp = client.post("/v1/search", files={"image": ("q.jpg", fh, "image/jpeg")})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "busy" and int(resp.headers["retry-after"]) >= 1
    gate._admitted = 0
    assert _search(client, query_photo("Tony_Blair"))["results"]
