"""Fuzzing, bounded: mutated image bytes and SQL token soups give a clear error or a result, never a crash.

Image bytes: JPEG, PNG, WebP and TIFF encodings of a real photo, with bytes flipped, cut, repeated or
inserted, go through decoding and the whole face pipeline (``embed_objects``): each gives faces, ``no_face``
or an error row naming the photo, within a memory bound. SQL: random sequences of BigQuery tokens, names and
literals: each gives results or a :class:`~lookalike.errors.SqlError` with a line and a column.
"""

from __future__ import annotations

import io
import resource
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import lookalike
from lookalike.embedding import embed_objects
from lookalike.errors import ImageError, SqlError
from lookalike.images import decode_image
from lookalike.storage import ObjectInfo

PHOTO = Path(__file__).resolve().parents[1] / "data" / "gallery" / "Tony_Blair" / "Tony_Blair_0001.jpg"


def _encodings() -> dict[str, bytes]:
    img = Image.open(PHOTO).convert("RGB").resize((120, 120))
    out = {}
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


ENCODED = _encodings()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(ENCODED[draw(st.sampled_from(sorted(ENCODED)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "zero"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "repeat":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 256))] * draw(st.integers(1, 4))
        elif kind == "zero":
            data[pos : pos + 16] = bytes(min(16, len(data) - pos))
    return bytes(data)


@given(data=mutated())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_mutated_images_decode_or_fail_clearly(data: bytes) -> None:
    try:
        img = decode_image(data, uri="fuzz.img", max_pixels=4_000_000)
    except ImageError as err:
        assert "fuzz.img" in str(err)
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.size <= 3 * 4_000_000


@given(data=st.lists(mutated(), min_size=1, max_size=3))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_mutated_images_through_the_face_pipeline(tmp_path_factory: pytest.TempPathFactory, data: list[bytes]) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    items = []
    for i, blob in enumerate(data):
        path = folder / f"{i}.img"
        path.write_bytes(blob)
        info = ObjectInfo(uri=str(path), size=len(blob), content_type="image/jpeg", updated=datetime.now(UTC))
        items.append((str(folder), info))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = embed_objects("fr-feature", items, max_pixels=4_000_000)
    assert [r.info.uri for r in results] == [info.uri for _, info in items]
    for r in results:
        assert r.status in ("ok", "no_face", "error")
        if r.status == "error":
            assert r.error and r.info.uri in r.error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_000_000  # KiB: under 1 GiB more


TOKENS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "JOIN",
    "ON",
    "AS",
    "WITH",
    "UNION",
    "ALL",
    "CREATE",
    "TABLE",
    "OR",
    "REPLACE",
    "INSERT",
    "INTO",
    "VALUES",
    "DELETE",
    "UPDATE",
    "SET",
    "DROP",
    "MODEL",
    "EXTERNAL",
    "OPTIONS",
    "VECTOR",
    "INDEX",
    "VECTOR_SEARCH",
    "ML.GENERATE_EMBEDDING",
    "TABLE s.t",
    "STRUCT",
    "ARRAY",
    "UNNEST",
    "(",
    ")",
    ",",
    ";",
    "*",
    "=",
    "<",
    "+",
    "-",
    "/",
    "'a'",
    '"b"',
    "`s.t`",
    "1",
    "2.5",
    "NULL",
    "TRUE",
    "s",
    ".",
    "t",
    "x",
    "top_k",
    "=>",
    "'COSINE'",
    "CAST",
    "INT64",
    "[",
    "]",
    "--",
    "/*",
    "'",
    "r'\\d'",
    "QUALIFY",
    "OVER",
    "PARTITION",
    "SAFE_CAST",
    "EXCEPT",
    "IF",
    "NOT",
    "EXISTS",
    "CALL",
]


@pytest.fixture(scope="module")
def sql_ds(tmp_path_factory: pytest.TempPathFactory) -> lookalike.Dataset:
    ds = lookalike.open(tmp_path_factory.mktemp("sqlfuzz") / "fuzz.duckdb")
    ds.sql("CREATE SCHEMA s; CREATE TABLE s.t (x INT64, v ARRAY<FLOAT64>); INSERT INTO s.t VALUES (1, [1.0, 0.0])")
    return ds


@given(tokens=st.lists(st.sampled_from(TOKENS) | st.text(max_size=8), min_size=1, max_size=25))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_sql_token_soup_gives_a_result_or_a_placed_error(sql_ds: lookalike.Dataset, tokens: list[str]) -> None:
    text = " ".join(tokens)
    if not text.strip():
        return
    try:
        sql_ds.sql(text)
    except SqlError as err:
        assert err.message
        if "no SQL statement" not in err.message:
            assert err.line is not None and err.line >= 1 and err.column is not None and err.column >= 1, err
