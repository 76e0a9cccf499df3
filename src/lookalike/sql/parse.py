"""Reading SQL text: split a script into statements, parse each one, and say where things are.

sqlglot parses most of BigQuery's SQL, including the demo's ``CREATE MODEL``, ``ML.GENERATE_EMBEDDING`` and
``VECTOR_SEARCH``. A few statement forms it cannot parse (it falls back to an opaque ``Command``):
``CREATE EXTERNAL TABLE ... WITH CONNECTION``, ``CREATE VECTOR INDEX``, ``ALTER VECTOR INDEX ... REBUILD``,
``DROP VECTOR INDEX``,
``DROP EXTERNAL TABLE`` and ``CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE``. This module recognises those with
small patterns and gives each statement a *form* (a name that :mod:`lookalike.sql.run` maps to a handler).

Positions: every :class:`Statement` knows its offset in the script, so a position inside it (from a parse
error, or from a node's ``meta``) is reported as a line and column of the whole script.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from lookalike.errors import SqlError, SqlNotSupported, SqlParseError

DIALECT = "bigquery"

# A name as BigQuery writes it: `back-ticked.parts` or plain parts, dotted.
_PART = r"(?:`[^`]+`|[A-Za-z_][\w\-]*)"
_NAME = rf"{_PART}(?:\s*\.\s*{_PART})*"

_EXTERNAL_WITH_CONNECTION = re.compile(
    rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?EXTERNAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*"
    rf"(?P<clause>WITH\s+CONNECTION\s+(?P<conn>{_NAME}))",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_VECTOR_INDEX = re.compile(
    rf"^\s*CREATE\s+(?P<replace>OR\s+REPLACE\s+)?VECTOR\s+INDEX\s+(?P<exists>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME})\s*\(\s*(?P<column>{_PART})\s*\)\s*"
    rf"(?:STORING\s*\((?P<storing>[^)]*)\)\s*)?"
    rf"(?:OPTIONS\s*\((?P<options>.*)\))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DROP_VECTOR_INDEX = re.compile(
    rf"^\s*DROP\s+VECTOR\s+INDEX\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME})\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ALTER_VECTOR_INDEX = re.compile(
    rf"^\s*ALTER\s+VECTOR\s+INDEX\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME})\s+REBUILD\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_MODEL = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?MODEL\b", re.IGNORECASE)
_DROP_EXTERNAL_TABLE = re.compile(
    rf"^\s*DROP\s+EXTERNAL\s+TABLE\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CALL_REFRESH = re.compile(
    r"^\s*CALL\s+BQ\s*\.\s*REFRESH_EXTERNAL_METADATA_CACHE\s*\(\s*(?P<arg>'[^']*'|\"[^\"]*\")\s*\)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_VECTOR_INDEX_WORDS = re.compile(r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?|DROP\s+|ALTER\s+)VECTOR\s+INDEX\b", re.I)


@contextmanager
def quiet_sqlglot() -> Iterator[None]:
    """Silence sqlglot's warnings ("unsupported property"...) while parsing and generating SQL."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(slots=True)
class Statement:
    """One statement of a script: its text and where it starts (offset, 1-based line and column)."""

    text: str
    index: int  # 1-based position in the script
    offset: int
    line: int
    column: int
    script: str = field(repr=False, default="")
    #: An error found while splitting (an unterminated string...), raised when the statement is parsed.
    split_error: SqlError | None = field(default=None, repr=False)

    def position(self, offset_in_statement: int | None) -> tuple[int, int]:
        """Script line and column of a character offset inside this statement (its start when ``None``)."""
        if offset_in_statement is None:
            return self.line, self.column
        return line_col(self.script, self.offset + max(0, offset_in_statement))

    def error(
        self,
        message: str,
        *,
        at: int | exp.Expr | None = None,
        hint: str | None = None,
        cls: type[SqlError] = SqlError,
        cause: str | None = None,
    ) -> SqlError:
        """A :class:`SqlError` about this statement, placed at an offset or a parsed node (else its start)."""
        offset = node_offset(at) if isinstance(at, exp.Expr) else at
        line, column = self.position(offset)
        return cls(message, hint=hint, line=line, column=column, statement=self.text, cause=cause)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    offset = min(offset, len(text))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def node_offset(node: exp.Expr | None) -> int | None:
    """The smallest source offset recorded on ``node`` or its descendants (sqlglot keeps them in ``meta``)."""
    if node is None:
        return None
    best: int | None = None
    for sub in node.walk():
        meta = sub._meta
        start = meta.get("start") if meta else None
        if isinstance(start, int) and (best is None or start < best):
            best = start
    return best


# ---------------------------------------------------------------------------------------------- splitting


def split_script(script: str) -> list[Statement]:
    """Split ``script`` at its top-level semicolons (strings and comments are respected).

    Empty statements are dropped. If the text cannot be tokenized (an unterminated string or comment), the
    statements before the bad spot are returned as usual and the rest becomes one last statement that fails
    when parsed, so the earlier statements still run.
    """
    try:
        tokens = BigQuery().tokenize(script)
        broken_at: int | None = None
    except TokenError as err:
        broken_at = _token_error_offset(err, script)
        tokens = _tokens_before(script, broken_at)
    statements: list[Statement] = []
    start_tok = None
    last_tok = None
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if start_tok is not None and last_tok is not None:
                statements.append(_make(script, start_tok.start, last_tok.end + 1, len(statements) + 1))
            start_tok = last_tok = None
            continue
        if start_tok is None:
            start_tok = tok
        last_tok = tok
    if broken_at is not None:
        begin = start_tok.start if start_tok is not None else broken_at
        stmt = _make(script, begin, len(script), len(statements) + 1)
        stmt.text = stmt.text.rstrip()
        line, column = line_col(script, broken_at)
        stmt.split_error = SqlParseError(
            "cannot read the SQL text here: an unterminated string, quoted name or comment",
            hint="close the quote (', \", ` or ''') or the /* comment */",
            line=line,
            column=column,
            statement=stmt.text,
        )
        statements.append(stmt)
    elif start_tok is not None and last_tok is not None:
        statements.append(_make(script, start_tok.start, last_tok.end + 1, len(statements) + 1))
    return statements


def _token_error_offset(err: TokenError, text: str) -> int:
    """Where tokenizing failed: the start of the unterminated string or comment, as well as it can be told."""
    size = len(text)
    cause = str(err.__cause__ or "")
    m = re.search(r"from \d+:(\d+)", cause)
    if m:
        return min(int(m.group(1)), size)
    comment = text.rfind("/*")
    if comment >= 0 and "*/" not in text[comment + 2 :]:
        return comment
    start = getattr(err, "start", None)
    end = getattr(err, "end", None)
    if isinstance(start, int) and start > 0:
        return min(start + 50, size)  # sqlglot shows 50 characters either side of the failure
    if isinstance(end, int) and end < size - 1:
        return max(end - 50, 0)
    return 0


def _tokens_before(script: str, offset: int) -> list[Any]:
    """Tokens of ``script[:offset]`` (whatever can be tokenized before a tokenizer error)."""
    try:
        return list(BigQuery().tokenize(script[:offset]))
    except TokenError:
        return []


def _make(script: str, start: int, end: int, index: int) -> Statement:
    line, column = line_col(script, start)
    return Statement(text=script[start:end], index=index, offset=start, line=line, column=column, script=script)


# ---------------------------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class ParsedStatement:
    """A statement with its form (the handler to run it) and what was parsed out of it.

    ``tree`` is sqlglot's expression when sqlglot could parse the statement; the other fields are filled for
    the forms parsed here (vector indexes, ``DROP EXTERNAL TABLE``, the metadata cache refresh).
    """

    statement: Statement
    form: str
    tree: exp.Expr | None = None
    connection: str | None = None
    name: exp.Table | None = None
    table: exp.Table | None = None
    column: str | None = None
    storing: list[str] = field(default_factory=list)
    options: list[tuple[str, exp.Expr, int]] = field(default_factory=list)  # (key, value, offset in stmt)
    replace: bool = False
    if_exists: bool = False  # IF EXISTS (DROP) or IF NOT EXISTS (CREATE)


def parse_statement(stmt: Statement) -> ParsedStatement:
    """Parse one statement and decide its form; raise :class:`SqlParseError` with its position if invalid."""
    if stmt.split_error is not None:
        raise stmt.split_error
    text = stmt.text
    special = _parse_special(stmt)
    if special is not None:
        return special
    connection: str | None = None
    match = _EXTERNAL_WITH_CONNECTION.match(text)
    if match:
        # sqlglot reads CREATE EXTERNAL TABLE ... OPTIONS(...) but not the WITH CONNECTION clause: blank it
        # out (keeping every other character where it was, so positions stay right) and parse the rest.
        connection = _name_text(match.group("conn"))
        a, b = match.span("clause")
        text = text[:a] + re.sub(r"[^\n]", " ", text[a:b]) + text[b:]
    if _CREATE_MODEL.match(text):
        # sqlglot reads LAYOUT as one of its own (ClickHouse) properties: quote the option name
        text = re.sub(r"(?i)(?<![`\w])(LAYOUT)(\s*=)", r"`\1`\2", text)
    tree = _sqlglot_parse(stmt, text)
    form = _form_of(stmt, tree)
    return ParsedStatement(statement=stmt, form=form, tree=tree, connection=connection)


def _sqlglot_parse(stmt: Statement, text: str) -> exp.Expr:
    try:
        with quiet_sqlglot():
            trees = sqlglot.parse(text, read=DIALECT)
    except ParseError as err:
        raise _parse_error(stmt, err) from None
    except TokenError as err:
        raise stmt.error(
            "cannot read the SQL text here: an unterminated string, quoted name or comment",
            at=_token_error_offset(err, text),
            cls=SqlParseError,
        ) from None
    except (AttributeError, TypeError, ValueError) as err:  # sqlglot trips on some malformed input
        if "VECTOR_SEARCH" in text.upper():
            raise stmt.error(
                "cannot parse the VECTOR_SEARCH call: after the query table and its column name, arguments go by name",
                hint="VECTOR_SEARCH(TABLE base, 'column', TABLE query, top_k => 5, distance_type => 'COSINE')",
                cls=SqlParseError,
            ) from None
        raise stmt.error(f"cannot parse this statement ({type(err).__name__}: {err})", cls=SqlParseError) from None
    parsed = [t for t in trees if t is not None]
    if len(parsed) != 1:
        raise stmt.error("expected one statement here", cls=SqlParseError)
    return parsed[0]


def _parse_error(stmt: Statement, err: ParseError) -> SqlParseError:
    info = err.errors[0] if err.errors else {}
    line = info.get("line")
    col = info.get("col")
    highlight = str(info.get("highlight") or "")
    description = str(info.get("description") or str(err)).strip()
    if description.startswith("Required keyword"):
        description = "the expression is incomplete"
    elif description.startswith("Expecting"):
        description = "expected " + description[len("Expecting") :].strip()
    if isinstance(line, int) and isinstance(col, int):
        # sqlglot reports the column where the offending token ends; point at where it starts
        if highlight and "\n" not in highlight:
            col = max(1, col - len(highlight) + 1)
        abs_line = stmt.line + line - 1
        abs_col = stmt.column + col - 1 if line == 1 else col
    else:
        abs_line, abs_col = stmt.line, stmt.column
    near = f" near {highlight!r}" if highlight else ""
    return SqlParseError(
        f"syntax error{near}: {description}",
        line=abs_line,
        column=abs_col,
        statement=stmt.text,
        hint="check the statement against BigQuery's syntax",
    )


def _form_of(stmt: Statement, tree: exp.Expr) -> str:
    """The handler name for a statement sqlglot parsed."""
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind") or "").upper()
        if kind == "MODEL":
            return "create_model"
        if kind == "TABLE" and _has_property(tree, exp.ExternalProperty):
            return "create_external_table"
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind") or "").upper() == "MODEL":
        return "drop_model"
    if isinstance(tree, (exp.Transaction, exp.Commit, exp.Rollback)):
        raise stmt.error(
            "transactions (BEGIN / COMMIT / ROLLBACK) are not supported in Lookalike SQL scripts",
            hint="each statement is committed when it succeeds; leave these statements out",
            cls=SqlNotSupported,
        )
    if isinstance(tree, exp.Command):
        head = stmt.text.strip().split(None, 3)
        what = " ".join(head[:3]).upper()
        raise stmt.error(
            f"this statement is not supported: {what} ...",
            hint="supported: queries, DDL and DML that DuckDB runs, CREATE MODEL, CREATE EXTERNAL TABLE, "
            "CREATE/ALTER/DROP VECTOR INDEX, CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE",
            cls=SqlNotSupported,
        )
    return "query"


def _has_property(tree: exp.Expr, kind: type[exp.Expr]) -> bool:
    props = tree.args.get("properties")
    return props is not None and any(isinstance(p, kind) for p in props.expressions)


def _parse_special(stmt: Statement) -> ParsedStatement | None:
    """The statement forms sqlglot cannot parse, or ``None`` for any other statement."""
    text = stmt.text
    if m := _CREATE_VECTOR_INDEX.match(text):
        storing = [_name_text(s) for s in (m.group("storing") or "").split(",") if s.strip()]
        options = _parse_options(stmt, m.group("options"), m.start("options")) if m.group("options") else []
        return ParsedStatement(
            statement=stmt,
            form="create_vector_index",
            name=_table(stmt, m.group("name"), m.start("name")),
            table=_table(stmt, m.group("table"), m.start("table")),
            column=_name_text(m.group("column")),
            storing=storing,
            options=options,
            replace=bool(m.group("replace")),
            if_exists=bool(m.group("exists")),
        )
    for pattern, form in ((_DROP_VECTOR_INDEX, "drop_vector_index"), (_ALTER_VECTOR_INDEX, "alter_vector_index")):
        if m := pattern.match(text):
            return ParsedStatement(
                statement=stmt,
                form=form,
                name=_table(stmt, m.group("name"), m.start("name")),
                table=_table(stmt, m.group("table"), m.start("table")),
                if_exists=bool(m.group("exists")),
            )
    if _VECTOR_INDEX_WORDS.match(text):
        raise stmt.error(
            "cannot parse this VECTOR INDEX statement",
            hint="CREATE [OR REPLACE] VECTOR INDEX [IF NOT EXISTS] name ON dataset.table(column) "
            "[STORING(col, ...)] OPTIONS(index_type = 'IVF', distance_type = 'COSINE'), or "
            "DROP VECTOR INDEX [IF EXISTS] name ON dataset.table, or ALTER VECTOR INDEX name ON dataset.table REBUILD",
            cls=SqlParseError,
        )
    if m := _DROP_EXTERNAL_TABLE.match(text):
        return ParsedStatement(
            statement=stmt,
            form="drop_external_table",
            name=_table(stmt, m.group("name"), m.start("name")),
            if_exists=bool(m.group("exists")),
        )
    if m := _CALL_REFRESH.match(text):
        arg = m.group("arg")[1:-1]
        return ParsedStatement(
            statement=stmt,
            form="refresh_metadata_cache",
            name=_table(stmt, f"`{arg}`", m.start("arg")),
        )
    if re.match(r"^\s*CALL\b", text, re.I):
        raise stmt.error(
            "only CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('dataset.table') is supported",
            cls=SqlNotSupported,
        )
    return None


def _name_text(raw: str) -> str:
    """A dotted name without backticks or spaces: `` `us.face_conn` `` -> ``us.face_conn``."""
    return ".".join(p.strip().strip("`") for p in re.findall(r"`[^`]+`|[^.\s]+", raw.strip()))


def _table(stmt: Statement, raw: str, offset: int | None = None) -> exp.Table:
    """A name parsed into a sqlglot table (``dataset.table``), positioned at ``offset`` of the statement."""
    try:
        with quiet_sqlglot():
            table = exp.to_table(raw.strip(), dialect=DIALECT)
    except (ParseError, TokenError):
        raise stmt.error(f"invalid name {raw.strip()!r}", at=offset, cls=SqlParseError) from None
    if offset is not None:
        for ident in table.find_all(exp.Identifier):
            ident.meta["start"] = offset
    return table


def _parse_options(stmt: Statement, body: str, offset: int) -> list[tuple[str, exp.Expr, int]]:
    """``key = value, ...`` of an ``OPTIONS(...)`` list, each value parsed as a BigQuery expression."""
    if not body.strip():
        return []
    try:
        with quiet_sqlglot():
            select = sqlglot.parse_one(f"SELECT {body}", read=DIALECT)
    except (ParseError, TokenError):
        raise stmt.error(
            "cannot parse OPTIONS(...)", at=offset, cls=SqlParseError, hint="write OPTIONS(key = value, ...)"
        ) from None
    shift = offset - len("SELECT ")  # positions inside the OPTIONS list -> positions in the statement
    for node in select.walk():
        meta = node._meta
        if meta and isinstance(meta.get("start"), int):
            meta["start"] += shift
    out: list[tuple[str, exp.Expr, int]] = []
    for item in select.expressions:
        if not isinstance(item, exp.EQ) or not isinstance(item.this, exp.Column):
            raise stmt.error("OPTIONS(...) holds key = value pairs", at=offset, cls=SqlParseError)
        out.append((item.this.name.lower(), item.expression, node_offset(item) or offset))
    return out


def create_options(stmt: Statement, tree: exp.Expr) -> list[tuple[str, exp.Expr, int]]:
    """``OPTIONS(key = value, ...)`` of a parsed ``CREATE`` statement, as (lower-case key, value, offset)."""
    props = tree.args.get("properties")
    out: list[tuple[str, exp.Expr, int]] = []
    if not props:
        return out
    for prop in props.expressions:
        if isinstance(prop, exp.Property):
            key = prop.name.lower() if prop.name else str(prop.this).lower()
            value = prop.args.get("value")
            if value is not None:
                out.append((key, value, node_offset(prop) or node_offset(value) or 0))
    return out
