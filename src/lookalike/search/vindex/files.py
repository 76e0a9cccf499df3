"""Index files on disk: written atomically, tied to a checksum, read back or refused.

Each build lives in its own folder ``<dataset>.indexes/<slug>/<build id>/`` holding ``index.faiss`` (the faiss
index), ``ids.npy`` (the sorted ids it holds) and, for a default TREE_AH index over a large table,
``refine.faiss`` (its 4-bit scalar codes, see :func:`~lookalike.search.vindex.build.wants_refine`). The folder
is written under a temporary name and renamed into place, and only then does the catalog row point at it; the
previous build is deleted after that. A build killed half-way therefore leaves the previous index in force, and
a reader never sees half a file.
The catalog keeps each file's SHA-256, so a truncated or altered file is refused on load
(:class:`IndexFileError`) and the search falls back to exact search.

Hashing every file on every load cost each new search process 0.7 s at 3M faces (800 MB of files, 2 vCPUs AMD
EPYC, 2026-12-02), and about 1.5 s at 10M. So once a file has checked out, its stat stamp (size, modification
and change times, inode) is kept beside it in ``checked.json``, and a later load that finds the same stamp does
not hash it again, as git trusts its index's stamps. Writing to a file, or replacing it, changes its stamp (the
change time cannot be set back), and the file is hashed again. A stamp is kept only for a file last changed
:data:`_RACY_NS` before it was hashed, so that a change within one tick of a coarse file clock cannot hide
behind it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import SearchError
from lookalike.search.vindex._faiss import faiss as load_faiss

_FILES = ("index.faiss", "ids.npy")
_REFINE = "refine.faiss"
_CHECKED = "checked.json"  # the stat stamps of the files that checked out (see the module's docstring)
#: A stamp is kept only for a file last changed at least this long (ns) before its hash was checked.
_RACY_NS = 2_000_000_000


class IndexFileError(SearchError):
    """An index file that is missing, truncated or does not match its checksum."""

    code = "vector_index_file"


@dataclass(frozen=True, slots=True)
class BuildRef:
    """Where a build lives and what its files must hash to."""

    folder: str  # relative to the index root
    sha256: dict[str, str]
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildRef:
        return cls(folder=str(d["folder"]), sha256=dict(d["sha256"]), bytes=int(d["bytes"]))


def index_root(dataset_path: str) -> Path:
    """The folder beside the dataset file that holds its index files."""
    return Path(os.path.abspath(dataset_path) + ".indexes")


def slug(table_key: str, index_name: str) -> str:
    safe = re.sub(r"[^a-z0-9_.-]", "_", f"{table_key}.{index_name}".lower())
    return f"{safe}-{hashlib.sha1(f'{table_key}/{index_name}'.lower().encode()).hexdigest()[:8]}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(ref: BuildRef) -> tuple[str, ...]:
    """The files of a build: the two every build has, and the refine codes where it was written with them."""
    return _FILES + ((_REFINE,) if _REFINE in ref.sha256 else ())


def write_build(root: Path, name: str, index: Any, ids: np.ndarray, refine: Any = None) -> BuildRef:
    """Write ``index``, its sorted ``ids`` (and its ``refine`` codes) as a new build folder under ``root/name``;
    return its ref."""
    faiss = load_faiss()

    parent = root / name
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        faiss.write_index(index, str(tmp / "index.faiss"))
        np.save(tmp / "ids.npy", np.ascontiguousarray(ids, np.int64))
        names: tuple[str, ...] = _FILES
        if refine is not None:
            faiss.write_index(refine, str(tmp / _REFINE))
            names += (_REFINE,)
        sums = {}
        size = 0
        for f in names:
            with open(tmp / f, "rb+") as fh:
                os.fsync(fh.fileno())
            sums[f] = _sha256(tmp / f)
            size += (tmp / f).stat().st_size
        folder = f"{name}/{uuid.uuid4().hex[:16]}"
        os.rename(tmp, root / folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildRef(folder=folder, sha256=sums, bytes=size)


def _check_sizes(folder: Path, ref: BuildRef) -> None:
    """Both files there, with the sizes the build wrote (a cheap test for a missing or truncated file)."""
    size = 0
    for f in _files(ref):
        path = folder / f
        if not path.is_file():
            raise IndexFileError(f"vector index file {path} is missing", hint="rebuild the index")
        size += path.stat().st_size
    if size != ref.bytes:
        raise IndexFileError(
            f"vector index files in {folder} do not match their checksum (truncated or changed)",
            hint="rebuild the index",
        )


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _check_sums(folder: Path, ref: BuildRef, names: tuple[str, ...]) -> None:
    """Each of ``names`` in ``folder`` matches its SHA-256 in ``ref`` (hashed, unless its stat stamp is the one
    kept when it last checked out); :class:`IndexFileError` for the first that does not."""
    try:
        kept = json.loads((folder / _CHECKED).read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    changed = False
    for f in names:
        path = folder / f
        want = ref.sha256.get(f)
        stamp = _stamp(path)
        if want is not None and kept.get(f) == {"sha256": want, "stamp": stamp}:
            continue
        if want is None or _sha256(path) != want:
            raise IndexFileError(
                f"vector index file {path} does not match its checksum (truncated or changed)",
                hint="rebuild the index",
            )
        if time.time_ns() - max(stamp[1], stamp[2]) >= _RACY_NS:
            kept[f] = {"sha256": want, "stamp": stamp}
            changed = True
    if changed:
        _keep_stamps(folder, kept)


def _keep_stamps(folder: Path, kept: dict[str, Any]) -> None:
    """Write ``checked.json`` atomically; where the folder is read-only, every load hashes the files again."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".checked-", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(kept, fh)
        os.replace(tmp, folder / _CHECKED)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def read_ids(root: Path, ref: BuildRef) -> np.ndarray:
    """The sorted ids a build holds, checked (both files present at their sizes, the ids file's SHA-256) without
    reading the index itself."""
    folder = root / ref.folder
    _check_sizes(folder, ref)
    _check_sums(folder, ref, ("ids.npy",))
    return np.load(folder / "ids.npy")


def read_build(root: Path, ref: BuildRef) -> tuple[Any, np.ndarray, Any]:
    """The faiss index, sorted ids and refine codes (None where the build has none) of a build;
    :class:`IndexFileError` when a file is missing or altered."""
    faiss = load_faiss()

    folder = root / ref.folder
    _check_sizes(folder, ref)
    _check_sums(folder, ref, _files(ref))
    try:
        index = faiss.read_index(str(folder / "index.faiss"))
        ids = np.load(folder / "ids.npy")
        refine = read_refine(folder / _REFINE) if _REFINE in ref.sha256 else None
    except (RuntimeError, OSError, ValueError) as err:
        raise IndexFileError(f"vector index file in {folder} cannot be read: {err}", hint="rebuild the index") from None
    return index, ids, refine


def read_refine(path: Path | str) -> Any:
    """A build's refine codes, memory-mapped from their file rather than read into private memory: at 10M faces
    they are 2.6 GB, which a search process then maps in moments instead of reading, and which every process
    searching the index (a server, each CLI search) shares in the OS page cache. The file was checked just before
    (its SHA-256, or its stat stamp once it has checked out). (A build's files never change; a deleted one stays
    readable while it is mapped.)"""
    faiss = load_faiss()

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)


def remove_others(root: Path, name: str, keep: str | None, *, spare: bool = True) -> None:
    """Delete the build folders of ``name`` except ``keep`` and (with ``spare``) the newest other one,
    which a reader that looked at the catalog just before the swap may still be opening. ``keep=None``
    deletes them all (the index was dropped). ``spare=False`` when older builds must not survive (they hold
    faces a user forgot)."""
    parent = root / name
    if not parent.is_dir():
        return
    if keep is None:
        shutil.rmtree(parent, ignore_errors=True)
        return
    others = [c for c in parent.iterdir() if f"{name}/{c.name}" != keep]
    finished = sorted((c for c in others if not c.name.startswith(".tmp-")), key=lambda c: c.stat().st_mtime)
    kept = finished[-1:] if spare else []
    for child in others:
        if child not in kept:
            shutil.rmtree(child, ignore_errors=True)
