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


REWRITES: dict[type[exp.Expr] | str, Callable[[Context, exp.Expr], exp.Expr]] = {
    exp.Format: _format,
    exp.CountIf: _countif,
    exp.Window: _window,
    "ML.DISTANCE": _distance,
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
    for node in list(tree.find_all(exp.Expr, bfs=False))[::-1]:
        name = _ml_name(node)
        fn = REWRITES.get(name) if name is not None else REWRITES.get(type(node))
        if fn is None:
            continue
        target = node.expression if name is not None else node
        replacement = fn(ctx, target)
        if replacement is not target:
            node.replace(replacement)
