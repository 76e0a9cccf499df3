"""Which sources may be indexed through the REST API: only those under the server's allowed roots.

Indexing a folder makes its photos readable through the API, so ``POST /v1/index`` takes only sources under a
root given with ``lookalike serve --allow-source PATH_OR_PREFIX`` (repeatable). Without it, a server bound to
loopback allows its working directory, and any other server allows nothing. A local source is compared by its
real path, so a symlink that leads out of a root is refused; and listing a folder never follows the symlinks in
it (:mod:`lookalike.storage` lists regular files only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lookalike.errors import BadURI, SourceNotAllowed

_GLOB = re.compile(r"[*?\[]")


def _local(source: str) -> str | None:
    """The local path of ``source`` (``None`` for a bucket URI)."""
    if source.startswith("file://"):
        return source[len("file://") :]
    if "://" in source:
        return None
    return os.path.abspath(os.path.expanduser(source))


def _base(path: str) -> str:
    """The part of a path before its first glob component (the folder a glob lists)."""
    parts = path.split(os.sep)
    for i, part in enumerate(parts):
        if _GLOB.search(part):
            return os.sep.join(parts[:i]) or os.sep
    return path


def _under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """The roots under which sources may be indexed: real local paths, or URI prefixes (``s3://bucket/x/``)."""

    roots: tuple[str, ...]

    @classmethod
    def of(cls, roots: Sequence[str]) -> SourcePolicy:
        out = []
        for root in roots:
            local = _local(root)
            out.append(os.path.realpath(local) if local is not None else root.rstrip("/") + "/")
        return cls(tuple(out))

    def check(self, source: str) -> None:
        """Raise :class:`~lookalike.errors.SourceNotAllowed` unless ``source`` lies under an allowed root."""
        if "\x00" in source:
            raise BadURI(f"source {source!r} contains a NUL character", hint="give a path or a URI")
        local = _local(source)
        if local is not None:
            real = os.path.realpath(_base(local))
            ok = any(_under(real, r) for r in self.roots if "://" not in r)
        else:
            ok = any(source == r.rstrip("/") or source.startswith(r) for r in self.roots if "://" in r)
        if not ok:
            shown = ", ".join(self.roots) if self.roots else "none"
            raise SourceNotAllowed(
                f"source {source!r} is outside the roots this server may index (allowed: {shown})",
                hint="start the server with --allow-source PATH_OR_PREFIX, or index it with lookalike index",
            )
