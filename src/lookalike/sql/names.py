"""BigQuery names and where they live in DuckDB.

BigQuery names a table ``project.dataset.table``; the demo writes ``dataset.table`` (often back-ticked, with
dashes: ``face_search.face-search_model``). In the dataset file, a BigQuery *dataset* is a DuckDB *schema*
and the project part is dropped. An unqualified name lives in DuckDB's ``main`` schema. Names are compared
without regard to case, as DuckDB does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
from sqlglot import exp

MAIN = "main"

#: Relations of Lookalike's own catalog (and the face rows of its hidden tables); left out of hints.
_INTERNAL_PREFIXES = ("lookalike_", "_lookalike_", "faces__")


@dataclass(frozen=True, slots=True)
class Name:
    """A relation or model name: a schema (BigQuery dataset) and a name, as the user wrote them."""

    schema: str
    name: str

    @property
    def key(self) -> str:
        """``schema.name`` in lower case: the catalog key."""
        return f"{self.schema.lower()}.{self.name.lower()}"

    @property
    def display(self) -> str:
        """How messages show it: ``dataset.table``, or just ``table`` in the main schema."""
        return self.name if self.schema.lower() == MAIN else f"{self.schema}.{self.name}"

    def sql(self, catalog: str | None = None) -> str:
        """A quoted DuckDB reference: ``"schema"."name"``.

        DuckDB cannot tell a schema from a database of the same name (a dataset file ``face_search.duckdb``
        with a schema ``face_search``), so then pass the database's name as ``catalog`` to qualify it fully.
        """
        ref = f"{quote(self.schema)}.{quote(self.name)}"
        if catalog is not None and catalog.lower() == self.schema.lower():
            return f"{quote(catalog)}.{ref}"
        return ref


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def name_of(table: exp.Table) -> Name:
    """The :class:`Name` of a sqlglot table reference (the project part, if any, is dropped)."""
    db = table.args.get("db")
    schema = db.name if isinstance(db, exp.Identifier) else (str(db) if db else MAIN)
    return Name(schema or MAIN, table.name)


def from_key(key: str) -> Name:
    schema, _, name = key.partition(".")
    return Name(schema, name)


def relations(con: duckdb.DuckDBPyConnection, *, internal: bool = False) -> dict[str, Name]:
    """The tables and views (temporary ones included), by key; Lookalike's catalog only with ``internal``."""
    rows = con.execute(
        """SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal
           UNION ALL
           SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"""
    ).fetchall()
    out: dict[str, Name] = {}
    for schema, name in rows:
        if not internal and str(name).lower().startswith(_INTERNAL_PREFIXES):
            continue
        n = Name(str(schema), str(name))
        out[n.key] = n
    return out


def schema_exists(con: duckdb.DuckDBPyConnection, schema: str) -> bool:
    rows = con.execute("SELECT count(*) FROM duckdb_schemas() WHERE lower(schema_name) = lower(?)", [schema]).fetchall()
    return bool(rows[0][0])


def did_you_mean(wanted: Name, candidates: Iterable[Name], what: str = "tables") -> str | None:
    """A hint naming the closest of ``candidates`` to ``wanted`` (by full name, then by name alone)."""
    cands = sorted(set(candidates), key=lambda n: n.key)
    if not cands:
        return None
    by_full = {n.key: n for n in cands}
    close = difflib.get_close_matches(wanted.key, list(by_full), n=1, cutoff=0.6)
    if not close:
        by_name: dict[str, Name] = {}
        for n in cands:
            by_name.setdefault(n.name.lower(), n)
        near = difflib.get_close_matches(wanted.name.lower(), list(by_name), n=1, cutoff=0.6)
        if near:
            return f"did you mean {by_name[near[0]].display}?"
        listing = ", ".join(n.display for n in cands[:10]) + (", ..." if len(cands) > 10 else "")
        return f"{what}: {listing}"
    return f"did you mean {by_full[close[0]].display}?"
