"""Run a script of statements on a dataset: split, parse, dispatch each statement to its handler.

Statements run one after the other on one connection, each committed when it succeeds. The first statement
that fails stops the script: the statements before it stay committed, and the :class:`SqlError` says which
statement failed (``statement 3 of 5 failed; statements 1..2 were committed``), with its line and column.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from lookalike.dataset import writer
from lookalike.errors import LookalikeError, SqlError
from lookalike.images import DEFAULT_MAX_PIXELS

# Importing the handler modules registers their statement forms and table functions.
from lookalike.sql import ml, models, objects, queries, vector  # noqa: F401
from lookalike.sql.context import Context
from lookalike.sql.parse import Statement, parse_statement, split_script
from lookalike.sql.registry import STATEMENTS
from lookalike.sql.result import SqlResult
from lookalike.storage import StorageOptions


def run_script(
    dataset_path: str | Path,
    script: str,
    *,
    storage_options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_result: Callable[[SqlResult], None] | None = None,
) -> list[SqlResult]:
    """Run the statements of ``script`` on the dataset at ``dataset_path``; return one result per statement.

    ``on_result`` is called with each result as soon as its statement has run (a front end can show
    progress). Raises :class:`SqlError` for the first statement that fails.
    """
    statements = split_script(script)
    if not statements:
        raise SqlError("no SQL statement to run", hint="pass statements, or a file with -f")
    results: list[SqlResult] = []
    with writer(os.fspath(dataset_path)) as con:
        ctx = Context(
            con=con,
            dataset_path=os.fspath(dataset_path),
            storage_options=storage_options,
            max_pixels=max_pixels,
            statement=statements[0],
            catalog=str(con.execute("SELECT current_database()").fetchall()[0][0]),
        )
        for stmt in statements:
            try:
                result = _run_one(ctx, stmt)
            except SqlError as err:
                raise _in_script(err, stmt, len(statements), len(results)) from err
            except LookalikeError as err:
                wrapped = stmt.error(err.message, hint=err.hint, cause=err.code)
                raise _in_script(wrapped, stmt, len(statements), len(results)) from err
            except duckdb.Error as err:
                raise _in_script(ctx.duckdb_error(err, None), stmt, len(statements), len(results)) from err
            finally:
                ctx.release()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _run_one(ctx: Context, stmt: Statement) -> SqlResult:
    ctx.statement = stmt
    ctx.notices = []
    ctx.statistics = []
    parsed = parse_statement(stmt)
    handler = STATEMENTS[parsed.form]
    outcome = handler(ctx, parsed)
    returns_rows = outcome.table is not None
    return SqlResult(
        statement=stmt.text,
        index=stmt.index,
        line=stmt.line,
        column=stmt.column,
        returns_rows=returns_rows,
        message=outcome.message,
        table=outcome.table if outcome.table is not None else pa.table({}),
        notices=list(ctx.notices),
        vector_search_statistics=list(ctx.statistics),
    )


def _in_script(err: SqlError, stmt: Statement, count: int, committed: int) -> SqlError:
    """Add to ``err`` which statement of the script failed and how many were committed before it."""
    if err.line is None:
        err.line, err.column = stmt.line, stmt.column
    if err.statement is None:
        err.statement = stmt.text
    err.statement_index = stmt.index
    err.statement_count = count
    err.committed = committed
    return err
