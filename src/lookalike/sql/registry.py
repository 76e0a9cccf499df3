"""The two registries of the SQL front end: statement handlers and table functions.

* A **statement handler** runs one form of statement (``create_model``, ``create_external_table``,
  ``query``...; :mod:`lookalike.sql.parse` decides the form). Register one with ``@statement("form")``.
* A **table function** computes a relation that a query uses like a table (``ML.GENERATE_EMBEDDING``,
  ``VECTOR_SEARCH``). Register one with ``@table_function(SqlglotNodeType)``. It receives the call's node and
  an ``evaluate`` callback that runs one of its relation arguments (``TABLE t`` or ``(subquery)``) and
  returns the rows as Arrow.

Adding a statement form or a table function is one decorated function in its own module, plus an import in
:mod:`lookalike.sql.run` so that it registers.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from sqlglot import exp

from lookalike.sql.context import Context, Outcome
from lookalike.sql.parse import ParsedStatement

StatementHandler = Callable[[Context, ParsedStatement], Outcome]
Evaluate = Callable[[exp.Expr], pa.Table]
TableFunction = Callable[[Context, exp.Expr, Evaluate], pa.Table]

STATEMENTS: dict[str, StatementHandler] = {}
TABLE_FUNCTIONS: dict[type[exp.Expr], TableFunction] = {}


def statement(form: str) -> Callable[[StatementHandler], StatementHandler]:
    """Decorator: run statements of ``form`` with the decorated function."""

    def deco(fn: StatementHandler) -> StatementHandler:
        STATEMENTS[form] = fn
        return fn

    return deco


def table_function(node_type: type[exp.Expr]) -> Callable[[TableFunction], TableFunction]:
    """Decorator: compute calls parsed as ``node_type`` (a sqlglot expression class) with the function."""

    def deco(fn: TableFunction) -> TableFunction:
        TABLE_FUNCTIONS[node_type] = fn
        return fn

    return deco
