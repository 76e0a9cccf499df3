"""The result of one statement, and how front ends show it (a terminal table, JSON, CSV)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lookalike.textable import render

_EMPTY = pa.table({})


@dataclass(slots=True)
class SqlResult:
    """What one statement gave.

    Attributes:
        statement: the statement's text.
        index: its 1-based position in the script.
        line, column: where it starts in the script.
        returns_rows: whether it is a query (its rows may still be none); ``False`` for DDL and DML.
        message: one line saying what it did (``created model face_search.m``, ``5 rows``...).
        notices: things worth knowing that are not errors (embeddings reused, exact search used...).
        vector_search_statistics: one entry per ``VECTOR_SEARCH`` in the statement: ``index_usage_mode``
            (``FULLY_USED``, ``PARTIALLY_USED`` or ``UNUSED``), ``index_unused_reasons`` and counts, as BigQuery's
            job statistics give them.
    """

    statement: str
    index: int
    line: int
    column: int
    returns_rows: bool
    message: str
    table: pa.Table = field(default_factory=lambda: _EMPTY)
    notices: list[str] = field(default_factory=list)
    vector_search_statistics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table (no columns for a statement without rows)."""
        return self.table

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as a list of ``{column: value}`` dicts (STRUCTs are dicts, ARRAYs are lists)."""
        return self.table.to_pylist()

    def __repr__(self) -> str:
        return f"SqlResult(#{self.index}, {self.message!r}, columns={self.columns})"


# ---------------------------------------------------------------------------------------------- JSON / CSV


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: timestamps in ISO 8601, bytes in base64, NaN and infinities as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def to_json(result: SqlResult) -> str:
    """The rows as one JSON array of row objects."""
    return json.dumps([jsonable(row) for row in result.to_pylist()], indent=2)


def to_csv(result: SqlResult) -> str:
    """The rows as CSV with a header line; ARRAY and STRUCT values are written as JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.to_pylist():
        cells = []
        for value in row.values():
            value = jsonable(value)
            cells.append(json.dumps(value) if isinstance(value, (list, dict)) else "" if value is None else value)
        writer.writerow(cells)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- terminal


def _short(value: Any, depth: int = 0) -> str:
    """A value shortened for a terminal cell: long arrays elided, structs as ``{key: value, ...}``."""
    if value is None:
        return "NULL" if depth else ""
    if isinstance(value, float):
        return f"{value:.4f}" if depth else repr(value) if not math.isfinite(value) else f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        if len(value) > 4:
            head = ", ".join(_short(v, depth + 1) for v in value[:3])
            return f"[{head}, … {len(value)} values]"
        return "[" + ", ".join(_short(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v, depth + 1)}" for k, v in value.items()) + "}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def to_text(result: SqlResult) -> str:
    """A readable table for a query, or the statement's message."""
    if not result.returns_rows:
        return result.message
    rows = [[_short(v) for v in row.values()] for row in result.to_pylist()]
    if not result.columns:
        return result.message
    return render(result.columns, rows, max_width=60) + f"\n({result.message})"
