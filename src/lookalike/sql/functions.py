"""BigQuery functions whose DuckDB translation would answer differently: rewritten faithfully, or refused.

sqlglot passes some BigQuery calls to DuckDB unchanged where DuckDB's function of the same name means something
else, and does not know BigQuery ML's row functions. Each rewrite here is one entry of :data:`REWRITES` (a
sqlglot node type, or a ``ML.NAME`` function name, mapped to a function that returns the replacement node or
raises :class:`~lookalike.errors.SqlNotSupported` naming what it cannot render):

- ``FORMAT(fmt, ...)``: BigQuery's printf-style format; DuckDB's ``FORMAT`` uses ``{}`` placeholders and returned
  the format string itself. It becomes DuckDB's ``printf``, with ``%s`` arguments cast to STRING; ``%t``, ``%T``,
  ``%p``, ``%P`` and the ``'`` flag are refused, and so is a format that is not a string literal.
- ``COUNTIF(...)``: INT64 in BigQuery; DuckDB's ``COUNT_IF`` is a HUGEINT that surfaced as a FLOAT.
- ``ML.DISTANCE(a, b [, 'EUCLIDEAN' | 'COSINE' | 'MANHATTAN'])``: NULL when either input is NULL, an error when
  the lengths differ, as in BigQuery.
- ``UNNEST(...) WITH OFFSET``: BigQuery's offsets start at 0; DuckDB's ``WITH ORDINALITY`` starts at 1.
- ``EXTRACT(DAYOFWEEK ...)``: 1 (Sunday) to 7 in BigQuery, 0 to 6 in DuckDB; ``EXTRACT(WEEK ...)`` (weeks that
  start on Sunday) has no DuckDB counterpart and is refused (``ISOWEEK`` works).
- ``INSTR(s, sub, position, occurrence)``: refused with a position or occurrence (DuckDB's ignores them).
- ``DATE_ADD``, ``DATE_SUB``, ``DATE_TRUNC``: a DATE, not a TIMESTAMP.
- A numeric literal with a point or an exponent (``2.5``, ``1e3``) is a FLOAT64, as in BigQuery (DuckDB reads it as
  a DECIMAL: ``ROUND(2.5)`` was a NUMERIC).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from lookalike.errors import SqlNotSupported
from lookalike.sql.context import Context

_SPEC = re.compile(r"%(?P<flags>[-+ #0']*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?(?P<conv>[a-zA-Z%])")
_SUPPORTED = set("dioxXfFeEgGs%")


def _format(ctx: Context, node: exp.Expr) -> exp.Expr:
    fmt = node.this
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise ctx.error(
            "FORMAT with a format that is not a string literal is not supported",
            at=node,
            hint="write the format as a literal, e.g. FORMAT('%05d', n), or use DuckDB's printf",
            cls=SqlNotSupported,
        )
    args = list(node.expressions)
    out: list[exp.Expr] = []
    pos = 0
    for m in _SPEC.finditer(fmt.this):
        conv = m.group("conv")
        if conv == "%":
            continue
        if conv not in _SUPPORTED or "'" in (m.group("flags") or "") or "*" in (m.group(0)):
            raise ctx.error(
                f"FORMAT specifier {m.group(0)!r} is not supported",
                at=node,
                hint="supported: %d %i %o %x %X %f %F %e %E %g %G %s with width, precision and -+ #0 flags",
                cls=SqlNotSupported,
            )
        if pos >= len(args):
            raise ctx.error(f"FORMAT has more specifiers than arguments ({len(args)})", at=node)
        arg = args[pos]
        out.append(exp.cast(arg.copy(), "VARCHAR") if conv == "s" else arg.copy())
        pos += 1
    if pos != len(args):
        raise ctx.error(f"FORMAT has {len(args)} arguments but {pos} specifiers", at=node)
    return exp.Anonymous(this="printf", expressions=[fmt.copy(), *out])


def _countif(ctx: Context, node: exp.Expr) -> exp.Expr:
    if isinstance(node.parent, exp.Window) and node.parent.this is node:
        return node  # cast as a whole window call (below): a cast cannot sit between COUNT_IF and OVER
    return exp.cast(node.copy(), "BIGINT")


def _window(ctx: Context, node: exp.Expr) -> exp.Expr:
    return exp.cast(node.copy(), "BIGINT") if isinstance(node.this, exp.CountIf) else node


def _distance(ctx: Context, node: exp.Expr) -> exp.Expr:
    args = list(node.expressions)
    if len(args) not in (2, 3):
        raise ctx.error("ML.DISTANCE takes two arrays and an optional distance type", at=node)
    kind = "EUCLIDEAN"
    if len(args) == 3:
        if not (isinstance(args[2], exp.Literal) and args[2].is_string):
            raise ctx.error("ML.DISTANCE's distance type must be a string literal", at=node)
        kind = args[2].this.upper()
    a, b = (exp.cast(x.copy(), "DOUBLE[]") for x in args[:2])
    if kind == "EUCLIDEAN":
        body = f"list_distance({a.sql('duckdb')}, {b.sql('duckdb')})"
    elif kind == "COSINE":
        body = f"list_cosine_distance({a.sql('duckdb')}, {b.sql('duckdb')})"
    elif kind == "MANHATTAN":
        sa, sb = a.sql("duckdb"), b.sql("duckdb")
        body = f"list_sum(list_transform(range(1, len({sa}) + 1), i -> abs({sa}[i] - {sb}[i])))"
    else:
        raise ctx.error(
            f"ML.DISTANCE distance type {kind!r} is not supported",
            at=node,
            hint="use 'EUCLIDEAN', 'COSINE' or 'MANHATTAN'",
            cls=SqlNotSupported,
        )
    sa, sb = a.sql("duckdb"), b.sql("duckdb")
    guard = (
        f"CASE WHEN len({sa}) <> len({sb}) THEN error('ML.DISTANCE: the arrays have different lengths ' || "
        f"len({sa}) || ' and ' || len({sb})) ELSE {body} END"
    )
    return exp.maybe_parse(guard, dialect="duckdb")


def _unnest(ctx: Context, node: exp.Expr) -> exp.Expr:
    offset = node.args.get("offset")
    if not isinstance(offset, exp.Identifier) or not isinstance(node.parent, (exp.From, exp.Join)):
        return node
    alias = node.args.get("alias")
    cols = list(alias.columns) if isinstance(alias, exp.TableAlias) else []
    value = cols[0].name if cols else (alias.name if isinstance(alias, exp.TableAlias) and alias.name else "value")
    array = node.expressions[0].sql("duckdb")
    sub = (
        f"(SELECT _u.{_q(value)} AS {_q(value)}, _u._ordinal - 1 AS {_q(offset.name)} "
        f"FROM UNNEST({array}) WITH ORDINALITY AS _u({_q(value)}, _ordinal))"
    )
    table_alias = alias.name if isinstance(alias, exp.TableAlias) and alias.name and cols else "_unnest_offset"
    return exp.Subquery(
        this=exp.maybe_parse(sub[1:-1], dialect="duckdb"),
        alias=exp.TableAlias(this=exp.to_identifier(table_alias)),
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _extract(ctx: Context, node: exp.Expr) -> exp.Expr:
    unit = node.this.name.upper() if isinstance(node.this, (exp.Var, exp.Identifier)) else ""
    if unit == "DAYOFWEEK":
        return exp.Paren(this=exp.Add(this=node.copy(), expression=exp.Literal.number(1)))
    if unit in ("ISOWEEK", "ISOYEAR"):  # DuckDB's WEEK is the ISO week
        copy = node.copy()
        copy.set("this", exp.var("week" if unit == "ISOWEEK" else "isoyear"))
        return copy
    if unit == "WEEK" or (isinstance(node.this, exp.Func) and "WEEK" in node.this.sql().upper()):
        raise ctx.error(
            "EXTRACT(WEEK ...) (weeks starting on Sunday) is not supported",
            at=node,
            hint="use EXTRACT(ISOWEEK FROM ...), or DuckDB's strftime(d, '%U')",
            cls=SqlNotSupported,
        )
    return node


def _instr(ctx: Context, node: exp.Expr) -> exp.Expr:
    position = node.args.get("position")
    occurrence = node.args.get("occurrence")
    plain = (position is None or (isinstance(position, exp.Literal) and position.this == "1")) and occurrence is None
    if not plain:
        raise ctx.error(
            "INSTR with a position or an occurrence is not supported",
            at=node,
            hint="INSTR(s, sub) and STRPOS(s, sub) find the first occurrence",
            cls=SqlNotSupported,
        )
    return node


def _as_date(ctx: Context, node: exp.Expr) -> exp.Expr:
    return exp.cast(node.copy(), "DATE")


def _float_literal(ctx: Context, node: exp.Expr) -> exp.Expr:
    if not isinstance(node, exp.Literal) or node.is_string:
        return node
    text = str(node.this).lower()
    if not any(c in text for c in ".e") or isinstance(node.parent, exp.Cast):
        return node
    return exp.cast(node.copy(), "DOUBLE")


def _div(ctx: Context, node: exp.Expr) -> exp.Expr:
    """``a / b`` is an error when ``b`` is 0 in BigQuery (DuckDB gives infinity); IEEE_DIVIDE gives infinity."""
    if node.args.get("safe"):
        return node
    a, b = node.this.sql("duckdb"), node.expression.sql("duckdb")
    fail = f"error('division by zero: ' || CAST(({a}) AS VARCHAR) || ' / 0')"
    text = f"CASE WHEN ({b}) = 0 THEN {fail} ELSE ({a}) / ({b}) END"
    return exp.Paren(this=exp.maybe_parse(text, dialect="duckdb"))


def _ieee_divide(ctx: Context, node: exp.Expr) -> exp.Expr:
    args = list(node.expressions)
    if len(args) != 2:
        raise ctx.error("IEEE_DIVIDE takes two arguments", at=node)
    a, b = (x.sql("duckdb") for x in args)
    return exp.Paren(this=exp.maybe_parse(f"CAST(({a}) AS DOUBLE) / ({b})", dialect="duckdb"))


def _float64(ctx: Context, node: exp.Expr) -> exp.Expr:
    """ROUND, TRUNC, CEIL and FLOOR give a FLOAT64 in BigQuery, also for an INT64."""
    return exp.cast(node.copy(), "DOUBLE")


def _array_concat(ctx: Context, node: exp.Expr) -> exp.Expr:
    """ARRAY_CONCAT is NULL when any input is NULL (DuckDB's list_concat skips it)."""
    parts = [node.this, *node.expressions]
    nulls = " OR ".join(f"({p.sql('duckdb')}) IS NULL" for p in parts)
    return exp.Paren(
        this=exp.maybe_parse(f"CASE WHEN {nulls} THEN NULL ELSE {node.sql('duckdb')} END", dialect="duckdb")
    )


def _array_slice(ctx: Context, node: exp.Expr) -> exp.Expr:
    """ARRAY_SLICE(a, start, end): 0-based offsets, inclusive, negative from the end (DuckDB: 1-based)."""
    arr = node.this.sql("duckdb")
    start, end = node.args.get("start"), node.args.get("end")
    if start is None or end is None:
        raise ctx.error("ARRAY_SLICE takes an array, a start offset and an end offset", at=node)

    def one_based(x: exp.Expr) -> str:
        v = x.sql("duckdb")
        return f"CASE WHEN ({v}) >= 0 THEN ({v}) + 1 ELSE ({v}) END"

    return exp.maybe_parse(f"list_slice({arr}, {one_based(start)}, {one_based(end)})", dialect="duckdb")


def _json_type(ctx: Context, node: exp.Expr) -> exp.Expr:
    """JSON_TYPE names types as BigQuery does (``number``, ``string``...), not as DuckDB (``UBIGINT``...)."""
    inner = node.sql("duckdb")
    text = (
        f"CASE {inner} WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' WHEN 'VARCHAR' THEN 'string' "
        f"WHEN 'BOOLEAN' THEN 'boolean' WHEN 'NULL' THEN 'null' ELSE 'number' END"
    )
    return exp.Paren(this=exp.maybe_parse(text, dialect="duckdb"))


def _cast_int64(ctx: Context, node: exp.Expr) -> exp.Expr:
    """CAST(x AS INT64) of a FLOAT64 or NUMERIC rounds half away from zero in BigQuery (-2.5 -> -3); DuckDB's cast
    rounds half up (-2.5 -> -2). The type is only known when DuckDB binds, so the rounding is chosen there."""
    to = node.args.get("to")
    if not (isinstance(to, exp.DataType) and to.this == exp.DataType.Type.BIGINT):
        return node
    x = node.this.sql("duckdb")
    cast = "TRY_CAST" if isinstance(node, exp.TryCast) else "CAST"
    text = (
        f"CASE WHEN typeof({x}) IN ('DOUBLE', 'FLOAT') OR typeof({x}) LIKE 'DECIMAL%' "
        f"THEN {cast}(round(TRY_CAST({x} AS DOUBLE)) AS BIGINT) ELSE {cast}({x} AS BIGINT) END"
    )
    return exp.Paren(this=exp.maybe_parse(text, dialect="duckdb"))


def _normalizer(ctx: Context, node: exp.Expr) -> exp.Expr:
    """ML.NORMALIZER(v [, p]): ``v`` divided by its p-norm (p = 2 by default, any p >= 1, or +inf). A vector of
    norm 0 is an error here (Lookalike does not guess BigQuery's answer for it); p = 0 is refused."""
    args = list(node.expressions)
    if not args or len(args) > 2:
        raise ctx.error("ML.NORMALIZER takes an array and an optional p", at=node)
    v = exp.cast(args[0].copy(), "DOUBLE[]").sql("duckdb")
    p_text = "2"
    if len(args) == 2:
        p_node = args[1]
        if isinstance(p_node, exp.Cast) and isinstance(p_node.this, exp.Literal) and "INF" in p_node.this.this.upper():
            p_text = "inf"
        elif isinstance(p_node, exp.Literal) and not p_node.is_string and float(p_node.this) >= 1:
            p_text = str(float(p_node.this))
        else:
            raise ctx.error(
                "ML.NORMALIZER's p must be a number literal >= 1 or CAST('+INF' AS FLOAT64)",
                at=node,
                hint="p = 0 (counting non-zero values) is not supported",
                cls=SqlNotSupported,
            )
    if p_text == "inf":
        norm = f"list_max(list_transform({v}, x -> abs(x)))"
    elif p_text in ("2", "2.0"):
        norm = f"sqrt(list_sum(list_transform({v}, x -> x * x)))"
    else:
        norm = f"pow(list_sum(list_transform({v}, x -> pow(abs(x), {p_text}))), 1.0 / {p_text})"
    text = (
        f"CASE WHEN {v} IS NULL THEN NULL WHEN {norm} = 0 THEN error('ML.NORMALIZER: the vector has norm 0') "
        f"ELSE list_transform({v}, x -> x / {norm}) END"
    )
    return exp.Paren(this=exp.maybe_parse(text, dialect="duckdb"))


def _array_agg(ctx: Context, node: exp.Expr) -> exp.Expr:
    """ARRAY_AGG(x [ORDER BY ...] LIMIT n): DuckDB has no LIMIT there; the first n of the ordered aggregate."""
    limit = node.this
    if not isinstance(limit, exp.Limit):
        return node
    count = limit.expression
    if not (isinstance(count, exp.Literal) and not count.is_string and str(count.this).isdigit()):
        raise ctx.error("ARRAY_AGG(... LIMIT n) needs n as an integer literal", at=node, cls=SqlNotSupported)
    inner = node.copy()
    inner.set("this", limit.this.copy())
    return exp.maybe_parse(f"list_slice({inner.sql('duckdb')}, 1, {int(count.this)})", dialect="duckdb")


REWRITES: dict[type[exp.Expr] | str, Callable[[Context, exp.Expr], exp.Expr]] = {
    exp.ArrayAgg: _array_agg,
    exp.Cast: _cast_int64,
    exp.TryCast: _cast_int64,
    exp.Div: _div,
    "IEEE_DIVIDE": _ieee_divide,
    exp.Round: _float64,
    exp.Ceil: _float64,
    exp.Floor: _float64,
    exp.Trunc: _float64,
    exp.DateFromUnixDate: _as_date,
    exp.ArrayConcat: _array_concat,
    exp.ArraySlice: _array_slice,
    exp.JSONType: _json_type,
    exp.Unnest: _unnest,
    exp.Extract: _extract,
    exp.StrPosition: _instr,
    exp.DateAdd: _as_date,
    exp.DateSub: _as_date,
    exp.DateTrunc: _as_date,
    exp.Literal: _float_literal,
    exp.Format: _format,
    exp.CountIf: _countif,
    exp.Window: _window,
    "ML.DISTANCE": _distance,
    "ML.NORMALIZER": _normalizer,
}


def _ml_name(node: exp.Expr) -> str | None:
    if (
        isinstance(node, exp.Dot)
        and isinstance(node.this, exp.Identifier)
        and isinstance(node.expression, exp.Anonymous)
    ):
        return f"{node.this.name.upper()}.{str(node.expression.this).upper()}"
    return None


def rewrite_functions(ctx: Context, tree: exp.Expr) -> None:
    """Apply :data:`REWRITES` to every matching call in ``tree`` (in place), innermost first."""
    safe_func = getattr(exp, "SafeFunc", None)
    for dot in tree.find_all(exp.Dot, *([safe_func] if safe_func is not None else [])):
        is_safe = not isinstance(dot, exp.Dot) or (
            isinstance(dot.this, exp.Identifier) and dot.this.name.upper() == "SAFE"
        )
        if is_safe:
            raise ctx.error(
                f"the SAFE. prefix is not supported ({dot.sql(dialect='bigquery')[:60]})",
                at=dot,
                hint="SAFE_CAST, SAFE_DIVIDE, SAFE_OFFSET and SAFE_ORDINAL are; or guard the call with IF or CASE",
                cls=SqlNotSupported,
            )
    for node in list(tree.find_all(exp.Expr, bfs=False))[::-1]:
        name = _ml_name(node)
        if name is None and isinstance(node, exp.Anonymous):
            fn = REWRITES.get(str(node.this).upper())
        else:
            fn = REWRITES.get(name) if name is not None else REWRITES.get(type(node))
        if fn is None:
            continue
        target = node.expression if name is not None else node
        replacement = fn(ctx, target)
        if replacement is not target:
            node.replace(replacement)
