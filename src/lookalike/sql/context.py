"""What a statement handler works with: the open connection, the dataset's settings, the statement itself.

A :class:`Context` lives for one script run (one connection); :attr:`Context.statement` is the statement
being run. Results of table functions are registered on the connection as temporary Arrow views and
released after each statement.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from sqlglot import exp

from lookalike.errors import SqlError
from lookalike.sql.names import MAIN, Name, did_you_mean, name_of, quote, relations, schema_exists
from lookalike.sql.parse import Statement, quiet_sqlglot
from lookalike.storage import StorageOptions

#: Prefix of the temporary views holding table-function results (hidden from hints).
TEMP_PREFIX = "_lookalike_tf_"


@dataclass(slots=True)
class Outcome:
    """What a handler produced: rows (``None`` for a statement without rows) and a one-line message."""

    table: pa.Table | None
    message: str


@dataclass(slots=True)
class Context:
    """The state shared by the handlers while a script runs."""

    con: duckdb.DuckDBPyConnection
    dataset_path: str
    storage_options: StorageOptions | None
    max_pixels: int
    statement: Statement
    #: The DuckDB database (catalog) name of the dataset file, e.g. ``faces`` for ``faces.duckdb``.
    catalog: str = "main"
    notices: list[str] = field(default_factory=list)
    #: How each VECTOR_SEARCH of the statement used a vector index (BigQuery's ``vectorSearchStatistics``).
    statistics: list[dict[str, object]] = field(default_factory=list)
    _registered: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------------------------------ errors

    def error(
        self,
        message: str,
        *,
        at: int | exp.Expr | None = None,
        hint: str | None = None,
        cls: type[SqlError] = SqlError,
    ) -> SqlError:
        """A positioned :class:`SqlError` about the current statement (see :meth:`Statement.error`)."""
        return self.statement.error(message, at=at, hint=hint, cls=cls)

    def ref(self, name: Name) -> str:
        """``name`` as a DuckDB reference, fully qualified where a schema shares the database's name."""
        return name.sql(self.catalog)

    def ensure_schema(self, schema: str) -> None:
        """Create the schema (BigQuery dataset) ``schema`` if it does not exist yet, and say so.

        In BigQuery a dataset is made outside SQL (``bq mk``) before the demo's statements run; here the
        first statement that creates something in it makes it.
        """
        if schema_exists(self.con, schema):
            return
        ref = quote(schema)
        if schema.lower() == self.catalog.lower():  # see Name.sql
            ref = f"{quote(self.catalog)}.{ref}"
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {ref}")
        self.notice(f"created dataset (schema) {schema}, which did not exist")

    def notice(self, message: str) -> None:
        """Something the user should know that is not an error (shown on stderr by the CLI)."""
        self.notices.append(message)

    def missing_table(self, table: exp.Table) -> SqlError:
        """The error for a table that does not exist, with a did-you-mean hint."""
        from lookalike.sql.people import SCHEMAS  # the people views (they import this module)

        wanted = name_of(table)
        hint = did_you_mean(wanted, relations(self.con).values())
        if hint is None or not hint.startswith("did you mean"):
            near = did_you_mean(wanted, [Name(MAIN, v) for v in SCHEMAS])
            hint = near if near is not None and near.startswith("did you mean") else hint
        return self.error(f"table {wanted.display} was not found", at=table, hint=hint)

    # ------------------------------------------------------------------------------------------ running SQL

    def query(self, tree: exp.Expr) -> pa.Table:
        """Run a query (a sqlglot tree in BigQuery's dialect) on DuckDB and return all its rows."""
        return self.query_sql(to_duckdb(tree), tree)

    def query_sql(self, sql: str, tree: exp.Expr | None = None) -> pa.Table:
        """Run a DuckDB query and return its rows; DuckDB's errors become positioned :class:`SqlError`."""
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as err:
            raise self.duckdb_error(err, tree) from None

    def execute(self, sql: str, tree: exp.Expr | None = None) -> list[tuple[object, ...]]:
        """Run a DuckDB statement that returns no rows (or a count) and fetch what it returns."""
        try:
            return self.con.execute(sql).fetchall()
        except duckdb.Error as err:
            raise self.duckdb_error(err, tree) from None

    def register(self, table: pa.Table) -> str:
        """Make ``table`` queryable under a fresh temporary name until the statement ends."""
        name = f"{TEMP_PREFIX}{next(self._counter)}"
        self.con.register(name, table)
        self._registered.append(name)
        return name

    def release(self) -> None:
        """Drop the temporary views registered while the statement ran."""
        while self._registered:
            self.con.unregister(self._registered.pop())

    def duckdb_error(self, err: duckdb.Error, tree: exp.Expr | None) -> SqlError:
        """Turn a DuckDB error into a :class:`SqlError` placed at the name it is about, when it can be found."""
        text = str(err)
        first, _, rest = text.partition("\n")
        message = re.sub(r"^[A-Za-z ]+ Error: ", "", first).strip()
        hint = None
        m = re.search(r'Did you mean "([^"]+)"\?', rest)
        if m:
            hint = f"did you mean {m.group(1)}?"
        m = re.search(r"Candidate bindings: (.+)", rest)
        if m:
            hint = "columns here: " + m.group(1).strip()
        schema = re.search(r"Schema with name (\S+) does not exist", first)
        if schema:
            hint = f"create it first: CREATE SCHEMA {schema.group(1)}"
        missing_fn = re.search(r"(?:Scalar|Aggregate|Table) Function with name (\w+) does not exist", first)
        if missing_fn:
            message = f"function {missing_fn.group(1).upper()} is not supported by Lookalike's SQL"
            hint = "docs/sql.md lists what runs (the conformance table); DuckDB's own functions work too"
        at = _locate(tree, first) if tree is not None else None
        return self.error(message, at=at, hint=hint)


def _locate(tree: exp.Expr, message: str) -> exp.Expr | None:
    """The first node of ``tree`` named by a DuckDB error message (a quoted or "with name X" name)."""
    names = re.findall(r'"([^"]+)"', message) + re.findall(r"with name (\S+)", message)
    for raw in names:
        wanted = raw.split(".")[-1].lower()
        for node in tree.walk():
            if (
                isinstance(node, (exp.Identifier,))
                and node.name.lower() == wanted
                and node.meta.get("start") is not None
            ):
                return node
    return None


def to_duckdb(tree: exp.Expr) -> str:
    """BigQuery SQL (a sqlglot tree) as DuckDB SQL."""
    with quiet_sqlglot():
        return tree.sql(dialect="duckdb")


def resolve_or_none(con: duckdb.DuckDBPyConnection, name: Name) -> Name | None:
    """The existing relation called ``name`` (its stored spelling), or ``None``."""
    return relations(con).get(name.key)
