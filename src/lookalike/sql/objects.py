"""Object tables: ``CREATE EXTERNAL TABLE ... OPTIONS(object_metadata = 'SIMPLE', uris = [...])``.

An object table lists the objects (photos) under some URIs: local paths, ``file://``, ``s3://`` and ``gs://``,
with ``*`` wildcards that match any characters including ``/`` (BigQuery's rule: ``gs://b/faces/*`` is every
object below ``faces/``). Selecting from it gives BigQuery's columns: ``uri``, ``generation``,
``content_type``, ``size``, ``md5_hash``, ``updated``.

Storage:

- ``lookalike_sql_object_tables``: the definition (canonical URIs, options) and when its cache was refreshed.
- ``lookalike_sql_object_cache``: the metadata cache, one row per listed object (with its fingerprint, which
  ML.GENERATE_EMBEDDING uses to reuse embeddings of unchanged objects).
- a DuckDB view named like the table, selecting the BigQuery columns from the cache.

The metadata cache follows BigQuery's rules: without ``max_staleness`` every statement that reads the table
lists the URIs again (no caching); with it, the cache is used while it is younger than ``max_staleness``, and
listed again when older. ``metadata_cache_mode = 'MANUAL'`` or ``'AUTOMATIC'`` is recorded;
``CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('dataset.table')`` refreshes the cache now, in either mode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from lookalike.dataset import store
from lookalike.dataset.connection import transaction
from lookalike.errors import LookalikeError, SqlNotSupported
from lookalike.sql.context import Context, Outcome
from lookalike.sql.names import Name, did_you_mean, from_key, name_of, relations
from lookalike.sql.parse import ParsedStatement, create_options
from lookalike.sql.people import check_writable
from lookalike.sql.registry import statement
from lookalike.sql.values import check_keys, constant
from lookalike.storage import ObjectInfo, StorageOptions, list_objects, parse_source

#: The clock used for cache staleness (tests replace it to move time on).
clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731

OPTIONS = {
    "object_metadata": "'SIMPLE' (required: this makes an object table)",
    "uris": "array of URIs, * matches any characters (required)",
    "max_staleness": "INTERVAL; how old the metadata cache may be (no caching without it)",
    "metadata_cache_mode": "'AUTOMATIC' or 'MANUAL'",
    "description": "text (kept, not used)",
    "labels": "(kept, not used)",
}

CACHE_MODES = ("AUTOMATIC", "MANUAL")

#: The columns of an object table, in BigQuery's order, as the view computes them from the cache.
_VIEW_COLUMNS = "uri, TRY_CAST(generation AS BIGINT) AS generation, content_type, size, md5 AS md5_hash, updated"


@dataclass(frozen=True, slots=True)
class ObjectTable:
    """An object table's definition and the time of its last metadata refresh."""

    name: Name
    uris: tuple[str, ...]
    connection: str | None
    max_staleness_s: float | None
    cache_mode: str | None
    refreshed_at: datetime | None

    def is_stale(self, now: datetime) -> bool:
        """Whether the cache must be refreshed before the table is read."""
        if self.refreshed_at is None or self.max_staleness_s is None:
            return True
        return (now - self.refreshed_at).total_seconds() > self.max_staleness_s


_SELECT = """SELECT name, display_name, uris, connection, max_staleness_s, metadata_cache_mode, refreshed_at
             FROM lookalike_sql_object_tables"""


def _from_row(row: tuple[Any, ...]) -> ObjectTable:
    schema, _, name = str(row[1]).partition(".")
    refreshed = row[6]
    if isinstance(refreshed, datetime) and refreshed.tzinfo is None:
        refreshed = refreshed.replace(tzinfo=UTC)
    return ObjectTable(
        name=Name(schema, name),
        uris=tuple(row[2]),
        connection=row[3],
        max_staleness_s=row[4],
        cache_mode=row[5],
        refreshed_at=refreshed,
    )


def find(ctx: Context, name: Name) -> ObjectTable | None:
    rows = ctx.con.execute(_SELECT + " WHERE name = ?", [name.key]).fetchall()
    return _from_row(rows[0]) if rows else None


def all_tables(ctx: Context) -> dict[str, ObjectTable]:
    return {r[0]: _from_row(r) for r in ctx.con.execute(_SELECT).fetchall()}


# ---------------------------------------------------------------------------------------------- listing


def canonical_uri(uri: str) -> str:
    """The canonical form of a URI or path, wildcards kept: an absolute path, ``s3://...`` or ``gs://...``."""
    parsed = parse_source(uri)
    path = parsed.pattern or parsed.root
    return path if parsed.protocol == "file" else f"{parsed.protocol}://{path.lstrip('/')}"


def list_uris(uris: tuple[str, ...] | list[str], options: StorageOptions | None) -> list[ObjectInfo]:
    """Every object the (canonical) ``uris`` name, sorted by URI, each once.

    A URI without ``*`` names one object, or a folder / prefix listed recursively. With ``*``, the folder
    before the first ``*`` is listed recursively and each object's URI must match the whole pattern, where
    ``*`` matches any characters, ``/`` included.
    """
    found: dict[str, ObjectInfo] = {}
    for uri in uris:
        if "*" not in uri:
            for _source, info in list_objects([uri], options=options, images_only=False):
                found.setdefault(info.uri, info)
            continue
        prefix = uri[: uri.index("*")]
        root = prefix[: prefix.rfind("/")] if "/" in prefix else prefix
        if root.endswith(":/") or root.endswith("://") or not root:
            root = prefix  # a bucket root like gs://bucket/*
        pattern = re.compile("".join(".*" if ch == "*" else re.escape(ch) for ch in uri) + r"\Z", re.S)
        for _source, info in list_objects([root], options=options, images_only=False):
            if pattern.match(info.uri):
                found.setdefault(info.uri, info)
    return [found[k] for k in sorted(found)]


def _write_cache(ctx: Context, key: str, infos: list[ObjectInfo], now: datetime) -> None:
    """Replace the cached listing of ``key`` (call inside a transaction)."""
    ctx.con.execute("DELETE FROM lookalike_sql_object_cache WHERE tbl = ?", [key])
    store.insert_arrow(ctx.con, "lookalike_sql_object_cache", pa.table(store.object_columns(key, infos)))
    ctx.con.execute("UPDATE lookalike_sql_object_tables SET refreshed_at = ? WHERE name = ?", [now, key])


def refresh(ctx: Context, table: ObjectTable) -> int:
    """List the table's URIs now and replace its metadata cache; return the number of objects."""
    infos = list_uris(table.uris, ctx.storage_options)
    with transaction(ctx.con):
        _write_cache(ctx, table.name.key, infos, clock())
    return len(infos)


def ensure_fresh(ctx: Context, tree: exp.Expr) -> None:
    """Refresh the metadata cache of every object table ``tree`` reads whose cache is too old."""
    tables = all_tables(ctx)
    if not tables:
        return
    now = clock()
    done: set[str] = set()
    for ref in tree.find_all(exp.Table):
        if not isinstance(ref.this, exp.Identifier):
            continue
        key = name_of(ref).key
        table = tables.get(key)
        if table is not None and key not in done:
            done.add(key)
            if table.is_stale(now):
                try:
                    refresh(ctx, table)
                except LookalikeError as err:
                    raise ctx.error(
                        f"cannot list the objects of {table.name.display}: {err.message}", at=ref, hint=err.hint
                    ) from err


# ---------------------------------------------------------------------------------------------- statements


@statement("create_external_table")
def create_external_table(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``CREATE [OR REPLACE] EXTERNAL TABLE [IF NOT EXISTS] name [WITH CONNECTION c] OPTIONS(...)``."""
    tree = parsed.tree
    assert isinstance(tree, exp.Create) and isinstance(tree.this, exp.Table)
    stmt = ctx.statement
    check_writable(ctx, tree.this)
    name = name_of(tree.this)
    given: dict[str, Any] = {}
    where: dict[str, int] = {}
    for key, node, offset in create_options(stmt, tree):
        given[key] = constant(stmt, node, f"option {key}")
        where[key] = offset
    check_keys(stmt, given, OPTIONS, "option", tree.this)
    if str(given.get("object_metadata") or "").upper() != "SIMPLE":
        raise ctx.error(
            "only object tables are supported: CREATE EXTERNAL TABLE needs object_metadata = 'SIMPLE'",
            at=tree.this,
            cls=SqlNotSupported,
            hint="for CSV or Parquet files, query them with DuckDB's read_csv / read_parquet",
        )
    uris = given.get("uris")
    if isinstance(uris, str):
        uris = [uris]
    if not uris or not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris):
        raise ctx.error(
            "option uris must be a non-empty array of URI strings",
            at=where.get("uris", 0),
            hint="uris = ['gs://bucket/faces/*'] or ['photos/*']",
        )
    staleness = given.get("max_staleness")
    if staleness is not None and (not isinstance(staleness, (int, float)) or staleness <= 0):
        raise ctx.error(
            "option max_staleness must be a positive INTERVAL",
            at=where.get("max_staleness"),
            hint="max_staleness = INTERVAL 4 HOUR",
        )
    mode = given.get("metadata_cache_mode")
    if mode is not None and str(mode).upper() not in CACHE_MODES:
        raise ctx.error(
            f"option metadata_cache_mode must be one of {', '.join(CACHE_MODES)}, not {mode!r}",
            at=where.get("metadata_cache_mode"),
        )
    existing = relations(ctx.con).get(name.key)
    if existing is not None:
        if tree.args.get("exists"):
            return Outcome(None, f"{name.display} already exists; left unchanged")
        if not tree.args.get("replace"):
            raise ctx.error(
                f"table {existing.display} already exists",
                at=tree.this,
                hint="use CREATE OR REPLACE EXTERNAL TABLE, or another name",
            )
    try:
        canonical = [canonical_uri(u) for u in uris]
        infos = list_uris(canonical, ctx.storage_options)
    except LookalikeError as err:
        raise ctx.error(err.message, at=where.get("uris"), hint=err.hint) from err
    options = {k: v for k, v in given.items() if k in ("description", "labels")}
    now = clock()
    with transaction(ctx.con):
        ctx.ensure_schema(name.schema)
        if existing is not None:
            _drop_relation(ctx, existing)
        ctx.con.execute(
            """INSERT INTO lookalike_sql_object_tables
               (name, display_name, uris, connection, max_staleness_s, metadata_cache_mode, options)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [
                name.key,
                f"{name.schema}.{name.name}",
                canonical,
                parsed.connection,
                float(staleness) if staleness is not None else None,
                str(mode).upper() if mode is not None else None,
                json.dumps(options),
            ],
        )
        _write_cache(ctx, name.key, infos, now)
        literal = "'" + name.key.replace("'", "''") + "'"
        ctx.con.execute(
            f"CREATE VIEW {ctx.ref(name)} AS SELECT {_VIEW_COLUMNS} FROM main.lookalike_sql_object_cache "
            f"WHERE tbl = {literal} ORDER BY uri"
        )
    verb = "replaced" if existing is not None else "created"
    return Outcome(None, f"{verb} object table {name.display} ({len(infos)} objects)")


def _drop_relation(ctx: Context, name: Name) -> None:
    """Drop a table, view or object table (with its catalog rows). Call inside a transaction."""
    kind = ctx.con.execute(
        """SELECT 'VIEW' FROM duckdb_views() WHERE lower(schema_name) = ? AND lower(view_name) = ?
           UNION ALL
           SELECT 'TABLE' FROM duckdb_tables() WHERE lower(schema_name) = ? AND lower(table_name) = ?""",
        [name.schema.lower(), name.name.lower()] * 2,
    ).fetchall()
    if kind:
        ctx.con.execute(f"DROP {kind[0][0]} IF EXISTS {ctx.ref(name)}")
    forget(ctx, name.key)


def forget(ctx: Context, key: str) -> None:
    """Remove the catalog rows of object table ``key`` (its view is dropped by the caller)."""
    ctx.con.execute("DELETE FROM lookalike_sql_object_cache WHERE tbl = ?", [key])
    ctx.con.execute("DELETE FROM lookalike_sql_object_tables WHERE name = ?", [key])
    ctx.con.execute("DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ?", [key])


def drop(ctx: Context, table: ObjectTable) -> Outcome:
    """Drop an object table: its view, definition and metadata cache (embeddings made from it are kept)."""
    with transaction(ctx.con):
        ctx.con.execute(f"DROP VIEW IF EXISTS {ctx.ref(table.name)}")
        forget(ctx, table.name.key)
    return Outcome(None, f"dropped object table {table.name.display}")


@statement("drop_external_table")
def drop_external_table(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``DROP EXTERNAL TABLE [IF EXISTS] name``."""
    assert parsed.name is not None
    name = name_of(parsed.name)
    table = find(ctx, name)
    if table is None:
        if parsed.if_exists:
            return Outcome(None, f"no object table {name.display}; nothing dropped")
        hint_names = [t.name for t in all_tables(ctx).values()]
        raise ctx.error(
            f"object table {name.display} was not found",
            at=parsed.name,
            hint=did_you_mean(name, hint_names, "object tables"),
        )
    return drop(ctx, table)


@statement("refresh_metadata_cache")
def refresh_metadata_cache(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('dataset.table')``."""
    assert parsed.name is not None
    name = name_of(parsed.name)
    table = find(ctx, name)
    if table is None:
        raise ctx.error(
            f"object table {name.display} was not found",
            at=parsed.name,
            hint=did_you_mean(name, [t.name for t in all_tables(ctx).values()], "object tables"),
        )
    try:
        count = refresh(ctx, table)
    except LookalikeError as err:
        raise ctx.error(f"cannot list the objects of {name.display}: {err.message}", hint=err.hint) from err
    return Outcome(None, f"refreshed the metadata cache of {name.display} ({count} objects)")


def forget_schema(ctx: Context, schema: str) -> None:
    """After ``DROP SCHEMA``: forget the object tables that lived in it."""
    for key in list(all_tables(ctx)):
        if from_key(key).schema == schema.lower():
            forget(ctx, key)
