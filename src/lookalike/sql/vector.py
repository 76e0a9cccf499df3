"""``VECTOR_SEARCH`` and vector indexes.

``VECTOR_SEARCH(TABLE base | (query), 'column', TABLE q | (query) [, 'query_column'], top_k => k,
distance_type => 'COSINE' | 'EUCLIDEAN' | 'DOT_PRODUCT', options => '{"fraction_lists_to_search": f}' |
'{"use_brute_force": true}')`` returns one row per (query row, neighbour): ``query`` (a STRUCT of the query row's
columns), ``base`` (a STRUCT of the base row's columns) and ``distance`` (DOUBLE), nearest first for each query
row. BigQuery's defaults hold: ``top_k`` 10, ``EUCLIDEAN`` (or the distance of a vector index on the column, as
in BigQuery). A base ``(subquery)`` with a WHERE clause filters the rows before the search (a pre-filter). Rows
whose vector is NULL or empty are skipped, on both sides.

Distances are computed for the vectors as stored, not assuming unit length: COSINE is ``1 - cos(q, x)``,
EUCLIDEAN the L2 distance, DOT_PRODUCT ``-q . x``.

``CREATE VECTOR INDEX`` builds a real index (:mod:`lookalike.search.vindex`) and ``ALTER VECTOR INDEX ...
REBUILD`` trains it again; DML on the table adds and removes its rows. A search over the indexed table, or over
a subquery that selects from it, uses the index unless ``use_brute_force`` is set: rows are named by their
vector, so rows the index lacks (inserted since) are searched exactly, and rows a pre-filter leaves out are kept
out by an id selector: never fewer than ``top_k`` rows when enough match. Each search reports how it used the
index (BigQuery's ``vectorSearchStatistics``) in the statement's ``statistics`` and a notice.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from lookalike.dataset import vindexes
from lookalike.dataset.vindexes import IndexRecord
from lookalike.errors import InvalidArgument, LookalikeError
from lookalike.search.distances import threshold_for
from lookalike.search.exact import top_k as exact_top_k
from lookalike.search.vindex import manage
from lookalike.search.vindex.files import IndexFileError
from lookalike.search.vindex.ids import content_ids
from lookalike.search.vindex.searcher import IndexUsage, search_rows, unused
from lookalike.search.vindex.spec import DISTANCE_TYPES, OPTION_HELP, SearchKnobs, parse_index_options
from lookalike.sql.context import Context, Outcome
from lookalike.sql.names import Name, name_of, relations
from lookalike.sql.parse import ParsedStatement
from lookalike.sql.people import check_writable
from lookalike.sql.registry import Evaluate, statement, table_function
from lookalike.sql.values import check_keys, constant

DEFAULT_TOP_K = 10
DEFAULT_DISTANCE = "EUCLIDEAN"

SEARCH_OPTIONS = {
    "use_brute_force": "true to search exactly even when a vector index exists",
    "fraction_lists_to_search": "share of the index's lists to search, in (0, 1]; 1.0 gives the exact answer",
    "same_person_threshold": "Lookalike: a cosine distance; adds a BOOL column same_person (distance at or under it)",
}


def index_on(ctx: Context, table: Name, column: str) -> IndexRecord | None:
    """The vector index defined on ``table(column)``, if any."""
    return vindexes.on_column(ctx.con, table.key, column)


def forget_table(ctx: Context, key: str) -> None:
    """Remove the indexes (catalog rows and files) of a table that was dropped or replaced."""
    for rec in vindexes.list_indexes(ctx.con, key):
        manage.drop(ctx.con, ctx.dataset_path, rec)


# ---------------------------------------------------------------------------------------------- VECTOR_SEARCH


def _string(ctx: Context, node: exp.Expr | None, what: str) -> str:
    value = constant(ctx.statement, node, what) if node is not None else None
    if not isinstance(value, str) or not value:
        raise ctx.error(f"{what} must be a non-empty string", at=node)
    return value


@table_function(exp.VectorSearch)
def vector_search(ctx: Context, node: exp.Expr, evaluate: Evaluate) -> pa.Table:
    """Compute one ``VECTOR_SEARCH`` call (see the module docstring)."""
    for key, value in node.args.items():
        if key not in exp.VectorSearch.arg_types and value is not None:
            raise ctx.error(
                f"unknown VECTOR_SEARCH argument {key!r}",
                at=value,
                hint="named arguments: query_column_to_search, top_k, distance_type, options",
            )
    base_arg = node.this
    column_node = node.args.get("column_to_search")
    column = _string(ctx, column_node, "the column to search")
    query_node = node.args.get("query_column_to_search")
    query_column = _string(ctx, query_node, "query_column_to_search") if query_node is not None else column
    k_node = node.args.get("top_k")
    k = constant(ctx.statement, k_node, "top_k") if k_node is not None else DEFAULT_TOP_K
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ctx.error(f"top_k must be a positive integer, got {k!r}", at=k_node)
    options = _search_options(ctx, node.args.get("options"))
    knobs = SearchKnobs(
        fraction_lists_to_search=options.get("fraction_lists_to_search"),
        use_brute_force=bool(options.get("use_brute_force", False)),
    )

    source = _source_table(base_arg, column)
    index = index_on(ctx, source, column) if source is not None else None
    dist_node = node.args.get("distance_type")
    if dist_node is not None:
        dist_name = _string(ctx, dist_node, "distance_type").upper()
    elif index is not None and not knobs.use_brute_force:
        dist_name = index.spec.distance_type
    else:
        dist_name = DEFAULT_DISTANCE
    if dist_name not in DISTANCE_TYPES:
        raise ctx.error(f"unknown distance_type {dist_name!r}", at=dist_node, hint="use " + ", ".join(DISTANCE_TYPES))

    base = evaluate(base_arg)
    query = evaluate(node.args["query_table"])
    base_rows, base_mat = _vectors(ctx, base, column, "base", column_node)
    query_rows, query_mat = _vectors(ctx, query, query_column, "query", query_node or column_node)
    if base_mat.shape[0] and query_mat.shape[0] and base_mat.shape[1] != query_mat.shape[1]:
        raise ctx.error(
            f"query vectors have {query_mat.shape[1]} dimensions but the base vectors have {base_mat.shape[1]}",
            at=node,
            hint="embed both with the same model",
        )
    distance = DISTANCE_TYPES[dist_name]
    raw_base = base_mat
    if distance == "cosine":
        base_mat, query_mat = _unit_rows(base_mat), _unit_rows(query_mat)
    if base_mat.shape[0] == 0 or query_mat.shape[0] == 0:
        idx = np.zeros((query_mat.shape[0], 0), np.int64)
        dists = np.zeros((query_mat.shape[0], 0), np.float32)
        usage = unused("NO_ROWS", "nothing to search")
    else:
        try:
            idx, dists, usage = _search(ctx, index, base, base_rows, raw_base, base_mat, query_mat, k, distance, knobs)
        except LookalikeError as err:
            raise ctx.error(err.message, at=node, hint=err.hint) from err
    ctx.statistics.append(usage.to_dict())
    if index is not None or knobs.fraction_lists_to_search is not None:
        ctx.notice(usage.summary())
    per_query = idx.shape[1]
    query_take = np.repeat(query_rows, per_query)
    base_take = base_rows[idx.reshape(-1)] if idx.size else np.zeros(0, np.int64)
    columns = {
        "query": _structs(query, query_take),
        "base": _structs(base, base_take),
        "distance": pa.array(dists.reshape(-1).astype(np.float64), pa.float64()),
    }
    same = options.get("same_person_threshold")
    if same is not None:
        limit = threshold_for(distance, float(same))
        columns["same_person"] = pa.array(dists.reshape(-1) <= limit, pa.bool_())
    return pa.table(columns)


def _source_table(base_arg: exp.Expr, column: str) -> Name | None:
    """The table whose index can serve this base: ``TABLE t``, or a ``(SELECT ... FROM t [WHERE ...])`` that
    passes ``column`` through unchanged; ``None`` for anything else (joins, computed vectors...)."""
    if _is_named(base_arg):
        assert isinstance(base_arg, exp.Table)
        return name_of(base_arg)
    query = base_arg.this if isinstance(base_arg, exp.Subquery) else base_arg
    if not isinstance(query, exp.Select) or query.args.get("joins") or query.args.get("group"):
        return None
    source = query.args.get("from_") or query.args.get("from")
    table = source.this if isinstance(source, exp.From) else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        return None
    for projection in query.expressions:
        if isinstance(projection, exp.Star):
            return name_of(table)
        if isinstance(projection, exp.Column) and projection.name.lower() == column.lower():
            return name_of(table)
    return None


def _search(
    ctx: Context,
    rec: IndexRecord | None,
    base: pa.Table,
    base_rows: np.ndarray,
    raw_base: np.ndarray,
    base_mat: np.ndarray,
    query_mat: np.ndarray,
    k: int,
    distance: Any,
    knobs: SearchKnobs,
) -> tuple[np.ndarray, np.ndarray, IndexUsage]:
    """Top-k rows through the index when it can serve this search (else exactly), and how it was used."""
    loaded, usage = manage.choose(ctx.dataset_path, rec, int(base_mat.shape[1]), distance, knobs)
    if loaded is None or rec is None:
        if usage.reasons and usage.reasons[0][0] == "INDEX_FILE_ERROR":
            ctx.notice(usage.reasons[0][1])
        idx, dists = exact_top_k(base_mat, query_mat, k, distance)
        return idx, dists, usage
    ids = _row_ids(rec, base, base_rows, raw_base)
    if ids is None:
        idx, dists = exact_top_k(base_mat, query_mat, k, distance)
        return idx, dists, unused("INDEX_ID_COLUMN_MISSING", f"the base rows lack column {rec.id_column}", rec.name)
    return search_rows(loaded, base_mat, ids, query_mat, k, distance, knobs)


def _row_ids(rec: IndexRecord, table: pa.Table, rows: np.ndarray, matrix: np.ndarray) -> np.ndarray | None:
    """The ids the index names these rows by: an id column's values, or a hash of each vector."""
    if rec.id_column is None:
        return content_ids(matrix)
    names = {c.lower(): c for c in table.column_names}
    real = names.get(rec.id_column.lower())
    if real is None:
        return None
    values = table.column(real).take(pa.array(rows, pa.int64()))
    if values.null_count:
        return None
    return np.asarray(values.to_numpy(zero_copy_only=False), np.int64)


def _is_named(arg: exp.Expr) -> bool:
    return isinstance(arg, exp.Table) and isinstance(arg.this, exp.Identifier)


def _search_options(ctx: Context, node: exp.Expr | None) -> dict[str, Any]:
    if node is None:
        return {}
    text = _string(ctx, node, "options")
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise ctx.error(
            f"options is not valid JSON: {err.msg}", at=node, hint="options => '{\"use_brute_force\": true}'"
        ) from None
    if not isinstance(options, dict):
        raise ctx.error("options must be a JSON object", at=node)
    check_keys(ctx.statement, options, SEARCH_OPTIONS, "VECTOR_SEARCH option", node)
    if "use_brute_force" in options and not isinstance(options["use_brute_force"], bool):
        raise ctx.error("use_brute_force must be true or false", at=node)
    same = options.get("same_person_threshold")
    if same is not None and (not isinstance(same, (int, float)) or isinstance(same, bool) or not 0 <= same <= 2):
        raise ctx.error(
            "same_person_threshold must be a cosine distance in [0, 2]",
            at=node,
            hint="lookalike tables shows each table's calibrated threshold",
        )
    frac = options.get("fraction_lists_to_search")
    if frac is not None and (not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1):
        raise ctx.error("fraction_lists_to_search must be a number in (0, 1]", at=node)
    return options


def _vectors(
    ctx: Context, table: pa.Table, column: str, side: str, at: exp.Expr | None
) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and the ``(n, d)`` float32 matrix of the non-NULL, non-empty vectors of ``column``."""
    names = {c.lower(): c for c in table.column_names}
    real = names.get(column.lower())
    if real is None:
        close = difflib.get_close_matches(column.lower(), list(names), n=1)
        hint = f"did you mean {names[close[0]]}?" if close else "columns: " + ", ".join(table.column_names)
        raise ctx.error(f"the {side} table has no column {column}", at=at, hint=hint)
    arr = table.column(real).combine_chunks()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        raise ctx.error(f"column {real} of the {side} table is {arr.type}, not an ARRAY of numbers", at=at)
    value_type = arr.type.value_type
    numeric = pa.types.is_floating(value_type) or pa.types.is_integer(value_type) or pa.types.is_decimal(value_type)
    if not numeric:
        raise ctx.error(f"column {real} of the {side} table holds {value_type}, not numbers", at=at)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(lengths > 0).astype(np.int64)
    if rows.size == 0:
        return rows, np.zeros((0, 0), np.float32)
    dims = np.unique(lengths[rows])
    if dims.size > 1:
        raise ctx.error(
            f"the vectors in column {real} of the {side} table have different lengths "
            f"({', '.join(map(str, dims[:4]))})",
            at=at,
        )
    picked = arr.take(pa.array(rows))
    values = pc.cast(picked.flatten(), pa.float64()).to_numpy(zero_copy_only=False)
    matrix = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(rows.size, int(dims[0])))
    if not np.isfinite(matrix).all():
        raise ctx.error(f"column {real} of the {side} table holds NULL, NaN or infinite values in vectors", at=at)
    return rows, matrix


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length for COSINE (rows already of unit length are left bit-for-bit as they are)."""
    if matrix.size == 0:
        return matrix
    norms = np.linalg.norm(matrix, axis=1)
    scale = np.where(np.abs(norms - 1.0) < 1e-6, 1.0, np.where(norms > 0, 1.0 / np.maximum(norms, 1e-30), 0.0))
    if np.all(scale == 1.0):
        return matrix
    return np.ascontiguousarray(matrix * scale[:, None].astype(np.float32))


def _structs(table: pa.Table, rows: np.ndarray) -> pa.ChunkedArray:
    """The given rows of ``table`` as one STRUCT column."""
    return table.take(pa.array(rows, pa.int64())).to_struct_array()


# ---------------------------------------------------------------------------------------------- vector indexes


def _face_table_id(ctx: Context, table: Name, column: str) -> str | None:
    """``face_id`` for the embedding column of a face table that ``lookalike index`` fills, else ``None``."""
    if table.schema.lower() != "main" or column.lower() != "embedding" or not table.name.lower().startswith("faces_"):
        return None
    rows = ctx.con.execute("SELECT count(*) FROM lookalike_tables WHERE lower(faces_table) = ?", [table.name.lower()])
    return "face_id" if rows.fetchall()[0][0] else None


def _read_source(ctx: Context, table: Name, column: str, id_column: str | None) -> manage.VectorSource:
    """The table's current vectors and the ids an index names them by."""
    cols = f'"{column}"' + (f', "{id_column}"' if id_column else "")
    rows = ctx.query_sql(f"SELECT {cols} FROM {ctx.ref(table)}")
    picked, matrix = _vectors(ctx, rows, column, "indexed", None)
    if id_column is None:
        ids = content_ids(matrix) if matrix.size else np.zeros(0, np.int64)
    else:
        ids = np.asarray(rows.column(1).take(pa.array(picked, pa.int64())).to_numpy(zero_copy_only=False), np.int64)
    if matrix.size == 0:
        matrix = np.zeros((0, 1), np.float32)
    return manage.VectorSource(ids, matrix)


def _built_message(rec: IndexRecord) -> str:
    b = rec.build or {}
    if b.get("too_small"):
        return "the table has no vectors yet: it is searched exactly, and the index is built when rows arrive"
    lists = b.get("lists")
    what = f"{lists} lists" if rec.spec.index_type == "IVF" else f"{lists} leaf" + ("s" if lists != 1 else "")
    chosen = " (chosen from the table size)" if rec.spec.index_type == "IVF" and rec.spec.num_lists is None else ""
    return f"{b.get('rows')} vectors, {what}{chosen}, built in {b.get('build_s')} s"


@statement("create_vector_index")
def create_vector_index(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``CREATE [OR REPLACE] VECTOR INDEX [IF NOT EXISTS] name ON table(column) [STORING(...)] OPTIONS(...)``."""
    assert parsed.name is not None and parsed.table is not None and parsed.column is not None
    stmt = ctx.statement
    index_name = parsed.name.name
    check_writable(ctx, parsed.table)
    table_name = name_of(parsed.table)
    if table_name.key not in relations(ctx.con, internal=True):
        raise ctx.missing_table(parsed.table)
    schema = ctx.query_sql(f"SELECT * FROM {ctx.ref(table_name)} LIMIT 0").schema
    columns = {n.lower(): n for n in schema.names}
    column = columns.get(parsed.column.lower())
    if column is None:
        close = difflib.get_close_matches(parsed.column.lower(), list(columns), n=1)
        raise ctx.error(
            f"table {table_name.display} has no column {parsed.column}",
            at=parsed.table,
            hint=f"did you mean {columns[close[0]]}?" if close else "columns: " + ", ".join(schema.names),
        )
    col_type = schema.field(column).type
    if not (pa.types.is_list(col_type) or pa.types.is_large_list(col_type) or pa.types.is_fixed_size_list(col_type)):
        raise ctx.error(
            f"column {column} is {col_type}; a vector index needs an ARRAY<FLOAT64> column", at=parsed.table
        )
    for extra in parsed.storing:
        if extra.lower() not in columns:
            raise ctx.error(f"STORING column {extra} is not a column of {table_name.display}", at=parsed.table)

    given: dict[str, Any] = {}
    offsets: dict[str, int] = {}
    for key, node, offset in parsed.options:
        given[key] = constant(stmt, node, f"option {key}")
        offsets[key] = offset
    check_keys(stmt, given, OPTION_HELP, "vector index option", offsets.get(next(iter(given), "")))
    try:
        spec = parse_index_options(given)
    except InvalidArgument as err:
        at = next((offsets[k] for k in offsets if k in err.message), None)
        raise ctx.error(err.message, at=at, hint=err.hint) from None

    existing = vindexes.list_indexes(ctx.con, table_name.key)
    same = [r for r in existing if r.key == index_name.lower()]
    if same and not parsed.replace:
        if parsed.if_exists:
            return Outcome(None, f"vector index {index_name} already exists; left unchanged")
        raise ctx.error(
            f"vector index {index_name} on {table_name.display} already exists",
            at=parsed.name,
            hint="use CREATE OR REPLACE VECTOR INDEX, or CREATE VECTOR INDEX IF NOT EXISTS",
        )
    other = [r for r in existing if r.key != index_name.lower() and r.column.lower() == column.lower()]
    if other:
        raise ctx.error(
            f"column {column} of {table_name.display} already has vector index {other[0].name}",
            at=parsed.name,
            hint=f"DROP VECTOR INDEX {other[0].name} ON {table_name.display} first",
        )
    id_column = _face_table_id(ctx, table_name, column)
    rec = IndexRecord(table_name.key, index_name, column, spec, tuple(parsed.storing), id_column=id_column)
    try:
        rec = manage.build_record(ctx.dataset_path, rec, _read_source(ctx, table_name, column, id_column))
    except InvalidArgument as err:
        raise ctx.error(err.message, at=offsets.get("ivf_options", parsed.name), hint=err.hint) from None
    manage.commit(ctx.con, ctx.dataset_path, rec)
    verb = "replaced" if same else "created"
    return Outcome(
        None,
        f"{verb} vector index {index_name} on {table_name.display}({column}) "
        f"({spec.index_type}, {spec.distance_type}): {_built_message(rec)}",
    )


def _existing(ctx: Context, parsed: ParsedStatement, verb: str) -> tuple[Name, IndexRecord | Outcome]:
    """The index a statement names, or (with IF EXISTS) the outcome saying there is none to ``verb``."""
    assert parsed.name is not None and parsed.table is not None
    table_name = name_of(parsed.table)
    rec = vindexes.find(ctx.con, table_name.key, parsed.name.name)
    if rec is not None:
        return table_name, rec
    if parsed.if_exists:
        return table_name, Outcome(None, f"no vector index {parsed.name.name} on {table_name.display}; nothing {verb}")
    names = ", ".join(r.name for r in vindexes.list_indexes(ctx.con, table_name.key))
    raise ctx.error(
        f"vector index {parsed.name.name} on {table_name.display} was not found",
        at=parsed.name,
        hint=f"indexes on {table_name.display}: {names}" if names else None,
    )


@statement("alter_vector_index")
def alter_vector_index(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``ALTER VECTOR INDEX [IF EXISTS] name ON table REBUILD``: train it again over the table as it is now."""
    table_name, rec = _existing(ctx, parsed, "rebuilt")
    if isinstance(rec, Outcome):
        return rec
    if table_name.key not in relations(ctx.con, internal=True):
        raise ctx.error(f"table {table_name.display} was not found", at=parsed.table)
    source = _read_source(ctx, table_name, rec.column, rec.id_column)
    try:
        rec = manage.build_record(ctx.dataset_path, rec.with_build(None), source)
    except InvalidArgument as err:
        raise ctx.error(err.message, at=parsed.name, hint=err.hint) from None
    manage.commit(ctx.con, ctx.dataset_path, rec)
    return Outcome(None, f"rebuilt vector index {rec.name} on {table_name.display}: {_built_message(rec)}")


@statement("drop_vector_index")
def drop_vector_index(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``DROP VECTOR INDEX [IF EXISTS] name ON table``: its catalog row, then its files."""
    table_name, rec = _existing(ctx, parsed, "dropped")
    if isinstance(rec, Outcome):
        return rec
    manage.drop(ctx.con, ctx.dataset_path, rec)
    return Outcome(None, f"dropped vector index {rec.name} on {table_name.display}")


def refresh_table(ctx: Context, table: Name) -> None:
    """After DML on ``table``: add its new rows to its indexes and remove the deleted ones (as BigQuery's
    background refresh does; until then those rows are searched exactly anyway)."""
    for rec in vindexes.list_indexes(ctx.con, table.key):
        try:
            source = _read_source(ctx, table, rec.column, rec.id_column)
            new = manage.refresh_record(ctx.dataset_path, rec, source)
        except (LookalikeError, IndexFileError) as err:
            ctx.notice(f"vector index {rec.name} was not refreshed ({err.message}); new rows are searched exactly")
            continue
        if new is not None:
            manage.commit(ctx.con, ctx.dataset_path, new)


def describe_indexes(ctx: Context, schema: str | None) -> list[dict[str, Any]]:
    """``INFORMATION_SCHEMA.VECTOR_INDEXES`` rows for the tables of ``schema`` (all schemas when ``None``)."""
    from lookalike.search.vindex.faces import describe

    out: list[dict[str, Any]] = []
    tables = relations(ctx.con, internal=True)
    for rec in vindexes.list_indexes(ctx.con):
        table_schema = rec.table_key.partition(".")[0]
        if schema is not None and table_schema != schema.lower():
            continue
        name = tables.get(rec.table_key)
        if name is None:
            continue
        source = _read_source(ctx, name, rec.column, rec.id_column)
        row = describe(ctx.dataset_path, rec, source.ids, name.display)
        row["table_catalog"] = ctx.catalog
        row["table_schema"] = name.schema
        row["table_name"] = name.name
        out.append(row)
    return out
