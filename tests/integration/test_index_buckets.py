"""The whole job from buckets: index s3:// and gs:// photos, re-index incrementally, search; a real SeaweedFS
and a real fake-gcs-server, started by the fixtures in conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import lookalike

if TYPE_CHECKING:
    from conftest import GCSServer, S3Server

DATA = Path(__file__).resolve().parents[1] / "data"
PEOPLE = ("Tony_Blair", "Serena_Williams", "Hugo_Chavez", "John_Ashcroft")


def _upload(server: Any, bucket: str) -> Any:
    fs = server.bucket(bucket)
    for person in PEOPLE:
        for photo in sorted((DATA / "gallery" / person).glob("*.jpg")):
            fs.put_file(str(photo), f"{bucket}/faces/{person}/{photo.name}")
    fs.pipe_file(f"{bucket}/faces/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    return fs


def _check_job(ds: lookalike.Dataset, fs: Any, bucket: str, scheme: str) -> None:
    report = ds.index(f"{scheme}://{bucket}/faces/")
    assert report.added == 13 and report.faces == 12 and report.failed == 1
    assert report.errors[0][0] == f"{scheme}://{bucket}/faces/broken.jpg"
    for person in PEOPLE:
        hit = ds.search(str(DATA / "queries" / f"{person}_0010.jpg"), top_k=1).hits[0]
        assert hit.uri.startswith(f"{scheme}://{bucket}/faces/{person}/") and hit.same_person
    # the object changes in the bucket -> only it is re-embedded; a deleted one is removed
    fs.put_file(str(DATA / "queries" / "Tony_Blair_0010.jpg"), f"{bucket}/faces/broken.jpg")
    fs.rm_file(f"{bucket}/faces/Hugo_Chavez/Hugo_Chavez_0003.jpg")
    again = ds.index(f"{scheme}://{bucket}/faces/")
    assert (again.added, again.updated, again.removed, again.unchanged, again.failed) == (0, 1, 1, 11, 0)
    # a glob works as a source too
    glob = ds.index(f"{scheme}://{bucket}/faces/Tony_Blair/*.jpg", table="blair")
    assert glob.added == 3


@pytest.mark.s3
def test_index_and_search_from_s3(s3_server: S3Server, tmp_path: Path) -> None:
    fs = _upload(s3_server, "index-e2e")
    ds = lookalike.open(tmp_path / "s3.duckdb", storage_options=s3_server.options())
    _check_job(ds, fs, "index-e2e", "s3")
    # an unreadable key: a listing of a bucket that does not exist fails clearly, nothing stored is lost
    report = ds.index("s3://no-such-bucket-here/faces/")
    assert report.source_errors and "s3://no-such-bucket-here" in report.source_errors[0][1]
    assert {t["name"]: t["objects"] for t in ds.tables()}["faces"] == 12


@pytest.mark.s3
def test_s3_wrong_credentials_name_the_uri(s3_server: S3Server, tmp_path: Path) -> None:
    _upload(s3_server, "creds-e2e")
    bad = lookalike.open(tmp_path / "bad.duckdb", storage_options=s3_server.options(s3_secret="wrong"))
    report = bad.index("s3://creds-e2e/faces/")
    assert report.source_errors and "s3://creds-e2e/faces" in report.source_errors[0][1]
    with pytest.raises(lookalike.LookalikeError, match="s3://creds-e2e/faces/Tony_Blair/Tony_Blair_0001.jpg"):
        bad.search("s3://creds-e2e/faces/Tony_Blair/Tony_Blair_0001.jpg")


@pytest.mark.gcs
def test_index_and_search_from_gcs(gcs_server: GCSServer, tmp_path: Path) -> None:
    fs = _upload(gcs_server, "index-e2e")
    ds = lookalike.open(tmp_path / "gcs.duckdb", storage_options=gcs_server.options())
    _check_job(ds, fs, "index-e2e", "gs")
