"""lookalike.storage against fake-gcs-server on 127.0.0.1, started by the ``gcs_server`` fixture."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lookalike import storage
from lookalike.errors import ObjectNotFound, StorageError
from lookalike.storage import StorageOptions, exists, list_objects, read_many, read_object, stat_object

if TYPE_CHECKING:
    from conftest import GCSServer

pytestmark = pytest.mark.gcs

BUCKET = "lookalike-photos"

# key in the bucket -> index into the gallery files
LAYOUT = {
    "photos/a/x.jpg": 0,
    "photos/a/y.jpg": 1,
    "photos/b/z.jpg": 2,
    "photos/.hidden/h.jpg": 3,
    "photos/notes.txt": 4,
    "other/o.jpg": 5,
}


@pytest.fixture(scope="module")
def gcs_photos(gcs_server: GCSServer, gallery_files: list[Path]) -> dict[str, Path]:
    """Upload a few gallery photos with gcsfs; return {key: local file}."""
    fs = gcs_server.bucket(BUCKET)
    uploaded = {}
    for key, index in LAYOUT.items():
        fs.put_file(str(gallery_files[index]), f"{BUCKET}/{key}")
        uploaded[key] = gallery_files[index]
    return uploaded


class _ForbiddenHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with 403, like GCS does for a caller without rights."""

    def _forbid(self) -> None:
        body = b'{"error": {"code": 403, "message": "caller does not have storage.objects.get access"}}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _forbid

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def forbidding_endpoint() -> Iterator[str]:
    """A local HTTP server that refuses everything with 403."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForbiddenHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _uris(source: str, server: GCSServer) -> list[str]:
    return [info.uri for _, info in list_objects([source], options=server.options())]


def test_list_prefix_recursively_images_only(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    assert _uris(f"gs://{BUCKET}/photos", gcs_server) == [
        f"gs://{BUCKET}/photos/a/x.jpg",
        f"gs://{BUCKET}/photos/a/y.jpg",
        f"gs://{BUCKET}/photos/b/z.jpg",
    ]
    assert _uris(f"gcs://{BUCKET}/photos/", gcs_server) == _uris(f"gs://{BUCKET}/photos", gcs_server)
    assert f"gs://{BUCKET}/other/o.jpg" in _uris(f"gs://{BUCKET}", gcs_server)


def test_list_globs(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    assert _uris(f"gs://{BUCKET}/photos/*/x.jpg", gcs_server) == [f"gs://{BUCKET}/photos/a/x.jpg"]
    assert _uris(f"gs://{BUCKET}/photos/**/*.jpg", gcs_server) == _uris(f"gs://{BUCKET}/photos", gcs_server)
    assert _uris(f"gs://{BUCKET}/*/o.jpg", gcs_server) == [f"gs://{BUCKET}/other/o.jpg"]


def test_single_object_is_listed_whatever_its_extension(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    assert _uris(f"gs://{BUCKET}/photos/notes.txt", gcs_server) == [f"gs://{BUCKET}/photos/notes.txt"]


def test_metadata(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    ((_, info),) = list_objects([f"gs://{BUCKET}/photos/a/x.jpg"], options=gcs_server.options())
    content = gcs_photos["photos/a/x.jpg"].read_bytes()
    assert info.uri == f"gs://{BUCKET}/photos/a/x.jpg"
    assert info.size == len(content)
    assert info.content_type == "image/jpeg"
    assert info.updated.tzinfo is not None and info.updated.utcoffset() == UTC.utcoffset(None)
    assert info.etag
    assert info.md5 == hashlib.md5(content).hexdigest()
    assert info.generation and info.generation.isdigit()
    assert info.fingerprint == f"gen:{info.generation}:{len(content)}"
    listed = {i.uri: i for _, i in list_objects([f"gs://{BUCKET}/photos"], options=gcs_server.options())}
    assert listed[info.uri] == info
    assert stat_object(info.uri, options=gcs_server.options()) == info


def test_generation_changes_when_the_object_is_rewritten(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    uri = f"gs://{BUCKET}/rewrite/p.jpg"
    fs = gcs_server.filesystem()
    fs.pipe_file(f"{BUCKET}/rewrite/p.jpg", b"first")
    before = stat_object(uri, options=gcs_server.options())
    fs.pipe_file(f"{BUCKET}/rewrite/p.jpg", b"other")  # same size, new content
    after = stat_object(uri, options=gcs_server.options())
    assert after.generation != before.generation
    assert after.fingerprint != before.fingerprint


def test_read(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    uri = f"gs://{BUCKET}/photos/b/z.jpg"
    assert read_object(uri, options=gcs_server.options()) == gcs_photos["photos/b/z.jpg"].read_bytes()
    assert exists(uri, options=gcs_server.options())
    assert not exists(f"gs://{BUCKET}/photos/b/nope.jpg", options=gcs_server.options())


def test_options_from_environment(
    gcs_server: GCSServer, gcs_photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOKALIKE_GCS_ENDPOINT", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url.removeprefix("http://"))
    assert StorageOptions.from_env().gcs_endpoint_url == gcs_server.endpoint_url
    uri = f"gs://{BUCKET}/other/o.jpg"
    assert read_object(uri) == gcs_photos["other/o.jpg"].read_bytes()


def test_read_many_keeps_order_and_reports_the_missing_one(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    keys = ["photos/a/x.jpg", "photos/missing.jpg", "other/o.jpg"]
    uris = [f"gs://{BUCKET}/{key}" for key in keys]
    results = list(read_many(uris, options=gcs_server.options(), workers=4))
    assert [uri for uri, _ in results] == uris
    assert results[0][1] == gcs_photos["photos/a/x.jpg"].read_bytes()
    assert isinstance(results[1][1], ObjectNotFound) and uris[1] in str(results[1][1])
    assert results[2][1] == gcs_photos["other/o.jpg"].read_bytes()


def test_missing_object_prefix_and_bucket(gcs_server: GCSServer, gcs_photos: dict[str, Path]) -> None:
    options = gcs_server.options()
    for uri in (f"gs://{BUCKET}/photos/nope.jpg", "gs://no-such-bucket/a.jpg"):
        with pytest.raises(ObjectNotFound, match=uri):
            read_object(uri, options=options)
    for source in (f"gs://{BUCKET}/nope", "gs://no-such-bucket", f"gs://{BUCKET}/nope/**/*.jpg"):
        with pytest.raises(ObjectNotFound, match=source.replace("*", r"\*")) as info:
            list(list_objects([source], options=options))
        assert isinstance(info.value, StorageError)


def test_forbidden_is_a_storage_error_not_a_missing_object(forbidding_endpoint: str) -> None:
    options = StorageOptions(gcs_endpoint_url=forbidding_endpoint, gcs_token="anon", gcs_project="p")
    uri = f"gs://{BUCKET}/photos/a/x.jpg"
    with pytest.raises(StorageError, match=uri) as info:
        read_object(uri, options=options)
    assert not isinstance(info.value, ObjectNotFound)
    assert info.value.code == "permission_denied"
    with pytest.raises(StorageError, match=f"gs://{BUCKET}/photos") as listing:
        list(list_objects([f"gs://{BUCKET}/photos"], options=options))
    assert not isinstance(listing.value, ObjectNotFound)


def test_filesystem_is_built_once_per_options(gcs_server: GCSServer) -> None:
    assert storage._filesystem("gs", gcs_server.options()) is storage._filesystem("gs", gcs_server.options())
