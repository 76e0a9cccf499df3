"""BigQuery statements and the results BigQuery's documentation gives for them (see ``test_conformance.py``).

Each case is ``(sql, expected)``: ``expected`` is the list of result rows, or ``Unsupported("text")`` when
Lookalike refuses the statement with an error containing ``text``. A case that returns anything else fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime


@dataclass(frozen=True)
class Unsupported:
    error: str


def r(value: object) -> list[dict[str, object]]:
    """One row with one column ``r``."""
    return [{"r": value}]


CASES: list[tuple[str, object]] = [
    # strings
    ("SELECT CONCAT('a', 'b', 'c') AS r", r("abc")),
    ("SELECT LENGTH('héllo') AS r", r(5)),
    ("SELECT UPPER('abc') AS r", r("ABC")),
    ("SELECT LOWER('ABC') AS r", r("abc")),
    ("SELECT SUBSTR('abcdef', 2, 3) AS r", r("bcd")),
    ("SELECT SUBSTR('abcdef', -2) AS r", r("ef")),
    ("SELECT STRPOS('abcdef', 'cd') AS r", r(3)),
    ("SELECT REPLACE('aXbX', 'X', 'y') AS r", r("ayby")),
    ("SELECT SPLIT('a,b,c', ',') AS r", r(["a", "b", "c"])),
    ("SELECT TRIM('  a  ') AS r", r("a")),
    ("SELECT LTRIM('xxa', 'x') AS r", r("a")),
    ("SELECT LPAD('7', 3, '0') AS r", r("007")),
    ("SELECT RPAD('7', 3, '0') AS r", r("700")),
    ("SELECT REVERSE('abc') AS r", r("cba")),
    ("SELECT STARTS_WITH('abc', 'ab') AS r", r(True)),
    ("SELECT ENDS_WITH('abc', 'bc') AS r", r(True)),
    ("SELECT REGEXP_CONTAINS('abc123', r'\\d+') AS r", r(True)),
    ("SELECT REGEXP_EXTRACT('abc123', r'\\d+') AS r", r("123")),
    ("SELECT REGEXP_REPLACE('abc123', r'\\d', 'x') AS r", r("abcxxx")),
    ("SELECT INITCAP('hello world') AS r", r("Hello World")),
    ("SELECT REPEAT('ab', 3) AS r", r("ababab")),
    ("SELECT ASCII('A') AS r", r(65)),
    ("SELECT CHR(65) AS r", r("A")),
    ("SELECT LEFT('abcdef', 2) AS r", r("ab")),
    ("SELECT RIGHT('abcdef', 2) AS r", r("ef")),
    ("SELECT INSTR('abcabc', 'b') AS r", r(2)),
    ("SELECT INSTR('abcabc', 'b', 1, 2) AS r", Unsupported("INSTR with a position or an occurrence")),
    ("SELECT TO_HEX(b'\\x01\\xff') AS r", r("01ff")),
    ("SELECT FORMAT('%05d', 42) AS r", r("00042")),
    ("SELECT FORMAT('%s-%d', 'a', 3) AS r", r("a-3")),
    ("SELECT FORMAT('%t', 1) AS r", Unsupported("FORMAT specifier '%t'")),
    ("SELECT BYTE_LENGTH('héllo') AS r", Unsupported("octet_length")),
    # casts and math
    ("SELECT CAST(3.7 AS INT64) AS r", r(4)),
    ("SELECT CAST('12' AS INT64) AS r", r(12)),
    ("SELECT SAFE_CAST('x' AS INT64) AS r", r(None)),
    ("SELECT SAFE_DIVIDE(1, 0) AS r", r(None)),
    ("SELECT DIV(7, 2) AS r", r(3)),
    ("SELECT MOD(-7, 2) AS r", r(-1)),
    ("SELECT ROUND(2.5) AS r", r(3.0)),
    ("SELECT ROUND(-2.5) AS r", r(-3.0)),
    ("SELECT ROUND(3.14159, 2) AS r", r(3.14)),
    ("SELECT TRUNC(3.7) AS r", r(3.0)),
    ("SELECT CEIL(1.2) AS r", r(2.0)),
    ("SELECT FLOOR(-1.2) AS r", r(-2.0)),
    ("SELECT ABS(-3) AS r", r(3)),
    ("SELECT SIGN(-3) AS r", r(-1)),
    ("SELECT POW(2, 10) AS r", r(1024.0)),
    ("SELECT SQRT(16) AS r", r(4.0)),
    ("SELECT LN(1) AS r", r(0.0)),
    ("SELECT LOG(100, 10) AS r", r(2.0)),
    ("SELECT LOG10(1000) AS r", r(3.0)),
    ("SELECT GREATEST(1, 5, 3) AS r", r(5)),
    ("SELECT LEAST(1, 5, 3) AS r", r(1)),
    ("SELECT 7 / 2 AS r", r(3.5)),
    ("SELECT IEEE_DIVIDE(1, 0) AS r", Unsupported("ieee_divide")),
    # conditional
    ("SELECT IF(1 > 0, 'y', 'n') AS r", r("y")),
    ("SELECT IFNULL(NULL, 3) AS r", r(3)),
    ("SELECT COALESCE(NULL, NULL, 2) AS r", r(2)),
    ("SELECT NULLIF(1, 1) AS r", r(None)),
    ("SELECT CASE WHEN 1 = 1 THEN 'a' ELSE 'b' END AS r", r("a")),
    # dates and times
    ("SELECT DATE(2024, 2, 29) AS r", r(date(2024, 2, 29))),
    ("SELECT DATE_ADD(DATE '2024-01-31', INTERVAL 1 MONTH) AS r", r(date(2024, 2, 29))),
    ("SELECT DATE_SUB(DATE '2024-03-01', INTERVAL 1 DAY) AS r", r(date(2024, 2, 29))),
    ("SELECT DATE_DIFF(DATE '2024-03-01', DATE '2024-02-01', DAY) AS r", r(29)),
    ("SELECT DATE_TRUNC(DATE '2024-05-17', MONTH) AS r", r(date(2024, 5, 1))),
    ("SELECT EXTRACT(DAYOFWEEK FROM DATE '2024-05-19') AS r", r(1)),
    ("SELECT EXTRACT(DAYOFWEEK FROM DATE '2024-05-18') AS r", r(7)),
    ("SELECT EXTRACT(WEEK FROM DATE '2024-05-18') AS r", Unsupported("EXTRACT(WEEK")),
    ("SELECT FORMAT_DATE('%Y/%m/%d', DATE '2024-05-17') AS r", r("2024/05/17")),
    ("SELECT PARSE_DATE('%Y%m%d', '20240517') AS r", r(date(2024, 5, 17))),
    ("SELECT LAST_DAY(DATE '2024-02-10') AS r", r(date(2024, 2, 29))),
    ("SELECT TIMESTAMP_SECONDS(0) AS r", r(datetime(1970, 1, 1, tzinfo=UTC))),
    ("SELECT UNIX_SECONDS(TIMESTAMP '1970-01-02 00:00:00+00') AS r", r(86400)),
    # arrays
    ("SELECT ARRAY_LENGTH([1, 2, 3]) AS r", r(3)),
    ("SELECT ARRAY_CONCAT([1], [2, 3]) AS r", r([1, 2, 3])),
    ("SELECT ARRAY_REVERSE([1, 2, 3]) AS r", r([3, 2, 1])),
    ("SELECT ARRAY_TO_STRING(['a', 'b'], '-') AS r", r("a-b")),
    ("SELECT GENERATE_ARRAY(1, 5, 2) AS r", r([1, 3, 5])),
    ("SELECT [1, 2, 3][OFFSET(1)] AS r", r(2)),
    ("SELECT [1, 2, 3][ORDINAL(1)] AS r", r(1)),
    ("SELECT [1, 2, 3][SAFE_OFFSET(5)] AS r", r(None)),
    ("SELECT ARRAY(SELECT x * 2 FROM UNNEST([1, 2]) AS x) AS r", r([2, 4])),
    (
        "SELECT x, off FROM UNNEST(['a', 'b']) AS x WITH OFFSET AS off ORDER BY off",
        [{"x": "a", "off": 0}, {"x": "b", "off": 1}],
    ),
    ("SELECT 1 IN UNNEST([1, 2]) AS r", r(True)),
    ("SELECT ARRAY_AGG(x ORDER BY x DESC LIMIT 2) AS r FROM UNNEST([3, 1, 2]) AS x", Unsupported("LIMIT")),
    # aggregates
    ("SELECT STRING_AGG(x, ',' ORDER BY x) AS r FROM UNNEST(['b', 'a']) AS x", r("a,b")),
    ("SELECT COUNT(*) AS r FROM UNNEST([1, 2, NULL]) AS x", r(3)),
    ("SELECT COUNT(x) AS r FROM UNNEST([1, 2, NULL]) AS x", r(2)),
    ("SELECT COUNTIF(x > 1) AS r FROM UNNEST([1, 2, 3]) AS x", r(2)),
    ("SELECT SUM(x) AS r FROM UNNEST([1, 2, 3]) AS x", r(6)),
    ("SELECT AVG(x) AS r FROM UNNEST([1, 2]) AS x", r(1.5)),
    ("SELECT MIN(x) AS r FROM UNNEST([3, 1]) AS x", r(1)),
    ("SELECT MAX(x) AS r FROM UNNEST([3, 1]) AS x", r(3)),
    ("SELECT LOGICAL_AND(x) AS r FROM UNNEST([true, false]) AS x", r(False)),
    ("SELECT LOGICAL_OR(x) AS r FROM UNNEST([true, false]) AS x", r(True)),
    ("SELECT ANY_VALUE(x) AS r FROM UNNEST([5]) AS x", r(5)),
    ("SELECT APPROX_COUNT_DISTINCT(x) AS r FROM UNNEST([1, 1, 2]) AS x", r(2)),
    # window functions and query forms
    (
        "SELECT x, ROW_NUMBER() OVER (ORDER BY x) AS r FROM UNNEST([30, 10, 20]) AS x ORDER BY x",
        [{"x": 10, "r": 1}, {"x": 20, "r": 2}, {"x": 30, "r": 3}],
    ),
    (
        "SELECT x, RANK() OVER (ORDER BY x) AS r FROM UNNEST([1, 1, 2]) AS x ORDER BY x",
        [{"x": 1, "r": 1}, {"x": 1, "r": 1}, {"x": 2, "r": 3}],
    ),
    (
        "SELECT x, LAG(x) OVER (ORDER BY x) AS r FROM UNNEST([1, 2]) AS x ORDER BY x",
        [{"x": 1, "r": None}, {"x": 2, "r": 1}],
    ),
    (
        "SELECT x, SUM(x) OVER (ORDER BY x) AS r FROM UNNEST([1, 2, 3]) AS x ORDER BY x",
        [{"x": 1, "r": 1}, {"x": 2, "r": 3}, {"x": 3, "r": 6}],
    ),
    ("SELECT COUNTIF(x > 1) OVER () AS r FROM UNNEST([1, 2]) AS x", [{"r": 1}, {"r": 1}]),
    ("SELECT x FROM UNNEST([1, 2, 3]) AS x WHERE TRUE QUALIFY ROW_NUMBER() OVER (ORDER BY x DESC) = 1", [{"x": 3}]),
    ("SELECT * EXCEPT (b) FROM (SELECT 1 AS a, 2 AS b)", [{"a": 1}]),
    ("SELECT * REPLACE (a + 1 AS a) FROM (SELECT 1 AS a, 2 AS b)", [{"a": 2, "b": 2}]),
    ("SELECT STRUCT(1 AS a, 'x' AS b).b AS r", r("x")),
    ("SELECT EXISTS(SELECT 1) AS r", r(True)),
    ("SELECT SAFE.SUBSTR('abc', 0, -1) AS r", Unsupported("SAFE. prefix")),
    # JSON and hashing
    ("SELECT TO_JSON_STRING(STRUCT(1 AS a)) AS r", r('{"a":1}')),
    ("SELECT JSON_VALUE('{\"a\": 1}', '$.a') AS r", r("1")),
    ("SELECT MD5('a') AS r", r(bytes.fromhex("0cc175b9c0f1b6a831c399e269772661"))),
    ("SELECT FARM_FINGERPRINT('a') AS r", Unsupported("farm_fingerprint")),
    # embedding functions
    ("SELECT ML.DISTANCE([1.0, 2.0], [2.0, 4.0], 'MANHATTAN') AS r", r(3.0)),
    ("SELECT ML.DISTANCE([1.0, 0.0], [0.0, 1.0], 'COSINE') AS r", r(1.0)),
    ("SELECT COSINE_DISTANCE([1.0, 0.0], [0.0, 1.0]) AS r", r(1.0)),
    ("SELECT EUCLIDEAN_DISTANCE([0.0, 0.0], [3.0, 4.0]) AS r", r(5.0)),
]
