"""Security: only indexed objects are read, the token, upload limits, bad uploads, Host and CORS, binding."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import GALLERY, QUERIES, query_photo
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

import lookalike
from lookalike.cli import main as cli_main
from lookalike.errors import InvalidArgument
from lookalike.server.security import check_bind, host_allowed, is_loopback, resolve_token

SECRET = "s3cret-token-for-tests"

TRAVERSALS = [
    "../../etc/passwd",
    "/etc/passwd",
    "file:///etc/passwd",
    "....//....//etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    str(GALLERY / "Tony_Blair" / ".." / ".." / ".." / ".." / "etc" / "passwd"),
    str(GALLERY / "Tony_Blair" / ".." / "Tony_Blair" / "Tony_Blair_0001.jpg"),  # real photo, not as listed
    str(QUERIES / "Tony_Blair_0010.jpg"),  # a real photo on disk that no table holds
    "s3://bucket/key.jpg",
    "http://127.0.0.1:1/x.jpg",
]


def _assert_refused(resp: Any) -> None:
    assert resp.status_code in (400, 404, 422), resp.text
    assert b"root:" not in resp.content
    assert resp.headers["content-type"].startswith("application/json")
    assert "error" in resp.json()


# ---------------------------------------------------------------------------------------------- only indexed objects


@pytest.mark.parametrize("uri", TRAVERSALS)
def test_search_by_uri_reads_only_indexed_objects(client: TestClient, uri: str) -> None:
    resp = client.post("/v1/search", json={"uri": uri, "table": "faces"})
    _assert_refused(resp)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("uri", TRAVERSALS)
def test_full_image_serves_only_indexed_objects(client: TestClient, uri: str) -> None:
    resp = client.get("/v1/tables/faces/image", params={"uri": uri})
    _assert_refused(resp)
    assert resp.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/faces/..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/v1/faces/../../etc/passwd",
        "/v1/faces/1/thumbnail/../../../../etc/passwd",
        "/v1/faces/-1/image",
        "/v1/tables/..%2F..%2Fetc/image?uri=/etc/passwd",
        "/v1/tables/faces/image?uri=",
        "/v1/tables/..%2Fx/faces",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/../../../../etc/passwd",
    ],
)
def test_path_traversal_in_routes(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code in (400, 404, 422), (path, resp.status_code)
    assert b"root:" not in resp.content


# ---------------------------------------------------------------------------------------------- token


@pytest.fixture(scope="module")
def guarded(indexed_dataset: Path) -> Iterator[TestClient]:
    from lookalike.server import create_app

    with TestClient(create_app(indexed_dataset, token=SECRET), base_url="http://127.0.0.1") as c:
        yield c


def _search(client: TestClient, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return client.post("/v1/search", files={"image": query_photo("Tony_Blair").read_bytes()}, headers=headers, **kw)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": SECRET},
        {"X-Token": SECRET},
    ],
)
def test_missing_or_wrong_token_is_refused(guarded: TestClient, headers: dict[str, str] | None) -> None:
    for resp in (
        _search(guarded, headers),
        guarded.get("/v1/tables", headers=headers),
        guarded.get("/v1/tables/faces/faces", headers=headers),
        guarded.get("/v1/faces/1/thumbnail", headers=headers),
        guarded.get("/v1/jobs", headers=headers),
        guarded.post("/v1/index", json={"source": "/etc"}, headers=headers),
        guarded.post("/v1/verify", headers=headers),
    ):
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "unauthorized"
        assert resp.headers["www-authenticate"] == "Bearer"
    jobs = guarded.get("/v1/jobs", headers={"Authorization": f"Bearer {SECRET}"}).json()["jobs"]
    assert jobs == []  # the refused index job was never queued


def test_right_token_is_accepted(guarded: TestClient) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    assert guarded.get("/v1/tables", headers=auth).status_code == 200
    assert _search(guarded, auth).status_code == 200
    # <img> tags cannot send headers: image GETs also take the token from the page's cookie...
    guarded.cookies.set("lookalike_token", SECRET)
    try:
        assert guarded.get("/v1/faces/1/thumbnail").status_code == 200
        # ...but nothing else does
        assert guarded.get("/v1/tables").status_code == 401
        assert _search(guarded).status_code == 401
    finally:
        guarded.cookies.clear()
    # the page and the API description hold no data and need no token; any Host is fine with a token
    assert guarded.get("/").status_code == 200
    assert guarded.get("/openapi.json").status_code == 200
    assert guarded.get("/v1/tables", headers={**auth, "Host": "photos.example"}).status_code == 200


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_TOKEN", "from-env")
    assert resolve_token(None) == "from-env"
    assert resolve_token("given") == "given"
    monkeypatch.setenv("LOOKALIKE_TOKEN", "  ")
    assert resolve_token(None) is None


# ---------------------------------------------------------------------------------------------- uploads


def test_oversized_upload_is_refused(make_client: Any, indexed_dataset: Path) -> None:
    client = make_client(indexed_dataset, max_upload_bytes=2000)
    photo = query_photo("Tony_Blair").read_bytes()
    assert len(photo) > 2000
    resp = client.post("/v1/search", files={"image": ("big.jpg", photo, "image/jpeg")})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "upload_too_large"
    verify = client.post("/v1/verify", files={"image_a": photo, "image_b": photo})
    assert verify.status_code == 413 and verify.json()["error"]["code"] == "upload_too_large"
    # a body far over the limit (two files and some room for fields) is refused from its Content-Length
    huge = client.post("/v1/search", files={"image": ("huge.jpg", b"\xff" * 1_200_000, "image/jpeg")})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "upload_too_large"

    # a chunked body (no Content-Length) is cut off as it streams in
    def chunks() -> Iterator[bytes]:
        for _ in range(1200):
            yield b"x" * 1000

    chunked = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "upload_too_large"


def test_image_with_too_many_pixels_is_refused(make_client: Any, indexed_dataset: Path) -> None:
    client = make_client(indexed_dataset, max_pixels=5000)  # the 100 x 100 query photos have 10,000
    resp = client.post("/v1/search", files={"image": query_photo("Tony_Blair").read_bytes()})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "image_too_large"


@pytest.mark.parametrize(
    "content",
    [
        b"this is a text file, not a photo",
        b"",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,  # a JPEG header and nothing else
    ],
)
def test_non_image_upload_is_refused(client: TestClient, content: bytes) -> None:
    resp = client.post("/v1/search", files={"image": ("photo.jpg", content, "image/jpeg")})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "bad_image"
    verify = client.post("/v1/verify", files={"image_a": content, "image_b": query_photo("Tony_Blair").read_bytes()})
    assert verify.status_code == 400 and verify.json()["error"]["code"] == "bad_image"


def test_truncated_photo_is_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.open(query_photo("Tony_Blair")).save(buf, format="PNG")
    resp = client.post("/v1/search", files={"image": buf.getvalue()[:-200]})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_image"


# ---------------------------------------------------------------------------------------------- Host, CORS, binding


def test_foreign_host_is_refused_without_token(client: TestClient) -> None:
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1"):
        resp = client.get("/v1/tables", headers={"Host": host})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_host", host
    for host in ("127.0.0.1:8000", "localhost", "localhost:1234", "[::1]:8000"):
        assert client.get("/v1/tables", headers={"Host": host}).status_code == 200, host
    assert host_allowed("127.0.0.2:80") and not host_allowed(None) and not host_allowed("")


def test_cors_is_off_unless_configured(client: TestClient, make_client: Any, indexed_dataset: Path) -> None:
    origin = {"Origin": "http://other.example"}
    assert "access-control-allow-origin" not in client.get("/v1/tables", headers=origin).headers
    preflight = client.options("/v1/search", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    open_client = make_client(indexed_dataset, cors_origins=["http://app.example"])
    ok = open_client.get("/v1/tables", headers={"Origin": "http://app.example"})
    assert ok.headers["access-control-allow-origin"] == "http://app.example"
    other = open_client.get("/v1/tables", headers=origin)
    assert "access-control-allow-origin" not in other.headers


def test_binding_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(InvalidArgument):
            check_bind(host, None)
        check_bind(host, "tok")
    monkeypatch.delenv("LOOKALIKE_TOKEN", raising=False)
    out = CliRunner().invoke(cli_main, ["serve", "--dataset", str(tmp_path / "x.duckdb"), "--host", "0.0.0.0"])
    assert out.exit_code == 1
    assert "refusing to listen on '0.0.0.0' without an API token" in out.output


def test_an_indexed_file_that_is_not_a_photo_is_never_shown(
    make_client: Any, dataset_copy: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    secret = folder / "notes.jpg"
    secret.write_bytes(b"TOPSECRET-1234 this file is text")
    lookalike.open(dataset_copy).index(str(secret), table="junk")
    client = make_client(dataset_copy)
    assert client.get("/v1/tables/junk").json()["errors"] == 1
    for resp in (
        client.get("/v1/tables/junk/image", params={"uri": str(secret)}),
        client.post("/v1/search", json={"uri": str(secret), "table": "junk"}),
    ):
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_image"
        assert b"TOPSECRET" not in resp.content


def test_index_only_under_allowed_roots(make_client: Any, tmp_path: Path) -> None:
    """POST /v1/index outside --allow-source is 403; a symlink out of a root is refused, and a folder's symlinks
    to files outside it are not followed."""
    root = tmp_path / "allowed"
    (root / "photos").mkdir(parents=True)
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(GALLERY / "Tony_Blair" / "Tony_Blair_0001.jpg", root / "photos" / "a.jpg")
    shutil.copy(GALLERY / "Tony_Blair" / "Tony_Blair_0002.jpg", outside / "secret.jpg")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "photos" / "leak.jpg").symlink_to(outside / "secret.jpg")
    client = make_client(tmp_path / "roots.duckdb", allow_sources=[str(root), "s3://bucket/faces/"])
    for source in ("/etc", str(outside), str(root / "escape"), str(tmp_path / "*" / "*.jpg"), "s3://bucket/other/"):
        resp = client.post("/v1/index", json={"source": source})
        assert resp.status_code == 403, (source, resp.text)
        err = resp.json()["error"]
        assert err["code"] == "forbidden" and "--allow-source" in err["hint"]
    assert client.get("/v1/jobs").json()["jobs"] == []
    job = client.post("/v1/index", json={"source": str(root / "photos")}).json()
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "succeeded" and job["report"]["added"] == 1, job  # leak.jpg was not followed
    # loopback default: the working directory only
    default = make_client(tmp_path / "default.duckdb")
    assert default.post("/v1/index", json={"source": str(root)}).status_code == 403
