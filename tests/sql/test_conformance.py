"""BigQuery conformance: each statement of ``conformance_cases.CASES`` gives BigQuery's documented result, or is
refused with a clear error; never a different answer. Integers come back as INT64 and floats as FLOAT64."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest
from conformance_cases import CASES, Unsupported

import lookalike
from lookalike.errors import SqlError


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> lookalike.Dataset:
    return lookalike.open(Path(tmp_path_factory.mktemp("conformance")) / "c.duckdb")


def _same(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) and math.copysign(1, got) == math.copysign(1, want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want  # an INT64 is an int, a BOOL a bool, never one for the other


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_bigquery_statement(ds: lookalike.Dataset, sql: str, expected: object) -> None:
    if isinstance(expected, Unsupported):
        with pytest.raises(SqlError, match=None) as err:
            ds.sql(sql)
        assert expected.error in str(err.value), str(err.value)
        assert err.value.line is not None and err.value.column is not None
        return
    result = ds.sql(sql)[-1]
    rows = result.to_pylist()
    assert _same(rows, expected), f"{sql}\n got {rows}\nwant {expected}"
    for field in result.table.schema:
        assert not pa.types.is_integer(field.type) or field.type == pa.int64(), (field.name, field.type)
        assert not pa.types.is_floating(field.type) or field.type == pa.float64(), (field.name, field.type)
