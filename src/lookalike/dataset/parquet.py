"""Export a face table as Parquet shards plus a ``manifest.json``, and import such an export back.

An export is a folder (local, ``file://``, ``s3://`` or ``gs://``) holding::

    faces-00000.parquet     one row per face, or one status row per photo without a face (as in the table)
    faces-00001.parquet     ... at most ``shard_rows`` rows each
    manifest.json           model card, dimension, calibration, table version, every shard's rows and SHA-256

Every shard has the same schema (:func:`export_schema`), so the folder loads as it is into BigQuery
(``bq load --source_format=PARQUET --parquet_enable_list_inference``), Spark and DuckDB
(``SELECT * FROM 'folder/*.parquet'``); ``docs/export.md`` lists the types each of them gets.

Each row also carries its photo's object metadata (size, content type, updated, etag, md5, generation,
fingerprint, source, status, error), the columns of ``lookalike_objects``. Extra columns rather than a second
kind of file, because (1) every photo already has at least one row (a face, or its status row), so nothing is
lost; (2) one schema per folder is what ``*.parquet`` globs in BigQuery, Spark and DuckDB need (BigQuery refuses
a wildcard over files of different schemas); (3) a face row read anywhere says where its photo came from and
which version of it was embedded. The repetition for photos with several faces costs little: Parquet stores
a run of equal values once. So an import restores ``lookalike_objects`` too, and a later ``lookalike index`` of
the same source finds every photo unchanged and embeds nothing.

An import checks everything it can before it writes anything: the manifest (missing, unreadable, another
format), the model (unknown here, another model than the table's) and the dimension (manifest, table, model,
and the width of each shard's embedding column), and each shard's row count and SHA-256. Then it writes every
row in one transaction: the rows of photos already in the table are replaced (their old rows deleted, as
:func:`lookalike.dataset.store.write_results` does), faces a user forgot (``lookalike people forget``) stay out,
and the table's version is bumped. Recalibrating and refreshing vector indexes is left to the caller (see
:meth:`lookalike.api.Dataset.import_table`), as after an index run.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.dataset import store
from lookalike.dataset.connection import transaction
from lookalike.dataset.schema import check_table_name
from lookalike.errors import DatasetError, InvalidArgument, LookalikeError, ObjectNotFound, UnknownModel
from lookalike.faces.registry import get_card
from lookalike.faces.types import ModelCard
from lookalike.records import FORGOTTEN_STATUS
from lookalike.search.calibration import Calibration
from lookalike.storage import StorageOptions, download_file, list_objects, parse_source, read_object, upload_file

#: What ``manifest.json`` calls this layout, and its version (an import refuses newer versions).
FORMAT = "lookalike-faces-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Rows per shard unless told otherwise: about 100 MB at 512 dimensions.
DEFAULT_SHARD_ROWS = 50_000
#: Target size of a Parquet row group (BigQuery loads best from row groups of 16 MiB or more).
ROW_GROUP_BYTES = 64 << 20

_SHARD_NAME = "faces-{:05d}.parquet"
_SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.parquet$")
_MAX_MANIFEST_BYTES = 64 << 20

#: The columns of an export, in order: name, SQL type (as in the dataset; ``{dim}`` is the table's dimension),
#: and what the column holds. Face columns first, then the photo's object metadata.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("uri", "VARCHAR", "the photo's URI, as indexed"),
    ("face_index", "INTEGER", "the face's number in its photo (0 = largest); NULL on a status row"),
    ("bbox", "FLOAT[4]", "x1, y1, x2, y2 in pixels of the upright photo; NULL on a status row"),
    ("landmarks", "FLOAT[10]", "eyes, nose, mouth corners as x, y pairs; NULL on a status row"),
    ("det_score", "FLOAT", "the detector's confidence; NULL on a status row"),
    ("embedding", "FLOAT[{dim}]", "the L2-normalised identity vector; NULL on a status row"),
    (
        "status",
        "VARCHAR",
        "'' for a face; 'no face detected', 'error: ...' or 'forgotten' on a photo's status row; "
        "NULL on a row that carries only a photo's metadata",
    ),
    ("source", "VARCHAR", "the source (folder, glob, prefix) the photo was listed from"),
    ("size", "BIGINT", "the photo's size in bytes"),
    ("content_type", "VARCHAR", "the photo's MIME type"),
    ("updated", "TIMESTAMPTZ", "when the photo was last modified (UTC)"),
    ("etag", "VARCHAR", "the store's entity tag (object stores)"),
    ("md5", "VARCHAR", "hex MD5 of the photo, when the store gives one"),
    ("generation", "VARCHAR", "the photo's version (GCS generation, S3 version id, local mtime in ns)"),
    ("fingerprint", "VARCHAR", "what lookalike index compares to decide the photo is unchanged"),
    ("object_status", "VARCHAR", "how indexing the photo went: ok, no_face or error"),
    ("object_error", "VARCHAR", "why indexing the photo failed"),
    ("n_faces", "INTEGER", "faces kept for the photo"),
    ("indexed_at", "TIMESTAMPTZ", "when the photo was indexed"),
)
_FACE_COLUMNS = ("uri", "face_index", "bbox", "landmarks", "det_score", "embedding", "status")


@dataclass(frozen=True, slots=True)
class Shard:
    """One Parquet file of an export: its name in the folder, its rows, its size and SHA-256 (hex)."""

    file: str
    rows: int
    bytes: int
    sha256: str


@dataclass(slots=True)
class ExportReport:
    """What :func:`export_table` wrote."""

    table: str
    model: str
    dim: int
    #: The folder written to, and its manifest.
    uri: str
    manifest: str
    table_version: int
    rows: int = 0
    faces: int = 0
    objects: int = 0
    shards: list[Shard] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass(slots=True)
class ImportReport:
    """What :func:`import_table` (and then :meth:`lookalike.api.Dataset.import_table`) did."""

    uri: str
    table: str
    model: str
    dim: int
    rows: int = 0
    faces: int = 0
    objects: int = 0
    #: Photos that were in the table already and whose rows were replaced.
    replaced: int = 0
    #: Faces left out because a user forgot them in this dataset (``lookalike people forget``).
    forgotten: int = 0
    #: Whether the table was made by this import.
    created: bool = False
    #: The table's version after the import.
    version: int = 0
    seconds: float = 0.0
    calibration: Calibration | None = None
    vector_indexes: list[dict[str, object]] = field(default_factory=list)
    #: The grouping into persons after the import (as after an index job), ``{"error": ...}``, or None.
    people: dict[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["seconds"] = round(self.seconds, 3)
        out["calibration"] = self.calibration.to_dict() if self.calibration is not None else None
        return out


# ---------------------------------------------------------------------------------------------- the layout


def _vector(width: int) -> pa.DataType:
    """A fixed-size list of ``width`` float32 values that are never null (the list itself may be)."""
    return pa.list_(pa.field("element", pa.float32(), nullable=False), width)


def _sql_type(sql: str, dim: int) -> str:
    return sql.format(dim=dim)


def _arrow_type(sql: str) -> pa.DataType:
    simple: dict[str, pa.DataType] = {
        "VARCHAR": pa.string(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "FLOAT": pa.float32(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }
    if sql in simple:
        return simple[sql]
    match = re.fullmatch(r"FLOAT\[(\d+)\]", sql)
    if match is None:  # pragma: no cover - COLUMNS only holds the types above
        raise ValueError(sql)
    return _vector(int(match.group(1)))


def export_schema(dim: int) -> pa.Schema:
    """The Arrow schema of every shard of an export of ``dim``-dimensional faces (``uri`` is never null)."""
    return pa.schema(
        [
            pa.field(name, _arrow_type(_sql_type(sql, dim)), nullable=name != "uri", metadata={"description": doc})
            for name, sql, doc in COLUMNS
        ]
    )


def _columns_for_manifest(dim: int) -> list[dict[str, str]]:
    schema = export_schema(dim)
    return [
        {"name": name, "type": _sql_type(sql, dim), "arrow": str(schema.field(name).type), "description": doc}
        for name, sql, doc in COLUMNS
    ]


@dataclass(frozen=True, slots=True)
class _Folder:
    """An export folder: its URI as given, its protocol and its path (absolute local path or ``bucket/key``)."""

    uri: str
    protocol: str
    root: str

    def join(self, name: str) -> str:
        """The URI of the file ``name`` in this folder."""
        root = self.root.rstrip("/")
        if self.protocol == "file":
            return f"{root}/{name}"
        return f"{self.protocol}://{root}/{name}"


def _folder(uri: str) -> _Folder:
    parsed = parse_source(uri)
    if parsed.pattern is not None:
        raise InvalidArgument(
            f"{uri!r} holds a wildcard; an export is a folder", hint="give a folder or prefix, e.g. s3://bucket/export"
        )
    return _Folder(uri, parsed.protocol, parsed.root)


def _lookalike_version() -> str:
    try:
        return metadata.version("lookalike")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- export

_EXPORT_SQL = """
SELECT uri, face_index, bbox, landmarks, det_score, embedding, status, source, size, content_type, updated, etag,
       md5, generation, fingerprint, object_status, object_error, n_faces, indexed_at
FROM (
    SELECT f.face_id AS _order, f.uri, f.face_index, f.bbox, f.landmarks, f.det_score, f.embedding, f.status,
           o.source, o.size, o.content_type, o.updated, o.etag, o.md5, o.generation, o.fingerprint,
           o.status AS object_status, o.error AS object_error, o.n_faces, o.indexed_at
    FROM "{faces}" f LEFT JOIN lookalike_objects o ON o.tbl = $table AND o.uri = f.uri
    UNION ALL
    SELECT NULL, o.uri, NULL, NULL, NULL, NULL, NULL, NULL,
           o.source, o.size, o.content_type, o.updated, o.etag, o.md5, o.generation, o.fingerprint,
           o.status, o.error, o.n_faces, o.indexed_at
    FROM lookalike_objects o
    WHERE o.tbl = $table AND NOT EXISTS (SELECT 1 FROM "{faces}" f WHERE f.uri = o.uri)
)
ORDER BY _order NULLS LAST, uri
"""


def _refuse_existing_export(folder: _Folder, options: StorageOptions | None) -> None:
    """An export never mixes with an older one: a folder that already holds Parquet files or a manifest is
    refused (stale shards would be loaded by every ``*.parquet`` glob)."""
    try:
        listed = [info.uri for _, info in list_objects([folder.uri], options=options, images_only=False)]
    except ObjectNotFound:
        return
    prefix = folder.join("")
    clashes = [
        uri
        for uri in listed
        if uri.startswith(prefix) and "/" not in uri[len(prefix) :] and (uri.endswith((".parquet", "/" + MANIFEST)))
    ]
    if listed and not any(uri.startswith(prefix) for uri in listed):
        raise InvalidArgument(f"cannot export to {folder.uri}: it is a file, not a folder")
    if clashes:
        raise InvalidArgument(
            f"cannot export to {folder.uri}: it already holds an export ({clashes[0].rsplit('/', 1)[-1]})",
            hint="export to a new folder, or delete the old export first",
        )


def _model_entry(con: duckdb.DuckDBPyConnection, model: str) -> dict[str, object]:
    row = con.execute("SELECT name, dim, threshold, card FROM lookalike_models WHERE name = ?", [model]).fetchone()
    if row is None:  # pragma: no cover - a table's model is registered with it
        raise DatasetError(f"model {model!r} of this dataset has no catalog row")
    return {"name": row[0], "dim": int(row[1]), "threshold": float(row[2]), "card": json.loads(row[3] or "{}")}


def _row_group_rows(dim: int, shard_rows: int) -> int:
    row_bytes = 4 * (dim + 14) + 256  # the vectors plus a guess at the strings
    return max(1, min(shard_rows, ROW_GROUP_BYTES // row_bytes))


def _manifest(con: duckdb.DuckDBPyConnection, info: store.TableInfo, report: ExportReport) -> dict[str, object]:
    """The ``manifest.json`` of an export of ``info`` whose shards ``report`` lists."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lookalike_version": _lookalike_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "table": info.name,
        "table_version": info.version,
        "model": _model_entry(con, info.model),
        "dim": info.dim,
        "calibration": info.calibration.to_dict(),
        "calibrated_version": info.calibrated_version,
        "rows": report.rows,
        "faces": report.faces,
        "objects": report.objects,
        "columns": _columns_for_manifest(info.dim),
        "shards": [asdict(s) for s in report.shards],
    }


def export_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    to: str,
    *,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    options: StorageOptions | None = None,
) -> ExportReport:
    """Write every row of face table ``table`` as Parquet shards plus ``manifest.json`` into the folder ``to``.

    ``con`` may be read-only; one query reads the rows, so the export is one consistent version of the table.
    Shards are written first and the manifest last, so a folder without a manifest is an unfinished export
    (and :func:`import_table` refuses it). A folder that already holds an export is refused.
    """
    if shard_rows < 1:
        raise InvalidArgument(f"shard_rows must be at least 1, got {shard_rows}")
    started = time.perf_counter()
    info = store.get_table(con, table)
    folder = _folder(to)
    _refuse_existing_export(folder, options)
    report = ExportReport(
        table=info.name,
        model=info.model,
        dim=info.dim,
        uri=folder.uri,
        manifest=folder.join(MANIFEST),
        table_version=info.version,
    )
    schema = export_schema(info.dim)
    group_rows = _row_group_rows(info.dim, shard_rows)
    reader = con.sql(_EXPORT_SQL.format(faces=info.faces_table), params={"table": info.name}).to_arrow_reader(
        min(shard_rows, 8192)
    )
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="lookalike-export-") as tmp:
        work = Path(folder.root) if folder.protocol == "file" else Path(tmp)

        def flush(batches: list[pa.RecordBatch]) -> None:
            name = _SHARD_NAME.format(len(report.shards))
            rows = pa.Table.from_batches(batches, schema=reader.schema).cast(schema)
            path = work / name
            written.append(path)
            pq.write_table(rows, path, row_group_size=group_rows, compression="snappy")
            shard = Shard(file=name, rows=rows.num_rows, bytes=path.stat().st_size, sha256=_sha256(path))
            if folder.protocol != "file":
                upload_file(path, folder.join(name), options=options)
                path.unlink()
            report.shards.append(shard)
            report.rows += rows.num_rows
            report.faces += rows.num_rows - rows.column("embedding").null_count

        try:
            work.mkdir(parents=True, exist_ok=True)
            pending: list[pa.RecordBatch] = []
            held = 0
            for batch in reader:
                while batch.num_rows:
                    take = min(batch.num_rows, shard_rows - held)
                    pending.append(batch.slice(0, take))
                    held += take
                    batch = batch.slice(take)
                    if held == shard_rows:
                        flush(pending)
                        pending, held = [], 0
            if pending or not report.shards:  # an empty table still gets one (empty) shard: the schema
                flush(pending)
            report.objects = int(
                con.execute("SELECT count(*) FROM lookalike_objects WHERE tbl = ?", [info.name]).fetchall()[0][0]
            )
            manifest_path = work / MANIFEST
            written.append(manifest_path)
            manifest_path.write_text(json.dumps(_manifest(con, info, report), indent=2) + "\n")
            if folder.protocol != "file":
                upload_file(manifest_path, report.manifest, options=options)
        except BaseException:
            if folder.protocol == "file":  # leave no half export behind (a later export there would be refused)
                for path in written:
                    path.unlink(missing_ok=True)
            raise
    report.seconds = time.perf_counter() - started
    return report


# ---------------------------------------------------------------------------------------------- import


def _bad_manifest(uri: str, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"{uri} is not a usable lookalike export manifest: {why}",
        hint="point at a folder written by lookalike export",
        code="bad_manifest",
    )


def read_manifest(uri: str, *, options: StorageOptions | None = None) -> tuple[_Folder, dict[str, Any]]:
    """The export folder ``uri`` (or its ``manifest.json``) and its manifest, checked for what an import needs."""
    if uri.rstrip("/").endswith("/" + MANIFEST) or uri == MANIFEST:
        uri = uri.rstrip("/")[: -len(MANIFEST)] or "."
    folder = _folder(uri)
    where = folder.join(MANIFEST)
    try:
        raw = read_object(where, options=options, max_bytes=_MAX_MANIFEST_BYTES)
    except ObjectNotFound as err:
        raise ObjectNotFound(
            f"no {MANIFEST} in {folder.uri}: not a lookalike export, or an unfinished one",
            hint="export a table with: lookalike export TABLE --to URI",
        ) from err
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad_manifest(where, f"not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad_manifest(where, f"its format is not {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _bad_manifest(where, f"format version {version!r}; this lookalike reads up to {FORMAT_VERSION}")
    model = manifest.get("model")
    dim = manifest.get("dim")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise _bad_manifest(where, "no model name")
    if not isinstance(dim, int) or dim < 1:
        raise _bad_manifest(where, f"dimension {dim!r}")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("file"), str)
        and _SHARD_NAME_RE.match(s["file"])
        and isinstance(s.get("rows"), int)
        and isinstance(s.get("sha256"), str)
        for s in shards
    ):
        raise _bad_manifest(where, "its shard list is malformed")
    if len({s["file"] for s in shards}) != len(shards):
        raise _bad_manifest(where, "it lists a shard twice")
    if not isinstance(manifest.get("table"), str):
        raise _bad_manifest(where, "no table name")
    return folder, manifest


def _dimension_mismatch(message: str, hint: str | None = None) -> InvalidArgument:
    return InvalidArgument(message, hint=hint, code="dimension_mismatch")


def _check_model(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any], table: str, uri: str) -> ModelCard:
    """The registry's card for the export's model, once the model and dimension fit ``table`` and this install."""
    name = str(manifest["model"]["name"])
    dim = int(manifest["dim"])
    card_dim = manifest["model"].get("dim", dim)
    if card_dim != dim:
        raise _dimension_mismatch(f"cannot import {uri}: its manifest says {dim} dimensions but its model {card_dim}")
    existing = store.find_table(con, table)
    if existing is not None and existing.model != name:
        raise InvalidArgument(
            f"cannot import {uri} into table {table!r}: the export holds {name!r} embeddings, the table "
            f"{existing.model!r} ones",
            hint="import into another --table (it is created), or drop this one first",
            code="model_mismatch",
        )
    if existing is not None and existing.dim != dim:
        raise _dimension_mismatch(
            f"cannot import {uri} into table {table!r}: the export's embeddings have {dim} dimensions, the "
            f"table's {existing.dim}"
        )
    try:
        card = get_card(name)
    except UnknownModel as err:
        raise UnknownModel(
            f"cannot import {uri}: its model {name!r} is not known to this lookalike",
            hint=(err.hint or "") + "; add the model first (lookalike models), then import again",
        ) from err
    if card.name != name:
        raise InvalidArgument(
            f"cannot import {uri}: its model {name!r} is called {card.name!r} here", code="model_mismatch"
        )
    if card.dim != dim:
        raise _dimension_mismatch(
            f"cannot import {uri}: its embeddings have {dim} dimensions but model {name!r} makes {card.dim}"
        )
    return card


def _check_shard(path: Path, uri: str, expected: dict[str, Any], dim: int) -> None:
    """The shard at ``path`` (of ``uri``) is the one the manifest lists, with the columns and width expected."""
    digest = _sha256(path)
    if digest != expected["sha256"]:
        raise DatasetError(
            f"shard {uri} is altered or damaged: its SHA-256 is {digest}, the manifest says {expected['sha256']}",
            hint="copy the export again, or export the table again",
            code="checksum_mismatch",
        )
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"shard {uri} is not a readable Parquet file: {err}", code="bad_shard") from err
    if parquet.metadata.num_rows != expected["rows"]:
        raise DatasetError(
            f"shard {uri} holds {parquet.metadata.num_rows} rows, the manifest says {expected['rows']}",
            code="bad_shard",
        )
    schema = parquet.schema_arrow
    missing = [name for name, _, _ in COLUMNS if name not in schema.names]
    if missing:
        raise DatasetError(f"shard {uri} lacks the columns {', '.join(missing)}", code="bad_shard")
    kind = schema.field("embedding").type
    if isinstance(kind, pa.FixedSizeListType) and kind.list_size != dim:
        raise _dimension_mismatch(
            f"cannot import {uri}: its embedding column holds {kind.list_size} values a row, the manifest says {dim}"
        )


def _fetch_shards(
    folder: _Folder, manifest: dict[str, Any], tmp: Path, options: StorageOptions | None
) -> list[tuple[str, Path]]:
    """``(uri, local path)`` of every shard, checked; shards in a bucket are downloaded into ``tmp`` first."""
    out: list[tuple[str, Path]] = []
    dim = int(manifest["dim"])
    for expected in manifest["shards"]:
        uri = folder.join(expected["file"])
        try:
            if folder.protocol == "file":
                path = Path(uri)
                if not path.is_file():
                    raise FileNotFoundError(uri)
            else:
                path = tmp / expected["file"]
                download_file(uri, path, options=options)
        except (ObjectNotFound, FileNotFoundError) as err:
            raise ObjectNotFound(
                f"shard {uri} named in {folder.join(MANIFEST)} is missing",
                hint="copy the whole export folder, or export the table again",
            ) from err
        _check_shard(path, uri, expected, dim)
        out.append((uri, path))
    total = sum(int(s["rows"]) for s in manifest["shards"])
    if isinstance(manifest.get("rows"), int) and manifest["rows"] != total:
        raise _bad_manifest(folder.join(MANIFEST), f"it counts {manifest['rows']} rows but its shards {total}")
    return out


def _width_of_lists(con: duckdb.DuckDBPyConnection, uri: str, path: Path, dim: int) -> None:
    """For a shard whose embeddings are plain lists (not written by lookalike): every one has ``dim`` values."""
    kind = pq.read_schema(path).field("embedding").type
    if isinstance(kind, pa.FixedSizeListType):
        return
    widths = con.execute(
        "SELECT DISTINCT len(embedding) FROM read_parquet(?) WHERE embedding IS NOT NULL", [str(path)]
    ).fetchall()
    wrong = sorted(int(w[0]) for w in widths if int(w[0]) != dim)
    if wrong:
        raise _dimension_mismatch(
            f"cannot import {uri}: its embedding column holds {wrong[0]} values a row, the manifest says {dim}"
        )


def _drop_forgotten(con: duckdb.DuckDBPyConnection, info: store.TableInfo, paths: list[str]) -> int:
    """Delete the imported faces that a user forgot in this dataset (same photo, by URI or fingerprint, and the
    same place in it, as :func:`lookalike.dataset.store.drop_forgotten` decides); return how many."""
    faces = info.faces_table
    rows = con.execute(
        f"""WITH imported AS (SELECT DISTINCT uri FROM read_parquet(?)),
            pairs AS (
                SELECT f.face_id, f.uri,
                       greatest(least(f.bbox[3], g.bbox[3]) - greatest(f.bbox[1], g.bbox[1]), 0)
                     * greatest(least(f.bbox[4], g.bbox[4]) - greatest(f.bbox[2], g.bbox[2]), 0) AS i,
                       (f.bbox[3] - f.bbox[1]) * (f.bbox[4] - f.bbox[2])
                     + (g.bbox[3] - g.bbox[1]) * (g.bbox[4] - g.bbox[2]) AS both_areas
                FROM "{faces}" f
                JOIN imported ON imported.uri = f.uri
                LEFT JOIN lookalike_objects o ON o.tbl = ? AND o.uri = f.uri
                JOIN lookalike_people_forgotten g ON g.tbl = ? AND g.bbox IS NOT NULL
                     AND (g.uri = f.uri OR (g.fingerprint IS NOT NULL AND g.fingerprint = o.fingerprint))
                WHERE f.embedding IS NOT NULL)
            SELECT DISTINCT face_id, uri FROM (SELECT *, both_areas - i AS u FROM pairs)
            WHERE CASE WHEN u > 0 THEN i / u ELSE 0 END >= ?""",
        [paths, info.name, info.name, store.FORGOTTEN_IOU],
    ).fetchall()
    if not rows:
        return 0
    face_ids = [int(r[0]) for r in rows]
    uris = sorted({str(r[1]) for r in rows})
    con.execute(f'DELETE FROM "{faces}" WHERE list_contains(?, face_id)', [face_ids])
    con.execute(
        f"""INSERT INTO "{faces}" (uri, status) SELECT u, ? FROM unnest(?) AS t(u)
            WHERE u NOT IN (SELECT uri FROM "{faces}")""",
        [FORGOTTEN_STATUS, uris],
    )
    con.execute(
        f"""UPDATE lookalike_objects o SET n_faces = (SELECT count(*) FROM "{faces}" f
            WHERE f.uri = o.uri AND f.embedding IS NOT NULL) WHERE o.tbl = ? AND list_contains(?, o.uri)""",
        [info.name, uris],
    )
    return len(face_ids)


def _load(con: duckdb.DuckDBPyConnection, info: store.TableInfo, shards: Sequence[Path], report: ImportReport) -> None:
    """Replace the rows of the exported photos with the shards' rows (inside the caller's transaction)."""
    paths = [str(p) for p in shards]
    faces = info.faces_table
    report.replaced = int(
        con.execute(
            "SELECT count(*) FROM lookalike_objects WHERE tbl = ? AND uri IN (SELECT uri FROM read_parquet(?))",
            [info.name, paths],
        ).fetchall()[0][0]
    )
    con.execute(f'DELETE FROM "{faces}" WHERE uri IN (SELECT uri FROM read_parquet(?))', [paths])
    con.execute(
        "DELETE FROM lookalike_objects WHERE tbl = ? AND uri IN (SELECT uri FROM read_parquet(?))", [info.name, paths]
    )
    columns = ", ".join(_FACE_COLUMNS)
    for path in paths:  # shard by shard, rows in file order: the table's storage order survives the round trip
        con.execute(
            f"""INSERT INTO "{faces}" ({columns})
                SELECT uri, face_index, bbox::FLOAT[4], landmarks::FLOAT[10], det_score,
                       embedding::FLOAT[{int(info.dim)}], status
                FROM read_parquet(?, file_row_number = true) WHERE status IS NOT NULL ORDER BY file_row_number""",
            [path],
        )
    con.execute(
        """INSERT INTO lookalike_objects (tbl, uri, source, size, content_type, updated, etag, md5, generation,
                                          fingerprint, status, error, n_faces, indexed_at)
           SELECT DISTINCT ON (uri) ?, uri, source, size, content_type, updated, etag, md5, generation, fingerprint,
                  object_status, object_error, coalesce(n_faces, 0), coalesce(indexed_at, current_timestamp)
           FROM read_parquet(?) WHERE object_status IS NOT NULL ORDER BY uri""",
        [info.name, paths],
    )
    report.forgotten = _drop_forgotten(con, info, paths)
    counts = con.execute(
        """SELECT count(*), count(*) FILTER (WHERE status IS NOT NULL AND embedding IS NOT NULL),
                  count(DISTINCT uri) FILTER (WHERE object_status IS NOT NULL)
           FROM read_parquet(?)""",
        [paths],
    ).fetchall()[0]
    report.rows, report.faces, report.objects = int(counts[0]), int(counts[1]) - report.forgotten, int(counts[2])
    con.execute(
        "UPDATE lookalike_tables SET version = version + 1, updated_at = current_timestamp WHERE name = ?",
        [info.name],
    )


def import_table(
    con: duckdb.DuckDBPyConnection,
    uri: str,
    table: str | None = None,
    *,
    options: StorageOptions | None = None,
) -> ImportReport:
    """Read the export in folder ``uri`` into face table ``table`` (default: the exported table's name).

    ``con`` must be writable. The table is created for the export's model when missing; a table of another model
    or dimension is refused. Everything is checked before anything is written (see the module docstring), and the
    rows go in within one transaction. Does not recalibrate or refresh vector indexes: the caller does.
    """
    started = time.perf_counter()
    folder, manifest = read_manifest(uri, options=options)
    name = check_table_name(table if table is not None else str(manifest["table"]))
    card = _check_model(con, manifest, name, folder.uri)
    report = ImportReport(uri=folder.uri, table=name, model=card.name, dim=card.dim)
    with tempfile.TemporaryDirectory(prefix="lookalike-import-") as tmp:
        shards = _fetch_shards(folder, manifest, Path(tmp), options)
        for shard_uri, path in shards:
            _width_of_lists(con, shard_uri, path, card.dim)
        report.created = store.find_table(con, name) is None
        info = store.ensure_table(con, name, card)
        try:
            with transaction(con):
                _load(con, info, [path for _, path in shards], report)
        except duckdb.Error as err:
            if report.created:
                store.drop_table(con, name)
            raise DatasetError(f"cannot import {folder.uri} into table {name!r}: {err}") from err
        except LookalikeError:
            if report.created:
                store.drop_table(con, name)
            raise
    report.version = store.get_table(con, name).version
    report.seconds = time.perf_counter() - started
    return report
