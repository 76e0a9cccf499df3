"""Lookalike: find the most similar faces to a query photo in a folder or a bucket of photos.

The public API::

    import lookalike
    ds = lookalike.open("lookalike.duckdb")
    ds.index("photos/")
    result = ds.search("query.jpg", top_k=5)

See :class:`lookalike.api.Dataset` for every operation.
"""

from __future__ import annotations

from lookalike.api import Dataset, SearchHit, SearchResult, VerifyResult, open
from lookalike.errors import LookalikeError

__version__ = "0.1.0"

__all__ = ["Dataset", "LookalikeError", "SearchHit", "SearchResult", "VerifyResult", "__version__", "open"]
