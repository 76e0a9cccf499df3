"""Vector indexes: approximate nearest-neighbour search over a table's vectors, with BigQuery's semantics.

An index never changes an answer's distances, only which rows are looked at:

* ``IVF``: an inverted file of exact vectors (faiss ``IVF<n>,Flat``; an HNSW coarse quantizer when the lists
  are many). ``fraction_lists_to_search`` picks how many lists a query scans; 1.0 scans them all (exact).
* ``TREE_AH``: 4-bit product-quantisation codes scanned with faiss's fast-scan kernels (32 bytes a 512-d face),
  whose best candidates are re-ranked with the stored vectors, as ScaNN does. By default every code is
  scanned (one leaf): on face embeddings a partition loses far-away true matches (see ``benchmarks/ann.py``);
  ``leaf_node_embedding_count`` partitions it when asked.

Rows written after a build are searched exactly and merged with the index's results; rows deleted since are
filtered out of the index's results by an id selector, as are rows a pre-filter excludes. See
:mod:`~lookalike.search.vindex.searcher`.
"""

from lookalike.search.vindex.searcher import IndexUsage, LoadedIndex, search_rows
from lookalike.search.vindex.spec import IndexSpec, SearchKnobs, parse_index_options

__all__ = ["IndexSpec", "IndexUsage", "LoadedIndex", "SearchKnobs", "parse_index_options", "search_rows"]
