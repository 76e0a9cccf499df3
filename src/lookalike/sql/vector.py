"""``VECTOR_SEARCH`` and vector indexes.

``VECTOR_SEARCH(TABLE base | (query), 'column', TABLE q | (query) [, 'query_column'], top_k => k,
distance_type => 'COSINE' | 'EUCLIDEAN' | 'DOT_PRODUCT', options => '{"use_brute_force": true}')`` returns
one row per (query row, neighbour): ``query`` (a STRUCT of the query row's columns), ``base`` (a STRUCT of the
base row's columns) and ``distance`` (DOUBLE), nearest first for each query row. BigQuery's defaults hold:
``top_k`` 10, ``EUCLIDEAN`` (or the distance of a vector index on the column, as in BigQuery). A base
``(subquery)`` with a WHERE clause filters the rows before the search (a pre-filter). Rows whose vector is
NULL or empty are skipped, on both sides.

The search is the core's exact kernel (:func:`lookalike.search.exact.top_k`, numpy/BLAS). Distances are
computed for the vectors as stored, not assuming unit length: COSINE is ``1 - cos(q, x)``, EUCLIDEAN the L2
distance, DOT_PRODUCT ``-q . x``.

``CREATE VECTOR INDEX`` / ``DROP VECTOR INDEX`` keep index definitions in ``lookalike_sql_vector_indexes``.
Until the core has an ANN index, VECTOR_SEARCH searches exactly and says so in a notice when it would have
used an index.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from lookalike.errors import LookalikeError
from lookalike.search.distances import Distance
from lookalike.search.exact import top_k as exact_top_k
from lookalike.sql.context import Context, Outcome
from lookalike.sql.names import Name, name_of, relations
from lookalike.sql.parse import ParsedStatement
from lookalike.sql.registry import Evaluate, statement, table_function
from lookalike.sql.values import check_keys, constant

DEFAULT_TOP_K = 10
DEFAULT_DISTANCE = "EUCLIDEAN"
DISTANCE_TYPES: dict[str, Distance] = {"EUCLIDEAN": "euclidean", "COSINE": "cosine", "DOT_PRODUCT": "dot"}

SEARCH_OPTIONS = {
    "use_brute_force": "true to search exactly even when a vector index exists",
    "fraction_lists_to_search": "share of IVF lists to search, in (0, 1] (Lookalike searches exactly)",
}
INDEX_OPTIONS = {
    "index_type": "'IVF' or 'TREE_AH' (required)",
    "distance_type": "'EUCLIDEAN' (default), 'COSINE' or 'DOT_PRODUCT'",
    "ivf_options": "JSON '{\"num_lists\": N}' with N in 1..5000 (IVF only)",
    "tree_ah_options": 'JSON \'{"leaf_node_embedding_count": N, "normalization_type": ...}\' (TREE_AH only)',
}
INDEX_TYPES = ("IVF", "TREE_AH")

_NO_ANN = "Lookalike has no ANN index yet, so VECTOR_SEARCH searches exactly (exact results)"


@dataclass(frozen=True, slots=True)
class VectorIndex:
    table: Name
    name: str
    column: str
    index_type: str
    distance_type: str


def index_on(ctx: Context, table: Name, column: str) -> VectorIndex | None:
    """The vector index defined on ``table(column)``, if any."""
    rows = ctx.con.execute(
        """SELECT display_name, column_name, index_type, distance_type FROM lookalike_sql_vector_indexes
           WHERE tbl = ? AND lower(column_name) = lower(?)""",
        [table.key, column],
    ).fetchall()
    if not rows:
        return None
    return VectorIndex(table, str(rows[0][0]), str(rows[0][1]), str(rows[0][2]), str(rows[0][3]))


def forget_table(ctx: Context, key: str) -> None:
    """Remove the index definitions of a table that was dropped or replaced."""
    ctx.con.execute("DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ?", [key])


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
    brute = bool(options.get("use_brute_force", False))

    index = index_on(ctx, name_of(base_arg), column) if _is_named(base_arg) else None
    dist_node = node.args.get("distance_type")
    if dist_node is not None:
        dist_name = _string(ctx, dist_node, "distance_type").upper()
    elif index is not None and not brute:
        dist_name = index.distance_type
    else:
        dist_name = DEFAULT_DISTANCE
    if dist_name not in DISTANCE_TYPES:
        raise ctx.error(f"unknown distance_type {dist_name!r}", at=dist_node, hint="use " + ", ".join(DISTANCE_TYPES))
    if index is not None and not brute:
        ctx.notice(f"vector index {index.name} on {index.table.display}({index.column}) is defined, but {_NO_ANN}")

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
    if distance == "cosine":
        base_mat, query_mat = _unit_rows(base_mat), _unit_rows(query_mat)
    if base_mat.shape[0] == 0 or query_mat.shape[0] == 0:
        idx = np.zeros((query_mat.shape[0], 0), np.int64)
        dists = np.zeros((query_mat.shape[0], 0), np.float32)
    else:
        try:
            idx, dists = exact_top_k(base_mat, query_mat, k, distance)
        except LookalikeError as err:
            raise ctx.error(err.message, at=node, hint=err.hint) from err
    per_query = idx.shape[1]
    query_take = np.repeat(query_rows, per_query)
    base_take = base_rows[idx.reshape(-1)] if idx.size else np.zeros(0, np.int64)
    return pa.table(
        {
            "query": _structs(query, query_take),
            "base": _structs(base, base_take),
            "distance": pa.array(dists.reshape(-1).astype(np.float64), pa.float64()),
        }
    )


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


def _json_option(ctx: Context, value: Any, key: str, at: int) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError as err:
        raise ctx.error(f"{key} is not valid JSON: {err.msg}", at=at) from None
    if not isinstance(parsed, dict):
        raise ctx.error(f"{key} must be a JSON object string", at=at, hint=INDEX_OPTIONS[key])
    return parsed


@statement("create_vector_index")
def create_vector_index(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``CREATE [OR REPLACE] VECTOR INDEX [IF NOT EXISTS] name ON table(column) [STORING(...)] OPTIONS(...)``."""
    assert parsed.name is not None and parsed.table is not None and parsed.column is not None
    stmt = ctx.statement
    index_name = parsed.name.name
    table_name = name_of(parsed.table)
    if table_name.key not in relations(ctx.con):
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
    check_keys(stmt, given, INDEX_OPTIONS, "vector index option", offsets.get(next(iter(given), "")))
    index_type = str(given.get("index_type") or "").upper()
    if index_type not in INDEX_TYPES:
        raise ctx.error(
            "OPTIONS(index_type = ...) must be 'IVF' or 'TREE_AH'",
            at=offsets.get("index_type"),
            hint="OPTIONS(index_type = 'IVF', distance_type = 'COSINE')",
        )
    distance_type = str(given.get("distance_type") or DEFAULT_DISTANCE).upper()
    if distance_type not in DISTANCE_TYPES:
        raise ctx.error(
            f"unknown distance_type {distance_type!r}",
            at=offsets.get("distance_type"),
            hint="use " + ", ".join(DISTANCE_TYPES),
        )
    details: dict[str, Any] = {}
    if "ivf_options" in given:
        if index_type != "IVF":
            raise ctx.error("ivf_options goes with index_type = 'IVF'", at=offsets["ivf_options"])
        details = _json_option(ctx, given["ivf_options"], "ivf_options", offsets["ivf_options"])
        lists = details.get("num_lists")
        if set(details) - {"num_lists"} or (lists is not None and not (isinstance(lists, int) and 1 <= lists <= 5000)):
            raise ctx.error("ivf_options takes num_lists, an integer in 1..5000", at=offsets["ivf_options"])
    if "tree_ah_options" in given:
        if index_type != "TREE_AH":
            raise ctx.error("tree_ah_options goes with index_type = 'TREE_AH'", at=offsets["tree_ah_options"])
        details = _json_option(ctx, given["tree_ah_options"], "tree_ah_options", offsets["tree_ah_options"])

    existing = ctx.con.execute(
        "SELECT display_name, column_name FROM lookalike_sql_vector_indexes WHERE tbl = ?", [table_name.key]
    ).fetchall()
    same = [r for r in existing if str(r[0]).lower() == index_name.lower()]
    if same and not parsed.replace:
        if parsed.if_exists:
            return Outcome(None, f"vector index {index_name} already exists; left unchanged")
        raise ctx.error(
            f"vector index {index_name} on {table_name.display} already exists",
            at=parsed.name,
            hint="use CREATE OR REPLACE VECTOR INDEX, or CREATE VECTOR INDEX IF NOT EXISTS",
        )
    other = [r for r in existing if str(r[0]).lower() != index_name.lower() and str(r[1]).lower() == column.lower()]
    if other:
        raise ctx.error(
            f"column {column} of {table_name.display} already has vector index {other[0][0]}",
            at=parsed.name,
            hint=f"DROP VECTOR INDEX {other[0][0]} ON {table_name.display} first",
        )
    ctx.con.execute(
        "DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ? AND lower(name) = lower(?)",
        [table_name.key, index_name],
    )
    ctx.con.execute(
        """INSERT INTO lookalike_sql_vector_indexes
           (tbl, name, display_name, column_name, storing, index_type, distance_type, options)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            table_name.key,
            index_name.lower(),
            index_name,
            column,
            parsed.storing,
            index_type,
            distance_type,
            json.dumps(details),
        ],
    )
    ctx.notice(f"vector index {index_name} is recorded; {_NO_ANN}")
    verb = "replaced" if same else "created"
    return Outcome(
        None, f"{verb} vector index {index_name} on {table_name.display}({column}) ({index_type}, {distance_type})"
    )


@statement("drop_vector_index")
def drop_vector_index(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``DROP VECTOR INDEX [IF EXISTS] name ON table``."""
    assert parsed.name is not None and parsed.table is not None
    index_name = parsed.name.name
    table_name = name_of(parsed.table)
    rows = ctx.con.execute(
        "SELECT display_name FROM lookalike_sql_vector_indexes WHERE tbl = ?", [table_name.key]
    ).fetchall()
    if not any(str(r[0]).lower() == index_name.lower() for r in rows):
        if parsed.if_exists:
            return Outcome(None, f"no vector index {index_name} on {table_name.display}; nothing dropped")
        names = ", ".join(str(r[0]) for r in rows)
        raise ctx.error(
            f"vector index {index_name} on {table_name.display} was not found",
            at=parsed.name,
            hint=f"indexes on {table_name.display}: {names}" if names else None,
        )
    ctx.con.execute(
        "DELETE FROM lookalike_sql_vector_indexes WHERE tbl = ? AND lower(name) = lower(?)",
        [table_name.key, index_name],
    )
    return Outcome(None, f"dropped vector index {index_name} on {table_name.display}")
