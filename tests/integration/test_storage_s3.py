"""lookalike.storage against a real S3 server: SeaweedFS on 127.0.0.1, started by the ``s3_server`` fixture."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lookalike import storage
from lookalike.errors import ObjectNotFound, StorageError
from lookalike.storage import exists, list_objects, read_many, read_object, stat_object

if TYPE_CHECKING:
    from conftest import S3Server

pytestmark = pytest.mark.s3

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
def s3_photos(s3_server: S3Server, gallery_files: list[Path]) -> dict[str, Path]:
    """Upload a few gallery photos with s3fs; return {key: local file}."""
    fs = s3_server.bucket(BUCKET)
    uploaded = {}
    for key, index in LAYOUT.items():
        fs.put_file(str(gallery_files[index]), f"{BUCKET}/{key}")
        uploaded[key] = gallery_files[index]
    return uploaded


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _uris(source: str, server: S3Server) -> list[str]:
    return [info.uri for _, info in list_objects([source], options=server.options())]


def test_list_prefix_recursively_images_only(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    assert _uris(f"s3://{BUCKET}/photos", s3_server) == [
        f"s3://{BUCKET}/photos/a/x.jpg",
        f"s3://{BUCKET}/photos/a/y.jpg",
        f"s3://{BUCKET}/photos/b/z.jpg",
    ]
    assert _uris(f"s3://{BUCKET}/photos/", s3_server) == _uris(f"s3://{BUCKET}/photos", s3_server)
    assert f"s3://{BUCKET}/other/o.jpg" in _uris(f"s3://{BUCKET}", s3_server)


def test_list_globs(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    assert _uris(f"s3://{BUCKET}/photos/*/x.jpg", s3_server) == [f"s3://{BUCKET}/photos/a/x.jpg"]
    assert _uris(f"s3://{BUCKET}/photos/**/*.jpg", s3_server) == _uris(f"s3://{BUCKET}/photos", s3_server)
    assert _uris(f"s3://{BUCKET}/*/o.jpg", s3_server) == [f"s3://{BUCKET}/other/o.jpg"]


def test_single_key_is_listed_whatever_its_extension(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    assert _uris(f"s3://{BUCKET}/photos/notes.txt", s3_server) == [f"s3://{BUCKET}/photos/notes.txt"]


def test_metadata(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    ((source, info),) = list_objects([f"s3://{BUCKET}/photos/a/x.jpg"], options=s3_server.options())
    content = s3_photos["photos/a/x.jpg"].read_bytes()
    assert source == f"s3://{BUCKET}/photos/a/x.jpg"
    assert info.size == len(content)
    assert info.content_type == "image/jpeg"
    assert info.updated.tzinfo is not None and info.updated.utcoffset() == UTC.utcoffset(None)
    assert info.etag
    assert info.md5 == hashlib.md5(content).hexdigest()
    assert info.fingerprint == f"md5:{info.md5}:{len(content)}"
    listed = {i.uri: i for _, i in list_objects([f"s3://{BUCKET}/photos"], options=s3_server.options())}
    assert listed[info.uri].md5 == info.md5
    assert stat_object(info.uri, options=s3_server.options()).etag == info.etag


def test_read(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    uri = f"s3://{BUCKET}/photos/b/z.jpg"
    assert read_object(uri, options=s3_server.options()) == s3_photos["photos/b/z.jpg"].read_bytes()
    assert exists(uri, options=s3_server.options())
    assert not exists(f"s3://{BUCKET}/photos/b/nope.jpg", options=s3_server.options())


def test_read_many_keeps_order_and_reports_the_missing_one(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    keys = ["photos/a/x.jpg", "photos/missing.jpg", "other/o.jpg"]
    uris = [f"s3://{BUCKET}/{key}" for key in keys]
    results = list(read_many(uris, options=s3_server.options(), workers=4))
    assert [uri for uri, _ in results] == uris
    assert results[0][1] == s3_photos["photos/a/x.jpg"].read_bytes()
    assert isinstance(results[1][1], ObjectNotFound) and uris[1] in str(results[1][1])
    assert results[2][1] == s3_photos["other/o.jpg"].read_bytes()


def test_listing_is_fresh_after_an_upload(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    before = _uris(f"s3://{BUCKET}/photos", s3_server)
    s3_server.filesystem().pipe_file(f"{BUCKET}/photos/c/new.jpg", s3_photos["photos/a/x.jpg"].read_bytes())
    try:
        assert _uris(f"s3://{BUCKET}/photos", s3_server) == [*before, f"s3://{BUCKET}/photos/c/new.jpg"]
    finally:
        s3_server.filesystem().rm_file(f"{BUCKET}/photos/c/new.jpg")


def test_missing_key_prefix_and_bucket(s3_server: S3Server, s3_photos: dict[str, Path]) -> None:
    options = s3_server.options()
    for uri in (f"s3://{BUCKET}/photos/nope.jpg", "s3://no-such-bucket/a.jpg"):
        with pytest.raises(ObjectNotFound, match=uri):
            read_object(uri, options=options)
    for source in (f"s3://{BUCKET}/nope", "s3://no-such-bucket", f"s3://{BUCKET}/nope/**/*.jpg"):
        with pytest.raises(ObjectNotFound, match=source.replace("*", r"\*")):
            list(list_objects([source], options=options))


def test_wrong_credentials_are_a_storage_error_not_a_missing_object(
    s3_server: S3Server, s3_photos: dict[str, Path]
) -> None:
    options = s3_server.options(s3_secret="wrong-secret")
    uri = f"s3://{BUCKET}/photos/a/x.jpg"
    with pytest.raises(StorageError, match=uri) as info:
        read_object(uri, options=options)
    assert not isinstance(info.value, ObjectNotFound)
    assert info.value.code == "permission_denied"
    with pytest.raises(StorageError, match=f"s3://{BUCKET}/photos") as listing:
        list(list_objects([f"s3://{BUCKET}/photos"], options=options))
    assert not isinstance(listing.value, ObjectNotFound)


def test_unreachable_server_is_a_storage_error() -> None:
    closed_port = _closed_port()
    options = storage.StorageOptions(
        s3_endpoint_url=f"http://127.0.0.1:{closed_port}",
        s3_key="k",
        s3_secret="s",
        s3_region="us-east-1",
        s3_max_attempts=1,
    )
    uri = f"s3://{BUCKET}/photos/a/x.jpg"
    with pytest.raises(StorageError, match=uri) as info:
        read_object(uri, options=options)
    assert not isinstance(info.value, ObjectNotFound)
    assert "Could not connect" in str(info.value)


def test_filesystem_is_built_once_per_options(s3_server: S3Server) -> None:
    options = s3_server.options()
    assert storage._filesystem("s3", options) is storage._filesystem("s3", s3_server.options())
    assert storage._filesystem("s3", options) is not storage._filesystem("s3", s3_server.options(s3_region="x"))


def test_the_server_has_room_for_many_buckets(s3_server: S3Server) -> None:
    """Each bucket grows volumes of its own; the fixture sizes SeaweedFS so a suite's worth of them all take writes.

    With SeaweedFS's defaults (7 volumes per bucket) and 32 slots, the fifth bucket answered ``InternalError``
    to every PutObject; this makes 12 fresh buckets and writes to each.
    """
    for number in range(12):
        fs = s3_server.bucket(f"room-{number:02d}")
        fs.pipe_file(f"room-{number:02d}/a.bin", b"x" * 1000)
        assert fs.cat_file(f"room-{number:02d}/a.bin") == b"x" * 1000
