"""What a vector index is (its type, distance and parameters) and how its options are read and checked.

The options are BigQuery's (``CREATE VECTOR INDEX ... OPTIONS(index_type, distance_type, ivf_options,
tree_ah_options)``); the SQL front end, the CLI and the Python API all pass them through
:func:`parse_index_options`, so each refuses the same bad input with the same message.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from lookalike.errors import InvalidArgument
from lookalike.search.distances import Distance

INDEX_TYPES = ("IVF", "TREE_AH")
#: BigQuery's distance names and ours.
DISTANCE_TYPES: dict[str, Distance] = {"EUCLIDEAN": "euclidean", "COSINE": "cosine", "DOT_PRODUCT": "dot"}
DISTANCE_NAMES: dict[Distance, str] = {v: k for k, v in DISTANCE_TYPES.items()}
MAX_LISTS = 5000  # BigQuery's limit for num_lists
#: A table with fewer vectors than this has no index (BigQuery: BASE_TABLE_TOO_SMALL): only an empty one.
MIN_ROWS = 1
#: Below this many vectors a TREE_AH index keeps them exact (a 4-bit codebook needs data to train on, and an
#: exact scan of a few dozen rows is as fast); a refresh that takes it past this trains the codes.
PQ_MIN_ROWS = 64
#: IVF lists above which the coarse quantizer is an HNSW graph instead of a flat scan of the centroids.
HNSW_COARSE_FROM = 1024
#: Share of IVF lists searched when the query does not say (see the README's measured recall).
DEFAULT_FRACTION_LISTS = 0.1
#: TREE_AH: candidates re-ranked with the stored vectors, at least, and per requested neighbour, for a table of
#: RERANK_ROWS vectors; larger tables re-rank sqrt(rows / RERANK_ROWS) times more up to RERANK_STEEP_FROM times
#: RERANK_ROWS, and (rows / that) ** RERANK_STEEP_EXP times more beyond (``benchmarks/ann.py``: 500 keep 99.6 % of
#: the same-person hits at 200k faces and 1,118 keep 99.8 % at 1M, but the square root's 3,536 kept only 99.3 %
#: at 10M, where 5,000 keep 99.55 %).
RERANK_MIN = 500
RERANK_PER_K = 50
RERANK_ROWS = 200_000
RERANK_STEEP_FROM = 5
RERANK_STEEP_EXP = 0.7
#: TREE_AH indexes with refine codes (``build.wants_refine``) rank their candidates by 4-bit scalar codes first and
#: read back only the best ``max(REFINE_EXACT_MIN, REFINE_EXACT_PER_K * k)`` for the exact distances. Measured on
#: the ``benchmarks/ann.py`` workload (2026-12-02): of the exact same-person hits among 2,000 candidates of 1M
#: faces, the best 20 by the scalar codes kept 99.82 % against 99.86 % for all 2,000, the best 50 all of them;
#: at 10M, of 5,000 and 10,000 candidates, the best 50 kept all of them.
REFINE_EXACT_MIN = 50
REFINE_EXACT_PER_K = 5
#: Tables from this many vectors get refine codes (256 bytes a 512-d vector more, an eighth of the float32 matrix).
#: Ranking the candidates by them and reading back only the best few rows beats reading every candidate's
#: scattered float32 row once the matrix is larger than the CPU's cache. Measured on the ``benchmarks/ann.py``
#: workload (2 vCPUs AMD EPYC, 32 MiB L3, 2026-12-02), one query at 50k, 100k, 200k and 1M faces: 0.40, 0.37,
#: 0.38 and 1.70 ms with the codes against 0.45, 0.41, 0.47 and 1.85 ms without, the same rows found. The cost:
#: the codes' file is hashed once after each build or change (SHA-256, about 0.15 s per 1M faces here; later
#: loads trust its stat stamp: :mod:`~lookalike.search.vindex.files`), and a build encodes them (1.5-2 s more at
#: 200k-1M).
REFINE_FROM_ROWS = 50_000

OPTION_HELP = {
    "index_type": "'IVF' or 'TREE_AH' (required)",
    "distance_type": "'EUCLIDEAN' (default), 'COSINE' or 'DOT_PRODUCT'",
    "ivf_options": "JSON '{\"num_lists\": N}' with N in 1..5000 (IVF only)",
    "tree_ah_options": 'JSON \'{"leaf_node_embedding_count": N, "normalization_type": "NONE" | "L2"}\' (TREE_AH only)',
}


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """An index definition as the user gave it (``None`` = chosen at build time from the table size)."""

    index_type: str
    distance: Distance
    num_lists: int | None = None
    leaf_node_embedding_count: int | None = None
    normalization: str = "NONE"

    @property
    def distance_type(self) -> str:
        return DISTANCE_NAMES[self.distance]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IndexSpec:
        return cls(**json.loads(text))

    def lists_for(self, rows: int) -> int:
        """How many lists (IVF) or leaves (TREE_AH) a build over ``rows`` vectors gets."""
        if self.index_type == "IVF":
            if self.num_lists is not None:
                return self.num_lists
            return auto_num_lists(rows)
        if self.leaf_node_embedding_count is None:
            return 1
        return max(1, min(MAX_LISTS, math.ceil(rows / self.leaf_node_embedding_count)))

    def options_sql(self) -> str:
        """The OPTIONS(...) clause that recreates this index (for ``INFORMATION_SCHEMA.VECTOR_INDEXES.ddl``)."""
        parts = [f"index_type = '{self.index_type}'", f"distance_type = '{self.distance_type}'"]
        if self.num_lists is not None:
            parts.append(f"ivf_options = '{{\"num_lists\": {self.num_lists}}}'")
        if self.index_type == "TREE_AH" and (
            self.leaf_node_embedding_count is not None or self.normalization != "NONE"
        ):
            opts: dict[str, Any] = {"normalization_type": self.normalization}
            if self.leaf_node_embedding_count is not None:
                opts["leaf_node_embedding_count"] = self.leaf_node_embedding_count
            parts.append(f"tree_ah_options = '{json.dumps(opts)}'")
        return "OPTIONS(" + ", ".join(parts) + ")"


def auto_num_lists(rows: int) -> int:
    """IVF lists for a table of ``rows`` vectors: about 4 x sqrt(rows), within 1..5000 and at most rows / 39
    (faiss wants 39 training points a list)."""
    return max(1, min(MAX_LISTS, round(4 * math.sqrt(rows)), rows // 39 or 1))


@dataclass(frozen=True, slots=True)
class SearchKnobs:
    """How one search uses an index: ``fraction`` of IVF lists (TREE_AH: of rows re-ranked), or exact."""

    fraction_lists_to_search: float | None = None
    use_brute_force: bool = False

    def __post_init__(self) -> None:
        f = self.fraction_lists_to_search
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1):
            raise InvalidArgument(
                f"fraction_lists_to_search must be a number in (0, 1], got {f!r}",
                hint="0.1 searches a tenth of the index's lists; 1.0 searches all of them",
            )


def _json_object(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError as err:
        raise InvalidArgument(f"{key} is not valid JSON: {err.msg}", hint=OPTION_HELP[key]) from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{key} must be a JSON object string", hint=OPTION_HELP[key])
    return parsed


def _positive_int(value: Any, what: str, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (upper is not None and value > upper):
        limit = f"1..{upper}" if upper is not None else "at least 1"
        raise InvalidArgument(f"{what} must be an integer in {limit}, got {value!r}")
    return value


def parse_index_options(options: dict[str, Any]) -> IndexSpec:
    """Check BigQuery's ``CREATE VECTOR INDEX`` options (names in any case) and return the definition."""
    given = {str(k).lower(): v for k, v in options.items()}
    unknown = sorted(set(given) - set(OPTION_HELP))
    if unknown:
        raise InvalidArgument(
            f"unknown vector index option {unknown[0]!r}",
            hint="options: " + "; ".join(f"{k}: {v}" for k, v in OPTION_HELP.items()),
        )
    index_type = str(given.get("index_type") or "").upper()
    if index_type not in INDEX_TYPES:
        raise InvalidArgument(
            "index_type must be 'IVF' or 'TREE_AH'"
            + (f", got {given['index_type']!r}" if "index_type" in given else ""),
            hint="OPTIONS(index_type = 'IVF', distance_type = 'COSINE')",
        )
    dist_name = str(given.get("distance_type") or "EUCLIDEAN").upper()
    if dist_name not in DISTANCE_TYPES:
        raise InvalidArgument(
            f"unknown distance_type {given['distance_type']!r}", hint="use " + ", ".join(DISTANCE_TYPES)
        )
    num_lists = None
    leaf = None
    normalization = "NONE"
    if "ivf_options" in given:
        if index_type != "IVF":
            raise InvalidArgument("ivf_options goes with index_type = 'IVF'", hint=OPTION_HELP["tree_ah_options"])
        ivf = _json_object(given["ivf_options"], "ivf_options")
        if set(ivf) - {"num_lists"}:
            raise InvalidArgument(
                f"unknown ivf_options key {sorted(set(ivf) - {'num_lists'})[0]!r}", hint=OPTION_HELP["ivf_options"]
            )
        if "num_lists" in ivf:
            num_lists = _positive_int(ivf["num_lists"], "num_lists", MAX_LISTS)
    if "tree_ah_options" in given:
        if index_type != "TREE_AH":
            raise InvalidArgument("tree_ah_options goes with index_type = 'TREE_AH'", hint=OPTION_HELP["ivf_options"])
        tree = _json_object(given["tree_ah_options"], "tree_ah_options")
        extra = set(tree) - {"leaf_node_embedding_count", "normalization_type"}
        if extra:
            raise InvalidArgument(
                f"unknown tree_ah_options key {sorted(extra)[0]!r}", hint=OPTION_HELP["tree_ah_options"]
            )
        if "leaf_node_embedding_count" in tree:
            leaf = _positive_int(tree["leaf_node_embedding_count"], "leaf_node_embedding_count")
        normalization = str(tree.get("normalization_type", "NONE")).upper()
        if normalization not in ("NONE", "L2"):
            raise InvalidArgument(f"normalization_type must be 'NONE' or 'L2', got {tree['normalization_type']!r}")
    return IndexSpec(index_type, DISTANCE_TYPES[dist_name], num_lists, leaf, normalization)
