"""Listing and reading photos from local folders, files, globs and file:// URIs."""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lookalike.errors import BadURI, LookalikeError, ObjectNotFound, StorageError
from lookalike.storage import (
    ObjectInfo,
    StorageOptions,
    exists,
    list_objects,
    parse_source,
    read_many,
    read_object,
    stat_object,
)


@pytest.fixture
def photos(tmp_path: Path, gallery_files: list[Path]) -> Path:
    """A small tree: images at two depths, a non-image, hidden files and a hidden folder."""
    root = tmp_path / "photos"
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(gallery_files[0], root / "a.jpg")
    shutil.copy(gallery_files[1], root / "b" / "c.JPEG")
    shutil.copy(gallery_files[2], root / "b" / "deep" / "d.png")  # a JPEG named .png: listing does not care
    (root / "notes.txt").write_text("not a photo")
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / ".cache" / "thumb.jpg").write_bytes(b"x")
    return root


def _uris(source: str | list[str], **kwargs: bool) -> list[str]:
    return [info.uri for _, info in list_objects(source if isinstance(source, list) else [source], **kwargs)]


def test_folder_is_listed_recursively_sorted_images_only(photos: Path) -> None:
    assert _uris(str(photos)) == [
        f"{photos}/a.jpg",
        f"{photos}/b/c.JPEG",
        f"{photos}/b/deep/d.png",
    ]


def test_folder_without_image_filter_still_skips_hidden(photos: Path) -> None:
    uris = _uris(str(photos), images_only=False)
    assert f"{photos}/notes.txt" in uris
    assert not any("/." in uri for uri in uris)


def test_relative_path_and_source_pairs(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(photos.parent)
    pairs = list(list_objects(["photos/b"]))
    assert [(source, info.uri) for source, info in pairs] == [
        ("photos/b", f"{photos}/b/c.JPEG"),
        ("photos/b", f"{photos}/b/deep/d.png"),
    ]


def test_globs(photos: Path) -> None:
    assert _uris(f"{photos}/*.jpg") == [f"{photos}/a.jpg"]
    assert _uris(f"{photos}/**/*.png") == [f"{photos}/b/deep/d.png"]
    assert _uris(f"{photos}/**") == _uris(str(photos))
    assert _uris(f"{photos}/*.txt") == []  # a glob also keeps images only ...
    assert _uris(f"{photos}/*.txt", images_only=False) == [f"{photos}/notes.txt"]


def test_file_uri(photos: Path) -> None:
    assert _uris(f"file://{photos}") == _uris(str(photos))
    assert _uris(f"file://localhost{photos}/b") == [f"{photos}/b/c.JPEG", f"{photos}/b/deep/d.png"]
    assert _uris(f"file://{photos}/**/*.JPEG") == [f"{photos}/b/c.JPEG"]


def test_named_single_file_is_always_listed(photos: Path) -> None:
    assert _uris(str(photos / "notes.txt")) == [f"{photos}/notes.txt"]
    assert _uris(str(photos / ".hidden.jpg")) == [f"{photos}/.hidden.jpg"]


def test_sources_keep_order_and_duplicates_are_dropped(photos: Path) -> None:
    pairs = list(list_objects([str(photos / "b"), str(photos)]))
    assert [info.uri for _, info in pairs] == [
        f"{photos}/b/c.JPEG",
        f"{photos}/b/deep/d.png",
        f"{photos}/a.jpg",
    ]
    assert pairs[-1][0] == str(photos)


def test_metadata(photos: Path) -> None:
    ((_, info),) = list_objects([str(photos / "a.jpg")])
    st = (photos / "a.jpg").stat()
    assert isinstance(info, ObjectInfo)
    assert info.size == st.st_size
    assert info.content_type == "image/jpeg"
    assert info.updated.tzinfo is not None and info.updated.utcoffset() == UTC.utcoffset(None)
    assert abs(info.updated.timestamp() - st.st_mtime) < 1e-3
    assert info.generation == str(st.st_mtime_ns)
    assert info.etag is None and info.md5 is None
    assert info.fingerprint == f"gen:{st.st_mtime_ns}:{st.st_size}"
    assert stat_object(str(photos / "a.jpg")) == info
    assert stat_object(str(photos / "notes.txt")).content_type == "text/plain"
    assert stat_object(str(photos / "b/deep/d.png")).content_type == "image/png"


def test_fingerprint_changes_when_the_file_is_rewritten(photos: Path) -> None:
    path = photos / "a.jpg"
    before = stat_object(str(path)).fingerprint
    path.write_bytes(path.read_bytes()[:-10])  # new content, new size
    after_rewrite = stat_object(str(path)).fingerprint
    assert after_rewrite != before
    # Same size, new content: only the modification time tells. Move it explicitly (coarse clocks).
    st = path.stat()
    path.write_bytes(bytes(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert stat_object(str(path)).fingerprint != after_rewrite


def test_fingerprint_falls_back_to_md5_then_etag_then_time() -> None:
    base = ObjectInfo("s3://b/k.jpg", 3, "image/jpeg", datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    assert base.fingerprint == "mtime:2024-05-01T12:00:00+00:00:3"
    with_etag = ObjectInfo(base.uri, 3, base.content_type, base.updated, etag="abc")
    assert with_etag.fingerprint == "etag:abc:3"
    with_md5 = ObjectInfo(base.uri, 3, base.content_type, base.updated, etag="abc", md5="0f")
    assert with_md5.fingerprint == "md5:0f:3"
    with_gen = ObjectInfo(base.uri, 3, base.content_type, base.updated, etag="abc", md5="0f", generation="7")
    assert with_gen.fingerprint == "gen:7:3"


def test_read_object_and_limits(photos: Path) -> None:
    path = photos / "a.jpg"
    data = path.read_bytes()
    assert read_object(str(path)) == data
    assert read_object(f"file://{path}") == data
    assert read_object(str(path), max_bytes=len(data)) == data
    with pytest.raises(StorageError, match="larger than the limit") as info:
        read_object(str(path), max_bytes=100)
    assert info.value.code == "object_too_large"


def test_read_a_folder_is_a_storage_error(photos: Path) -> None:
    with pytest.raises(StorageError, match=str(photos)) as info:
        read_object(str(photos))
    assert not isinstance(info.value, ObjectNotFound)


def test_missing_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for source in (str(missing), f"{missing}/**/*.jpg", f"file://{missing}"):
        with pytest.raises(ObjectNotFound, match=str(missing)) as info:
            list(list_objects([source]))
        assert info.value.code == "not_found"
    with pytest.raises(ObjectNotFound, match=str(missing / "a.jpg")):
        read_object(str(missing / "a.jpg"))
    assert not exists(str(missing))


def test_missing_relative_path_names_both_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ObjectNotFound) as info:
        list(list_objects(["holiday"]))
    assert "holiday" in str(info.value) and str(tmp_path / "holiday") in str(info.value)


def test_exists(photos: Path) -> None:
    assert exists(str(photos))
    assert exists(str(photos / "a.jpg"))
    assert exists(f"file://{photos}/a.jpg")


@pytest.mark.parametrize(
    "source",
    ["", "   ", "ftp://host/photos", "http://example.com/a.jpg", "s3://", "gs:///key", "file://relative/x"],
)
def test_bad_uris(source: str) -> None:
    with pytest.raises(BadURI) as info:
        list(list_objects([source]))
    message = str(info.value)
    assert repr(source) in message
    assert "s3://" in message and "gs://" in message and "file://" in message  # lists what is supported
    with pytest.raises(BadURI):
        read_object(source)


def test_bad_source_fails_before_listing_anything(photos: Path) -> None:
    listing = list_objects([str(photos), "ftp://x/y"])
    with pytest.raises(BadURI):
        next(listing)


def test_parse_source() -> None:
    parsed = parse_source("s3://bkt/photos/2024/**/*.jpg")
    assert (parsed.protocol, parsed.root, parsed.pattern) == (
        "s3",
        "bkt/photos/2024",
        "bkt/photos/2024/**/*.jpg",
    )
    parsed = parse_source("gcs://bkt/")
    assert (parsed.protocol, parsed.root, parsed.pattern) == ("gs", "bkt", None)
    parsed = parse_source("/data/photos/")
    assert (parsed.protocol, parsed.root, parsed.pattern) == ("file", "/data/photos", None)
    with pytest.raises(BadURI, match="not a valid bucket name"):
        parse_source("s3://bk*/x")


def test_read_many_keeps_order_and_returns_errors(photos: Path) -> None:
    uris = [str(photos / "a.jpg"), str(photos / "missing.jpg"), str(photos / "b/c.JPEG"), "ftp://x/y"]
    results = list(read_many(uris, workers=3))
    assert [uri for uri, _ in results] == uris
    assert results[0][1] == (photos / "a.jpg").read_bytes()
    assert isinstance(results[1][1], ObjectNotFound) and "missing.jpg" in str(results[1][1])
    assert results[2][1] == (photos / "b/c.JPEG").read_bytes()
    assert isinstance(results[3][1], BadURI)
    sequential = list(read_many(iter(uris), workers=1))
    assert [type(value) for _, value in sequential] == [type(value) for _, value in results]


def test_read_many_with_a_long_generator(photos: Path) -> None:
    uris = (str(photos / "a.jpg") for _ in range(50))
    results = list(read_many(uris, workers=4))
    assert len(results) == 50
    assert all(not isinstance(value, LookalikeError) for _, value in results)


def test_options_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOOKALIKE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "LOOKALIKE_GCS_ENDPOINT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    options = StorageOptions.from_env()
    assert options.s3_endpoint_url == "http://127.0.0.1:9000"
    assert options.s3_region == "eu-west-1"
    assert options.gcs_endpoint_url == "http://127.0.0.1:4443"
    assert "s3cr3t" not in repr(options)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
    assert StorageOptions.from_env().s3_endpoint_url == "http://127.0.0.1:9001"
    assert hash(options) == hash(dataclasses.replace(options))  # hashable: it keys the filesystem cache


def test_read_many_stopped_early(photos: Path) -> None:
    results = read_many((str(photos / "a.jpg") for _ in range(1000)), workers=2)
    first = next(results)
    results.close()  # must not read the other 999
    assert first[1] == (photos / "a.jpg").read_bytes()
