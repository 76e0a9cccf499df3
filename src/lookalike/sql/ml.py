"""``ML.GENERATE_EMBEDDING(MODEL m, TABLE t | (query), STRUCT(...))``: embed the faces of objects.

The input is an object table, or any query with a ``uri`` column. The output has the input's columns plus:

======================================  ===============================================================
``ml_generate_embedding_result``        ``ARRAY<FLOAT64>``: the face's embedding (L2-normalised); NULL
                                        when the object has no face or could not be read
``ml_generate_embedding_status``        ``''`` on success, else why there is no embedding
``face_index``                          which face of the photo (0, 1, ...), NULL without a face
``face_bbox``                           ``[x1, y1, x2, y2]`` in pixels of the (EXIF-rotated) photo
``face_score``                          the detector's confidence in ``[0, 1]``
======================================  ===============================================================

One row per detected face, so a photo of two people gives two rows (BigQuery's multimodal model gives one
row per image; a face model finds faces). The work is the core's index job: every object is embedded into a
hidden Lookalike table per model (``_sqlemb_<model>``), keyed by URI and fingerprint, so an object that has
not changed since it was last embedded is reused, not computed again, in this statement or any later one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from lookalike.errors import LookalikeError
from lookalike.faces.registry import get_card
from lookalike.ingest import JobOptions, index_listed
from lookalike.sql import models
from lookalike.sql.context import Context
from lookalike.sql.names import quote
from lookalike.sql.registry import Evaluate, table_function
from lookalike.sql.values import check_keys, struct_fields
from lookalike.storage import ObjectInfo, stat_object

RESULT = "ml_generate_embedding_result"
STATUS = "ml_generate_embedding_status"
FACE_COLUMNS = ("face_index", "face_bbox", "face_score")
OUTPUT_COLUMNS = (RESULT, STATUS, *FACE_COLUMNS)

PARAMETERS = {
    "flatten_json_output": "TRUE (the default): the embedding as ARRAY<FLOAT64>; FALSE: as JSON",
    "output_dimensionality": "the model's dimension (the only one a face model gives)",
}

_ROW = "__lookalike_row"


def embeddings_table(model: str) -> str:
    """The hidden Lookalike table that holds the embeddings ML.GENERATE_EMBEDDING computed with ``model``."""
    return "_sqlemb_" + re.sub(r"[^A-Za-z0-9_]", "_", model)[:50]


@table_function(exp.GenerateEmbedding)
def generate_embedding(ctx: Context, node: exp.Expr, evaluate: Evaluate) -> pa.Table:
    """Compute one ``ML.GENERATE_EMBEDDING`` call (see the module docstring)."""
    model = models.get(ctx, node.this)
    card = get_card(model.model)
    params_node = node.args.get("params_struct")
    params: dict[str, Any] = struct_fields(ctx.statement, params_node, "the STRUCT") if params_node else {}
    check_keys(ctx.statement, params, PARAMETERS, "ML.GENERATE_EMBEDDING parameter", params_node)
    dim = params.get("output_dimensionality")
    if dim is not None and dim != card.dim:
        raise ctx.error(
            f"model {model.name.display} ({card.name}) cannot give {dim}-dimensional embeddings; "
            f"it can give: {card.dim}",
            at=params_node,
            hint=f"use {card.dim} AS output_dimensionality, or leave it out",
        )
    flatten = params.get("flatten_json_output", True)
    if not isinstance(flatten, bool):
        raise ctx.error("flatten_json_output must be TRUE or FALSE", at=params_node)

    source = node.args.get("expression")
    if source is None:
        raise ctx.error("ML.GENERATE_EMBEDDING needs an input: TABLE name or (query)", at=node)
    rows = evaluate(source)
    if "uri" not in [c.lower() for c in rows.column_names]:
        raise ctx.error(
            "the input of ML.GENERATE_EMBEDDING has no uri column",
            at=source,
            hint="give it an object table (CREATE EXTERNAL TABLE ... OPTIONS(object_metadata = 'SIMPLE', "
            "uris = [...])) or a query with a uri column",
        )
    uri_col = next(c for c in rows.column_names if c.lower() == "uri")
    uris = [u for u in pc.unique(rows.column(uri_col).cast(pa.string())).to_pylist() if u]

    listing, errors = _object_infos(ctx, uris)
    table = embeddings_table(card.name)
    if listing:
        report = index_listed(
            ctx.dataset_path,
            [(f"sql:{model.name.key}", info) for info in listing],
            table=table,
            model=card.name,
            options=JobOptions(storage_options=ctx.storage_options, max_pixels=ctx.max_pixels),
        )
        embedded = report.added + report.updated
        ctx.notice(
            f"ML.GENERATE_EMBEDDING ({card.name}): {embedded} object(s) embedded, {report.unchanged} reused"
            + (f", {report.failed} failed" if report.failed else "")
            + (f", {report.no_face} without a face" if report.no_face else "")
        )
    return _join(ctx, rows, uri_col, table, errors, flatten)


def _object_infos(ctx: Context, uris: list[str]) -> tuple[list[ObjectInfo], dict[str, str]]:
    """Object metadata for ``uris``: from the object tables' metadata cache, else read from storage now.

    Returns the objects found and, for the others, why not (``{uri: status}``).
    """
    infos: dict[str, ObjectInfo] = {}
    if uris:
        ctx.con.register("_lookalike_uris", pa.table({"uri": pa.array(uris, pa.string())}))
        try:
            cached = ctx.con.execute(
                """SELECT c.uri, c.size, c.content_type, c.updated, c.etag, c.md5, c.generation
                   FROM lookalike_sql_object_cache c
                   JOIN lookalike_sql_object_tables t ON t.name = c.tbl
                   JOIN _lookalike_uris u ON u.uri = c.uri
                   ORDER BY t.refreshed_at"""
            ).fetchall()
        finally:
            ctx.con.unregister("_lookalike_uris")
        for uri, size, ctype, updated, etag, md5, generation in cached:  # the freshest cache wins
            when = updated.astimezone(UTC) if isinstance(updated, datetime) else datetime.fromtimestamp(0, UTC)
            infos[uri] = ObjectInfo(
                uri=uri,
                size=int(size or 0),
                content_type=ctype,
                updated=when,
                etag=etag,
                md5=md5,
                generation=generation,
            )
    errors: dict[str, str] = {}
    for uri in uris:
        if uri not in infos:
            try:
                infos[uri] = stat_object(uri, options=ctx.storage_options)
            except LookalikeError as err:
                errors[uri] = f"error: {err}"
    return [infos[u] for u in uris if u in infos], errors


def _join(ctx: Context, rows: pa.Table, uri_col: str, table: str, errors: dict[str, str], flatten: bool) -> pa.Table:
    """The input rows joined with their face rows: one row per face, or one row saying why there is none."""
    keep = [c for c in rows.column_names if c.lower() not in OUTPUT_COLUMNS and c != _ROW]
    numbered = rows.select(keep).append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    errs = pa.table({"uri": pa.array(list(errors), pa.string()), "status": pa.array(list(errors.values()))})
    faces = f"faces_{table}"
    exists = ctx.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?", [faces]
    ).fetchall()[0][0]
    inp = ctx.register(numbered)
    err = ctx.register(errs)
    cols = ", ".join(f"i.{quote(c)}" for c in keep)
    embedding = "CAST(f.embedding AS DOUBLE[])"
    # without flattening: the JSON a Vertex AI multimodal endpoint answers with
    vertex_json = f"to_json({{'predictions': [{{'imageEmbedding': {embedding}}}]}})"
    result = embedding if flatten else vertex_json
    face_join = (
        f"LEFT JOIN {quote(faces)} f ON f.uri = CAST(i.{quote(uri_col)} AS VARCHAR) AND e.uri IS NULL"
        if exists
        else "LEFT JOIN (SELECT NULL::VARCHAR AS uri, NULL::INTEGER AS face_index, NULL::FLOAT[4] AS bbox, "
        "NULL::FLOAT AS det_score, NULL::FLOAT[] AS embedding, NULL::VARCHAR AS status) f ON FALSE"
    )
    sql = f"""
        SELECT {cols}{", " if cols else ""}
               {result} AS {RESULT},
               CASE WHEN i.{quote(uri_col)} IS NULL THEN 'error: the uri is NULL'
                    ELSE coalesce(e.status, f.status, 'error: not embedded') END AS {STATUS},
               f.face_index AS face_index,
               CAST(f.bbox AS DOUBLE[]) AS face_bbox,
               CAST(f.det_score AS DOUBLE) AS face_score
        FROM {inp} i
        LEFT JOIN {err} e ON e.uri = CAST(i.{quote(uri_col)} AS VARCHAR)
        {face_join}
        ORDER BY i.{_ROW}, f.face_index NULLS FIRST"""
    return ctx.query_sql(sql)
