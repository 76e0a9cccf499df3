"""Constant values written in SQL: OPTIONS(...) values, STRUCT(...) parameters, named arguments.

These are evaluated here, in Python, not by DuckDB: they configure a statement rather than compute rows.
Supported: strings, numbers, TRUE/FALSE, NULL, negative numbers, arrays, ``INTERVAL n UNIT`` and
``INTERVAL 'Y-M D H:M:S' YEAR TO SECOND``, and ``STRUCT(value AS name, ...)``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from lookalike.sql.parse import Statement

_UNIT_SECONDS = {
    "MICROSECOND": 1e-6,
    "MILLISECOND": 1e-3,
    "SECOND": 1.0,
    "MINUTE": 60.0,
    "HOUR": 3600.0,
    "DAY": 86400.0,
    "WEEK": 7 * 86400.0,
    "MONTH": 30 * 86400.0,
    "QUARTER": 91 * 86400.0,
    "YEAR": 365 * 86400.0,
}
_CANONICAL_INTERVAL = re.compile(
    r"^\s*(?P<sign>-)?(?P<y>\d+)-(?P<m>\d+)\s+(?P<d>-?\d+)\s+(?P<h>-?\d+):(?P<mi>\d+):(?P<s>\d+(?:\.\d*)?)\s*$"
)


def constant(stmt: Statement, node: exp.Expr, what: str) -> Any:
    """The Python value of a constant expression; a :class:`SqlError` naming ``what`` for anything else."""
    if isinstance(node, exp.Kwarg):  # name => value
        node = node.expression
    if isinstance(node, exp.Paren):
        return constant(stmt, node.this, what)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = str(node.this)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Neg):
        value = constant(stmt, node.this, what)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    if isinstance(node, exp.Array):
        return [constant(stmt, item, what) for item in node.expressions]
    if isinstance(node, exp.Interval):
        return interval_seconds(stmt, node, what)
    if isinstance(node, exp.Struct):
        return struct_fields(stmt, node, what)
    raise stmt.error(f"{what} must be a constant (a string, number, TRUE/FALSE, array or INTERVAL)", at=node)


def struct_fields(stmt: Statement, node: exp.Expr, what: str) -> dict[str, Any]:
    """``STRUCT(TRUE AS flatten_json_output, 512 AS output_dimensionality)`` as a dict (lower-case keys)."""
    if not isinstance(node, exp.Struct):
        raise stmt.error(f"{what} must be a STRUCT(value AS name, ...)", at=node)
    out: dict[str, Any] = {}
    for item in node.expressions:
        if isinstance(item, (exp.PropertyEQ, exp.Alias)):
            key = (item.alias if isinstance(item, exp.Alias) else item.this.name).lower()
            value_node = item.this if isinstance(item, exp.Alias) else item.expression
            out[key] = (constant(stmt, value_node, f"{what} field {key}"), value_node)
        else:
            raise stmt.error(f"every field of {what} needs a name: STRUCT(value AS name, ...)", at=item)
    return {k: v[0] for k, v in out.items()}


def interval_seconds(stmt: Statement, node: exp.Interval, what: str) -> float:
    """An ``INTERVAL`` as seconds (months count 30 days, years 365)."""
    raw = node.this
    unit = node.args.get("unit")
    value_text = raw.name if isinstance(raw, exp.Literal) else None
    if isinstance(raw, exp.Neg) and isinstance(raw.this, exp.Literal):
        value_text = "-" + raw.this.name
    if isinstance(unit, exp.IntervalSpan) or (value_text and _CANONICAL_INTERVAL.match(value_text)):
        m = _CANONICAL_INTERVAL.match(value_text or "")
        if not m:
            raise stmt.error(
                f"{what}: cannot read the interval {value_text!r}",
                at=node,
                hint="write INTERVAL 4 HOUR or INTERVAL '0-0 0 4:0:0' YEAR TO SECOND",
            )
        total = (
            int(m["y"]) * _UNIT_SECONDS["YEAR"]
            + int(m["m"]) * _UNIT_SECONDS["MONTH"]
            + int(m["d"]) * 86400
            + int(m["h"]) * 3600
            + int(m["mi"]) * 60
            + float(m["s"])
        )
        return -total if m["sign"] else total
    unit_name = (unit.name if unit is not None else "SECOND").upper().rstrip("S") or "SECOND"
    if unit_name not in _UNIT_SECONDS:
        raise stmt.error(
            f"{what}: unknown interval unit {unit_name}", at=node, hint="use one of " + ", ".join(_UNIT_SECONDS)
        )
    try:
        amount = float(value_text or "")
    except ValueError:
        raise stmt.error(f"{what}: cannot read the interval amount {value_text!r}", at=node) from None
    return amount * _UNIT_SECONDS[unit_name]


def check_keys(
    stmt: Statement, given: dict[str, Any], allowed: dict[str, str], what: str, at: int | exp.Expr | None
) -> None:
    """Refuse keys of ``given`` that are not in ``allowed`` (``{key: description}``), listing the allowed ones."""
    for key in given:
        if key not in allowed:
            listing = "; ".join(f"{k}: {d}" for k, d in allowed.items())
            raise stmt.error(f"unknown {what} {key!r}", at=at, hint=f"supported: {listing}")
