"""The dataset's catalog schema, its version, and the migrations between versions.

Catalog tables (all prefixed ``lookalike_`` so that they sit beside the user's own tables):

- ``lookalike_meta(key, value)``: ``schema_version`` and the creating package version.
- ``lookalike_models``: each face model used in the dataset, with its card (dim, threshold...).
- ``lookalike_tables``: the named face tables (collections): model, dimension, version counter.
- ``lookalike_objects``: one row per (table, object): the object's SIMPLE metadata, its fingerprint, and how
  indexing went (``status`` = ``ok`` | ``no_face`` | ``error``).
- ``faces_<table>``: one row per detected face (``embedding FLOAT[dim]``), or one status row per object with no
  face or an error (``embedding`` NULL, ``status`` says why). Created per table by :func:`faces_ddl`.
- ``lookalike_tables.calibration`` (version 3): the table's same-person calibration, recomputed when it changes.
- ``lookalike_sql_vector_indexes`` (version 4 adds the build): every vector index, on a face table or a SQL
  table; its files live beside the dataset (:mod:`lookalike.search.vindex.files`).
- ``lookalike_jobs`` (version 5): index jobs started through the REST API, with their status and progress.
- ``lookalike_persons``, ``lookalike_person_faces``, ``lookalike_person_cannot_link``,
  ``lookalike_people_forgotten``, ``lookalike_people_log`` (version 6): faces grouped into persons
  (:mod:`lookalike.people`): each person (name, hidden, feature face, confirmed by a user), each face's person
  (and whether a user put it there), the faces a user moved out of a person, the faces a user forgot (where they
  were, never their embedding), and every manual decision as a row.
- ``lookalike_sql_*`` (version 2): the catalog of the SQL front end (:mod:`lookalike.sql`): models made with
  ``CREATE MODEL``, object tables made with ``CREATE EXTERNAL TABLE`` and their metadata cache, and vector
  index definitions.

To change the schema: bump :data:`SCHEMA_VERSION` and append a function to :data:`MIGRATIONS` that upgrades the
previous version in place. Migrations run in one transaction when a dataset is opened for writing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb

from lookalike.errors import DatasetError, InvalidArgument

SCHEMA_VERSION = 6

_TABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS lookalike_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_models (
            name VARCHAR PRIMARY KEY, dim INTEGER NOT NULL, threshold DOUBLE NOT NULL,
            card JSON, registered_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_tables (
            name VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, dim INTEGER NOT NULL,
            faces_table VARCHAR NOT NULL, version BIGINT NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ DEFAULT current_timestamp, updated_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_objects (
            tbl VARCHAR NOT NULL, uri VARCHAR NOT NULL, source VARCHAR, size BIGINT, content_type VARCHAR,
            updated TIMESTAMPTZ, etag VARCHAR, md5 VARCHAR, generation VARCHAR, fingerprint VARCHAR,
            status VARCHAR NOT NULL, error VARCHAR, n_faces INTEGER NOT NULL DEFAULT 0,
            indexed_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute("CREATE SEQUENCE IF NOT EXISTS lookalike_face_id START 1")


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    """The SQL front end's catalog. Names are ``schema.name``, lower case (DuckDB names ignore case)."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_sql_models (
            name VARCHAR PRIMARY KEY, display_name VARCHAR NOT NULL, endpoint VARCHAR NOT NULL,
            model VARCHAR NOT NULL, connection VARCHAR, created_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_sql_object_tables (
            name VARCHAR PRIMARY KEY, display_name VARCHAR NOT NULL, uris VARCHAR[] NOT NULL,
            connection VARCHAR, max_staleness_s DOUBLE, metadata_cache_mode VARCHAR, options JSON,
            refreshed_at TIMESTAMPTZ, created_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_sql_object_cache (
            tbl VARCHAR NOT NULL, uri VARCHAR NOT NULL, size BIGINT, content_type VARCHAR, updated TIMESTAMPTZ,
            etag VARCHAR, md5 VARCHAR, generation VARCHAR, fingerprint VARCHAR)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_sql_vector_indexes (
            tbl VARCHAR NOT NULL, name VARCHAR NOT NULL, display_name VARCHAR NOT NULL,
            column_name VARCHAR NOT NULL, storing VARCHAR[], index_type VARCHAR NOT NULL,
            distance_type VARCHAR NOT NULL, options JSON, created_at TIMESTAMPTZ DEFAULT current_timestamp,
            PRIMARY KEY (tbl, name))"""
    )


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    """Each face table's same-person calibration (:mod:`lookalike.search.calibration`), as JSON, and the table
    version it was computed for."""
    con.execute("ALTER TABLE lookalike_tables ADD COLUMN IF NOT EXISTS calibration JSON")
    con.execute("ALTER TABLE lookalike_tables ADD COLUMN IF NOT EXISTS calibrated_version BIGINT")


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    """Vector indexes that are built (:mod:`lookalike.search.vindex`): the checked definition, the id column
    (NULL: rows are named by a hash of their vector), and the current build (its files, checksums, sizes)."""
    for column, kind in (
        ("spec", "JSON"),
        ("id_column", "VARCHAR"),
        ("build", "JSON"),
        ("status", "VARCHAR"),
        ("last_refresh_time", "TIMESTAMPTZ"),
    ):
        con.execute(f"ALTER TABLE lookalike_sql_vector_indexes ADD COLUMN IF NOT EXISTS {column} {kind}")


def _v5(con: duckdb.DuckDBPyConnection) -> None:
    """Index jobs started through the REST API (:mod:`lookalike.dataset.jobs`), so they outlive the server."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_jobs (
            id VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, record JSON NOT NULL,
            created_at TIMESTAMPTZ DEFAULT current_timestamp, updated_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )


def _v6(con: duckdb.DuckDBPyConnection) -> None:
    """People (:mod:`lookalike.people`). Every manual decision is a row, so a full regrouping, a crash or a
    migration loses nothing a user did."""
    con.execute("CREATE SEQUENCE IF NOT EXISTS lookalike_person_id START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_persons (
            tbl VARCHAR NOT NULL, person_id BIGINT NOT NULL, name VARCHAR, hidden BOOLEAN NOT NULL DEFAULT false,
            feature_face_id BIGINT, confirmed BOOLEAN NOT NULL DEFAULT false,
            created_at TIMESTAMPTZ DEFAULT current_timestamp, updated_at TIMESTAMPTZ DEFAULT current_timestamp,
            PRIMARY KEY (tbl, person_id))"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_person_faces (
            tbl VARCHAR NOT NULL, face_id BIGINT NOT NULL, person_id BIGINT NOT NULL,
            manual BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (tbl, face_id))"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_person_cannot_link (
            tbl VARCHAR NOT NULL, face_id BIGINT NOT NULL, person_id BIGINT NOT NULL,
            created_at TIMESTAMPTZ DEFAULT current_timestamp, PRIMARY KEY (tbl, face_id, person_id))"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_people_forgotten (
            tbl VARCHAR NOT NULL, uri VARCHAR NOT NULL, fingerprint VARCHAR, face_index INTEGER, bbox FLOAT[4],
            person_id BIGINT, forgotten_at TIMESTAMPTZ DEFAULT current_timestamp)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS lookalike_people_log (
            tbl VARCHAR NOT NULL, logged_at TIMESTAMPTZ DEFAULT current_timestamp, action VARCHAR NOT NULL,
            detail JSON)"""
    )


#: ``MIGRATIONS[i]`` upgrades a dataset from schema version ``i`` to ``i + 1`` (version 0 = empty file).
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version stored in the file (0 for a file without Lookalike's catalog)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'lookalike_meta' AND schema_name = 'main'"
    ).fetchall()
    if not exists[0][0]:
        return 0
    row = con.execute("SELECT value FROM lookalike_meta WHERE key = 'schema_version'").fetchall()
    return int(row[0][0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the catalog up to :data:`SCHEMA_VERSION`; return the version found before."""
    found = current_version(con)
    if found > SCHEMA_VERSION:
        raise DatasetError(
            f"dataset schema version {found} is newer than this lookalike supports ({SCHEMA_VERSION})",
            hint="upgrade lookalike",
        )
    if found == SCHEMA_VERSION:
        return found
    con.execute("BEGIN TRANSACTION")
    try:
        for step in MIGRATIONS[found:SCHEMA_VERSION]:
            step(con)
        con.execute("INSERT OR REPLACE INTO lookalike_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return found


def check_table_name(name: str) -> str:
    """Validate a face table (collection) name: letters, digits and ``_``, not starting with a digit."""
    if not _TABLE_NAME_RE.match(name or ""):
        raise InvalidArgument(
            f"invalid table name {name!r}",
            hint="use letters, digits and underscores, starting with a letter (e.g. 'faces' or 'team_photos')",
        )
    return name


def faces_table_name(table: str) -> str:
    return f"faces_{check_table_name(table)}"


def faces_ddl(table: str, dim: int) -> str:
    """``CREATE TABLE`` statement for the face rows of ``table`` with ``FLOAT[dim]`` embeddings."""
    return f"""CREATE TABLE IF NOT EXISTS "{faces_table_name(table)}" (
        face_id BIGINT NOT NULL DEFAULT nextval('lookalike_face_id'),
        uri VARCHAR NOT NULL,
        face_index INTEGER,
        bbox FLOAT[4],
        landmarks FLOAT[10],
        det_score FLOAT,
        embedding FLOAT[{int(dim)}],
        status VARCHAR NOT NULL DEFAULT '')"""
