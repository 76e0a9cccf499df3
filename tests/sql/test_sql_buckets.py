"""Object tables over buckets: a real S3 server (SeaweedFS) and a GCS emulator (fake-gcs-server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sql_support import DATA

import lookalike

PHOTOS = {
    "faces/tony/Tony_Blair_0001.jpg": DATA / "gallery/Tony_Blair/Tony_Blair_0001.jpg",
    "faces/hugo/Hugo_Chavez_0001.jpg": DATA / "gallery/Hugo_Chavez/Hugo_Chavez_0001.jpg",
    "faces/Tony_Blair_0010.jpg": DATA / "queries/Tony_Blair_0010.jpg",
    "other/Colin_Powell_0001.jpg": DATA / "gallery/Colin_Powell/Colin_Powell_0001.jpg",
}


def _upload(server: Any, bucket: str) -> None:
    fs = server.bucket(bucket)
    for key, path in PHOTOS.items():
        fs.put_file(str(path), f"{bucket}/{key}")


def _demo_over_bucket(ds: lookalike.Dataset, scheme: str, bucket: str) -> None:
    results = ds.sql(
        f"""CREATE SCHEMA face_search;
            CREATE MODEL `face_search.face-search_model` REMOTE WITH CONNECTION `us.c` OPTIONS (ENDPOINT = 'default');
            CREATE EXTERNAL TABLE `face_search.faces` WITH CONNECTION `us.c`
              OPTIONS (object_metadata = 'SIMPLE', uris = ['{scheme}://{bucket}/faces/*']);
            SELECT uri, content_type, size, md5_hash, generation FROM face_search.faces;
            SELECT base.uri AS image_link, distance FROM VECTOR_SEARCH(
              (SELECT * FROM ML.GENERATE_EMBEDDING(MODEL `face_search.face-search_model`, TABLE face_search.faces)),
              'ml_generate_embedding_result',
              (SELECT * FROM ML.GENERATE_EMBEDDING(MODEL `face_search.face-search_model`,
                 (SELECT * FROM face_search.faces WHERE uri LIKE '%Tony_Blair_0010%'))),
              top_k => 3, distance_type => 'COSINE')
            ORDER BY distance"""
    )
    listed = results[3].to_pylist()
    # '*' crosses folders; objects outside the prefix are left out
    assert [r["uri"] for r in listed] == sorted(f"{scheme}://{bucket}/{k}" for k in PHOTOS if k.startswith("faces/"))
    assert all(r["content_type"] == "image/jpeg" and r["size"] > 0 for r in listed)
    ranked = [str(r["image_link"]).rsplit("/", 1)[1] for r in results[4].to_pylist()]
    assert ranked == ["Tony_Blair_0010.jpg", "Tony_Blair_0001.jpg", "Hugo_Chavez_0001.jpg"]


@pytest.mark.s3
def test_object_table_over_s3(s3_server: Any, tmp_path: Path) -> None:
    _upload(s3_server, "sql-photos")
    ds = lookalike.Dataset(tmp_path / "s3.duckdb", storage_options=s3_server.options())
    _demo_over_bucket(ds, "s3", "sql-photos")


@pytest.mark.gcs
def test_object_table_over_gcs(gcs_server: Any, tmp_path: Path) -> None:
    _upload(gcs_server, "sql-photos")
    ds = lookalike.Dataset(tmp_path / "gs.duckdb", storage_options=gcs_server.options())
    _demo_over_bucket(ds, "gs", "sql-photos")
