"""BigQuery functions that DuckDB would answer differently: FORMAT, COUNTIF, ML.DISTANCE, negative zeros, and the
INFORMATION_SCHEMA views. Expected values are the ones BigQuery's documentation gives."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

import lookalike
from lookalike.errors import SqlError, SqlNotSupported


@pytest.fixture()
def ds(tmp_path: Path) -> lookalike.Dataset:
    d = lookalike.open(tmp_path / "fn.duckdb")
    d.sql(
        "CREATE SCHEMA s; CREATE TABLE s.t (x INT64, v ARRAY<FLOAT64>, st STRUCT<a INT64, b STRING>);"
        "INSERT INTO s.t VALUES (1, [1.0, 0.0], STRUCT(1 AS a, 'a' AS b)), (2, [0.0, 1.0], STRUCT(2 AS a, 'b' AS b));"
        "CREATE VIEW s.w AS SELECT x FROM s.t"
    )
    return d


def _row(ds: lookalike.Dataset, sql: str) -> dict[str, object]:
    return ds.sql(sql)[-1].to_pylist()[0]


def test_format_is_printf_style(ds: lookalike.Dataset) -> None:
    row = _row(
        ds,
        "SELECT FORMAT('%05d', 42) AS a, FORMAT('%s-%d', 'a', 3) AS b, FORMAT('%.2f', 3.14159) AS c, "
        "FORMAT('%s', 2.5) AS d, FORMAT('%x|%X|%o', 255, 255, 8) AS e, FORMAT('100%%') AS f, FORMAT('%-4d|', 7) AS g",
    )
    assert row == {"a": "00042", "b": "a-3", "c": "3.14", "d": "2.5", "e": "ff|FF|10", "f": "100%", "g": "7   |"}
    for bad, message in (
        ("SELECT FORMAT('%t', 1)", "FORMAT specifier '%t' is not supported"),
        ('SELECT FORMAT("%\'d", 1000)', "is not supported"),
        ("SELECT FORMAT(CONCAT('%', 'd'), 1)", "not a string literal"),
        ("SELECT FORMAT('%d %d', 1)", "more specifiers than arguments"),
    ):
        with pytest.raises(SqlError, match=message):
            ds.sql(bad)


def test_countif_is_int64_also_as_a_window(ds: lookalike.Dataset) -> None:
    result = ds.sql("SELECT COUNTIF(x > 1) OVER () AS w, x FROM s.t ORDER BY x")[-1]
    assert result.table.schema.field("w").type == pa.int64()
    assert [r["w"] for r in result.to_pylist()] == [1, 1]
    assert ds.sql("SELECT COUNTIF(x > 0) AS n FROM s.t")[-1].table.schema.field("n").type == pa.int64()


def test_ml_distance(ds: lookalike.Dataset) -> None:
    row = _row(
        ds,
        "SELECT ML.DISTANCE([1.0, 2.0], [2.0, 4.0]) AS e, ML.DISTANCE([1.0, 2.0], [2.0, 4.0], 'EUCLIDEAN') AS e2, "
        "ML.DISTANCE([1.0, 0.0], [0.0, 1.0], 'COSINE') AS c, ML.DISTANCE([1.0, 2.0], [2.0, 4.0], 'MANHATTAN') AS m, "
        "ML.DISTANCE(NULL, [1.0]) AS n",
    )
    assert row["e"] == pytest.approx(math.sqrt(5)) and row["e2"] == row["e"]
    assert row["c"] == pytest.approx(1.0) and row["m"] == pytest.approx(3.0) and row["n"] is None
    rows = ds.sql("SELECT x, ML.DISTANCE(v, [1.0, 0.0], 'COSINE') AS d FROM s.t ORDER BY x")[-1].to_pylist()
    assert [r["d"] for r in rows] == pytest.approx([0.0, 1.0])
    with pytest.raises(SqlError, match="different lengths 2 and 1"):
        ds.sql("SELECT ML.DISTANCE([1.0, 2.0], [1.0])")
    with pytest.raises(SqlNotSupported, match="distance type 'HAMMING'"):
        ds.sql("SELECT ML.DISTANCE([1.0], [1.0], 'HAMMING')")


def test_dot_product_distances_have_no_negative_zero(ds: lookalike.Dataset) -> None:
    rows = ds.sql(
        "SELECT base.x AS x, distance FROM VECTOR_SEARCH(TABLE s.t, 'v', (SELECT [1.0, 0.0] AS v), top_k => 2, "
        "distance_type => 'DOT_PRODUCT') ORDER BY x"
    )[-1].to_pylist()
    assert [r["distance"] for r in rows] == [-1.0, 0.0]
    assert math.copysign(1.0, rows[1]["distance"]) == 1.0


def test_information_schema_views(ds: lookalike.Dataset) -> None:
    tables = ds.sql("SELECT table_name, table_type FROM s.INFORMATION_SCHEMA.TABLES ORDER BY table_name")[-1]
    assert tables.to_pylist() == [
        {"table_name": "t", "table_type": "BASE TABLE"},
        {"table_name": "w", "table_type": "VIEW"},
    ]
    cols = ds.sql(
        "SELECT column_name, ordinal_position, data_type FROM `proj.s.INFORMATION_SCHEMA.COLUMNS` "
        "WHERE table_name = 't' ORDER BY ordinal_position"
    )[-1].to_pylist()
    assert [(c["column_name"], c["ordinal_position"], c["data_type"]) for c in cols] == [
        ("x", 1, "INT64"),
        ("v", 2, "ARRAY<FLOAT64>"),
        ("st", 3, "STRUCT<a INT64, b STRING>"),
    ]
    assert {r["schema_name"] for r in ds.sql("SELECT * FROM INFORMATION_SCHEMA.SCHEMATA")[-1].to_pylist()} == {"s"}
    with pytest.raises(SqlNotSupported, match="INFORMATION_SCHEMA.JOBS is not supported"):
        ds.sql("SELECT * FROM s.INFORMATION_SCHEMA.JOBS")
