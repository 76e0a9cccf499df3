"""Errors: where they are (line and column), what to do (hints), and what a failing script leaves behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sql_support import REPO, Small

from lookalike.errors import LookalikeError, SqlError, SqlNotSupported, SqlParseError


def test_parse_error_has_line_and_column(small: Small) -> None:
    script = "SELECT 1;\n\nSELECT uri\n  FROM s.t WHERE (;\nSELECT 2"
    with pytest.raises(SqlParseError) as info:
        small.sql(script)
    err = info.value
    assert (err.line, err.column) == (4, 18)  # the '(' that starts an empty expression
    assert err.statement == "SELECT uri\n  FROM s.t WHERE ("
    assert (err.statement_index, err.statement_count, err.committed) == (2, 3, 1)
    assert str(err).startswith("line 4, column 18: syntax error near '('")
    assert "[statement 2 of 3 failed; statement 1 was committed]" in str(err)
    assert "\n" not in str(err)
    assert isinstance(err, LookalikeError) and err.code == "sql_parse_error"
    as_dict = err.to_dict()
    assert as_dict["line"] == 4 and as_dict["column"] == 18 and as_dict["statement_index"] == 2


def test_unterminated_string_is_placed(small: Small) -> None:
    with pytest.raises(SqlParseError) as info:
        small.sql("SELECT 1;\nSELECT 'abc FROM x")
    assert (info.value.line, info.value.column) == (2, 8)
    assert "unterminated string" in str(info.value)


def test_misspelt_table_gets_a_did_you_mean_hint(small: Small) -> None:
    small.sql("CREATE SCHEMA face_search; CREATE TABLE face_search.face_embeddings AS SELECT 1 AS x")
    with pytest.raises(SqlError) as info:
        small.sql("SELECT *\nFROM face_search.face_embedding")
    err = info.value
    assert (err.line, err.column) == (2, 6)
    assert err.message == "table face_search.face_embedding was not found"
    assert err.hint == "did you mean face_search.face_embeddings?"
    assert str(err) == (
        "line 2, column 6: table face_search.face_embedding was not found "
        "(hint: did you mean face_search.face_embeddings?)"
    )
    with pytest.raises(SqlError, match="did you mean face_search.face_embeddings"):
        small.sql("SELECT * FROM face_embeddings")  # the dataset left out
    with pytest.raises(SqlError, match=r"model s.n was not found \(hint: did you mean s.m\?\)"):
        small.sql("SELECT * FROM ML.GENERATE_EMBEDDING(MODEL s.n, TABLE face_search.face_embeddings)")


def test_duckdb_errors_are_placed_at_the_name(small: Small) -> None:
    small.sql("CREATE TABLE s.t AS SELECT 1 AS alpha")
    with pytest.raises(SqlError) as info:
        small.sql("SELECT alpha,\n       betta FROM s.t")
    assert (info.value.line, info.value.column) == (2, 8)
    assert "betta" in info.value.message


def test_failing_statement_stops_the_script_and_keeps_earlier_ones(small: Small) -> None:
    script = """CREATE TABLE s.kept AS SELECT 1 AS x;
INSERT INTO s.kept VALUES (2);
SELECT * FROM s.missing;
CREATE TABLE s.never AS SELECT 1 AS x"""
    with pytest.raises(SqlError) as info:
        small.sql(script)
    err = info.value
    assert (err.statement_index, err.statement_count, err.committed) == (3, 4, 2)
    assert "statement 3 of 4 failed; statements 1..2 were committed" in str(err)
    assert (err.line, err.column) == (3, 15)
    assert small.rows("SELECT x FROM s.kept ORDER BY x") == [{"x": 1}, {"x": 2}]
    with pytest.raises(SqlError, match="table s.never was not found"):
        small.sql("SELECT * FROM s.never")


def test_unsupported_statements(small: Small) -> None:
    with pytest.raises(SqlNotSupported, match="transactions"):
        small.sql("BEGIN TRANSACTION")
    with pytest.raises(SqlNotSupported, match="ML.PREDICT is not supported"):
        small.sql("SELECT * FROM ML.PREDICT(MODEL s.m, (SELECT 1 AS x))")
    with pytest.raises(SqlNotSupported, match="only CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE"):
        small.sql("CALL my_procedure()")
    with pytest.raises(SqlParseError, match="arguments go by name"):
        small.sql("SELECT * FROM VECTOR_SEARCH(TABLE s.a, 'v', TABLE s.b, 'v', 5)")
    with pytest.raises(SqlParseError, match="cannot parse this VECTOR INDEX statement"):
        small.sql("CREATE VECTOR INDEX i ON s.a OPTIONS(index_type = 'IVF')")
    with pytest.raises(SqlError, match="a view cannot hold VECTOR_SEARCH"):
        small.sql("CREATE VIEW s.v AS SELECT * FROM VECTOR_SEARCH(TABLE s.a, 'v', TABLE s.a)")
    with pytest.raises(SqlError, match="no SQL statement"):
        small.sql("  -- only a comment\n")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_cli_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    dataset = str(tmp_path / "e.duckdb")
    out = _cli("sql", "CREATE SCHEMA a; SELECT * FROM a.nope; SELECT 1", "--dataset", dataset)
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["created schema a"]  # the statement that ran is shown
    assert out.stderr.splitlines() == [
        "error: line 1, column 32: table a.nope was not found [statement 2 of 3 failed; statement 1 was committed]"
    ]
    both = _cli("sql", "SELECT 1", "-f", "examples/demo.sql", "--dataset", dataset)
    assert both.returncode == 2 and "give either STATEMENTS or -f FILE" in both.stderr
