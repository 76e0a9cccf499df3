"""The API against a real ``lookalike serve`` (uvicorn) on 127.0.0.1, over plain HTTP."""

from __future__ import annotations

import json

from _support import GALLERY, LiveServer, multipart, person_of, query_photo


def test_search_over_http(live_server: LiveServer) -> None:
    for person in ("Junichiro_Koizumi", "Gerhard_Schroeder", "Serena_Williams"):
        body, ctype = multipart(
            {"table": "faces", "top_k": "3", "distance": "cosine"},
            {"image": (f"{person}.jpg", query_photo(person).read_bytes())},
        )
        status, headers, raw = live_server.request("/v1/search", data=body, headers={"Content-Type": ctype})
        assert status == 200, raw
        assert headers.get("x-request-id")
        result = json.loads(raw)
        assert person_of(result["results"][0]["uri"]) == person
        assert result["results"][0]["same_person"] is True
        assert len(result["faces"]) >= 1 and len(result["faces"][0]["bbox"]) == 4


def test_json_uri_search_thumbnail_and_tables_over_http(live_server: LiveServer) -> None:
    uri = str(GALLERY / "Jean_Chretien" / "Jean_Chretien_0001.jpg")
    status, _, raw = live_server.request(
        "/v1/search",
        data=json.dumps({"uri": uri, "top_k": 2}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, raw
    rows = json.loads(raw)["results"]
    assert rows[0]["uri"] == uri and person_of(rows[1]["uri"]) == "Jean_Chretien"
    status, headers, raw = live_server.request(f"/v1/faces/{rows[1]['face_id']}/thumbnail")
    assert status == 200 and headers["content-type"] == "image/jpeg" and raw[:2] == b"\xff\xd8"
    status, _, raw = live_server.request("/v1/tables")
    assert status == 200 and json.loads(raw)["tables"][0]["faces"] == 36


def test_security_cases_over_http(live_server: LiveServer) -> None:
    for uri in ("../../etc/passwd", "/etc/passwd", str(query_photo("Tony_Blair"))):
        status, _, raw = live_server.request(
            "/v1/search", data=json.dumps({"uri": uri}).encode(), headers={"Content-Type": "application/json"}
        )
        assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"
        status, _, raw = live_server.request("/v1/tables/faces/image?uri=" + uri.replace("/", "%2F"))
        assert status == 404 and b"root:" not in raw
    body, ctype = multipart({}, {"image": ("notes.txt", b"just some text")})
    status, _, raw = live_server.request("/v1/search", data=body, headers={"Content-Type": ctype})
    assert status == 400 and json.loads(raw)["error"]["code"] == "bad_image"
    big = b"\xff\xd8\xff" + b"\x00" * (20 * 1024 * 1024)  # one byte over the default 20 MiB
    body, ctype = multipart({}, {"image": ("big.jpg", big[: 20 * 1024 * 1024 + 1])})
    status, _, raw = live_server.request("/v1/search", data=body, headers={"Content-Type": ctype})
    assert status == 413 and json.loads(raw)["error"]["code"] == "upload_too_large"
    status, _, raw = live_server.request("/v1/tables", headers={"Host": "attacker.example"})
    assert status == 400 and json.loads(raw)["error"]["code"] == "invalid_host"
