"""Lookalike: find the most similar faces to a query photo in a folder or a bucket of photos.

The public API::

    import lookalike
    ds = lookalike.open("lookalike.duckdb")
    ds.index("photos/")
    result = ds.search("query.jpg", top_k=5)

See :class:`lookalike.api.Dataset` for every operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.api import Dataset, SearchHit, SearchResult, VerifyResult, open

__version__ = "0.1.0"

__all__ = ["Dataset", "LookalikeError", "SearchHit", "SearchResult", "VerifyResult", "__version__", "open"]

#: Names read from :mod:`lookalike.api` on first use (PEP 562), so that importing a submodule (an indexing
#: worker imports :mod:`lookalike.embedding`) does not import DuckDB, the SQL engine and the rest: that took
#: 0.5-0.9 s of each worker's start on 2 vCPUs.
_FROM_API = frozenset({"Dataset", "SearchHit", "SearchResult", "VerifyResult", "open"})


def __getattr__(name: str) -> Any:
    if name in _FROM_API:
        from lookalike import api

        return getattr(api, name)
    raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
