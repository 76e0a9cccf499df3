"""List and read objects (photos) from local folders and object stores, through fsspec.

A *source* is what a user points Lookalike at. Supported forms:

==============================  ==========================================================
``photos`` / ``/abs/photos``    a local folder, listed recursively
``photos/a.jpg``                a single local file (always listed, whatever its extension)
``photos/**/*.jpg``             a local glob (``*``, ``?``, ``[...]``, ``**`` for any depth)
``file:///abs/photos[/glob]``   the same, as a URI (``file://localhost/...`` also accepted)
``s3://bucket/prefix[/glob]``   Amazon S3 or any S3-compatible server (s3fs)
``gs://bucket/prefix[/glob]``   Google Cloud Storage or fake-gcs-server (gcsfs); ``gcs://`` too
==============================  ==========================================================

Every listed object is described by an :class:`ObjectInfo` whose ``uri`` is canonical: an absolute POSIX
path for local files, ``s3://bucket/key`` or ``gs://bucket/key`` otherwise. :attr:`ObjectInfo.fingerprint`
says whether an object changed since it was last seen, so the indexer can skip unchanged photos.

Connection settings come from one :class:`StorageOptions` object, which by default reads the usual
environment variables (``AWS_*``, ``STORAGE_EMULATOR_HOST``...). Filesystem objects are built once per
(protocol, options, process) and reused.

All failures are raised as :mod:`lookalike.errors` types naming the URI: :class:`~lookalike.errors.BadURI`
(unknown scheme, malformed), :class:`~lookalike.errors.ObjectNotFound` (missing path, key or bucket) and
:class:`~lookalike.errors.StorageError` (permission, network, anything else).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import mimetypes
import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from lookalike.errors import BadURI, LookalikeError, ObjectNotFound, StorageError

Protocol = Literal["file", "s3", "gs"]

#: Schemes a source may use, as shown in error messages.
SUPPORTED_SCHEMES: tuple[str, ...] = ("file://", "s3://", "gs://", "gcs://", "a local path")

#: File extensions (lower case, without the dot) that count as images when listing folders and globs.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "pgm", "ppm", "pnm"}
)

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
_SCHEME_TO_PROTOCOL: dict[str, Protocol] = {"file": "file", "s3": "s3", "gs": "gs", "gcs": "gs"}
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,220}[A-Za-z0-9]$")
_GLOB_CHARS = ("*", "?", "[")
_GENERIC_TYPE = "application/octet-stream"
_EXTRA_MIME_TYPES = {
    ".webp": "image/webp",
    ".pgm": "image/x-portable-graymap",
    ".ppm": "image/x-portable-pixmap",
    ".pnm": "image/x-portable-anymap",
}


# ----------------------------------------------------------------------------------------------------
# Value objects
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What we know about one stored object, without reading its bytes.

    Attributes:
        uri: canonical address: an absolute POSIX path for local files, ``s3://bucket/key``, ``gs://bucket/key``.
        size: size in bytes.
        content_type: MIME type given by the store, else (or when the store only says
            ``application/octet-stream``) guessed from the extension; ``application/octet-stream`` if unknown.
        updated: last modification time, timezone-aware UTC.
        etag: the store's entity tag (S3 ETag without quotes, GCS etag); ``None`` for local files.
        md5: hex MD5 of the content when the store gives it (GCS ``md5Hash``; an S3 ETag that looks like an
            MD5, which is the case for single-part uploads without KMS encryption); ``None`` for local files.
        generation: the object's version: GCS generation, S3 ``VersionId`` (versioned buckets only), or for
            local files ``str(st_mtime_ns)``.
    """

    uri: str
    size: int
    content_type: str
    updated: datetime
    etag: str | None = None
    md5: str | None = None
    generation: str | None = None

    @property
    def fingerprint(self) -> str:
        """A string that changes whenever the object's content may have changed.

        Built from the strongest version marker available, plus the size:
        ``gen:<generation>:<size>`` if there is a generation (GCS generation, S3 VersionId, local mtime in
        nanoseconds), else ``md5:<md5>:<size>``, else ``etag:<etag>:<size>``, else
        ``mtime:<updated ISO>:<size>``. Compare fingerprints of the same URI only; two different objects
        with equal content do not necessarily have equal fingerprints.
        """
        if self.generation:
            return f"gen:{self.generation}:{self.size}"
        if self.md5:
            return f"md5:{self.md5}:{self.size}"
        if self.etag:
            return f"etag:{self.etag}:{self.size}"
        return f"mtime:{self.updated.isoformat()}:{self.size}"


def _env(*names: str) -> str | None:
    """The value of the first of ``names`` that is set to a non-empty string in the environment."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How to reach the object stores. One object for every storage call; hashable, so it keys the cache.

    Use :meth:`from_env` (what every function does when given ``options=None``) to take the settings from
    the environment. Fields left ``None`` let s3fs/botocore and gcsfs use their own defaults and credential
    chains (``~/.aws/credentials``, instance metadata, ``gcloud`` application-default credentials...).

    Attributes:
        s3_endpoint_url: an S3-compatible server (MinIO, SeaweedFS...). Env: ``LOOKALIKE_S3_ENDPOINT``,
            ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` (first set wins).
        s3_key: access key id. Env: ``AWS_ACCESS_KEY_ID`` (left to botocore when ``None``).
        s3_secret: secret access key. Env: ``AWS_SECRET_ACCESS_KEY`` (left to botocore when ``None``).
        s3_region: region. Env: ``AWS_REGION``, ``AWS_DEFAULT_REGION``.
        s3_anon: unsigned requests, for public buckets. Env: ``LOOKALIKE_S3_ANON=1``.
        s3_max_attempts: total attempts per request (botocore retries). ``None``: botocore's default
            (``AWS_MAX_ATTEMPTS`` or 5 in legacy mode); 1 fails fast on an unreachable server.
        gcs_endpoint_url: a GCS emulator such as fake-gcs-server. Env: ``LOOKALIKE_GCS_ENDPOINT``,
            ``STORAGE_EMULATOR_HOST`` (``http://`` is added when the value has no scheme).
        gcs_token: what gcsfs calls ``token``: a path to a service-account JSON file, ``"anon"``,
            ``"google_default"``, ``"cloud"``... Env: ``GOOGLE_APPLICATION_CREDENTIALS``. ``None`` with an
            emulator endpoint means ``"anon"``.
        gcs_project: the Google Cloud project. Env: ``GOOGLE_CLOUD_PROJECT``, ``GCLOUD_PROJECT``.
    """

    s3_endpoint_url: str | None = None
    s3_key: str | None = None
    s3_secret: str | None = None
    s3_region: str | None = None
    s3_anon: bool = False
    s3_max_attempts: int | None = None
    gcs_endpoint_url: str | None = None
    gcs_token: str | None = None
    gcs_project: str | None = None

    def __repr__(self) -> str:
        # Never print the secret (options objects end up in logs and error reports).
        shown = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if shown["s3_secret"] is not None:
            shown["s3_secret"] = "***"
        body = ", ".join(f"{name}={value!r}" for name, value in shown.items())
        return f"StorageOptions({body})"

    @classmethod
    def from_env(cls) -> StorageOptions:
        """Build options from the environment variables listed on each field."""
        gcs_endpoint = _env("LOOKALIKE_GCS_ENDPOINT", "STORAGE_EMULATOR_HOST")
        if gcs_endpoint and "://" not in gcs_endpoint:
            gcs_endpoint = f"http://{gcs_endpoint}"
        max_attempts = _env("LOOKALIKE_S3_MAX_ATTEMPTS")
        return cls(
            s3_endpoint_url=_env("LOOKALIKE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            s3_key=_env("AWS_ACCESS_KEY_ID"),
            s3_secret=_env("AWS_SECRET_ACCESS_KEY"),
            s3_region=_env("AWS_REGION", "AWS_DEFAULT_REGION"),
            s3_anon=_env_flag("LOOKALIKE_S3_ANON"),
            s3_max_attempts=int(max_attempts) if max_attempts else None,
            gcs_endpoint_url=gcs_endpoint,
            gcs_token=_env("GOOGLE_APPLICATION_CREDENTIALS"),
            gcs_project=_env("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"),
        )


@dataclass(frozen=True, slots=True)
class ParsedSource:
    """A source split into its parts.

    Attributes:
        source: the string as the user gave it.
        protocol: ``"file"``, ``"s3"`` or ``"gs"``.
        root: the path fsspec understands: an absolute local path, or ``bucket/prefix``. For a glob, the
            part before the first component that holds a wildcard (the folder the glob searches).
        pattern: the full glob in fsspec form (``bucket/prefix/**/*.jpg``), or ``None`` if no wildcard.
    """

    source: str
    protocol: Protocol
    root: str
    pattern: str | None = None


# ----------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------


def _bad_uri(uri: str, why: str) -> BadURI:
    return BadURI(
        f"cannot understand {uri!r}: {why}",
        hint="use a local path or one of " + ", ".join(s for s in SUPPORTED_SCHEMES if "://" in s),
    )


def _split_uri(uri: str) -> tuple[Protocol, str]:
    """Split a URI or path into (protocol, fsspec path) without looking at wildcards.

    Local paths are made absolute (``~`` expanded); object-store paths become ``bucket/key``.
    Raises :class:`BadURI` for an empty string, an unknown scheme or a malformed URI.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise _bad_uri(str(uri), "empty source")
    if "\x00" in uri:
        raise _bad_uri(uri, "contains a NUL character")
    match = _SCHEME_RE.match(uri)
    if match is None:
        return "file", _absolute_local(uri)
    scheme, rest = match.group(1).lower(), match.group(2)
    protocol = _SCHEME_TO_PROTOCOL.get(scheme)
    if protocol is None:
        raise _bad_uri(uri, f"unsupported scheme {scheme + '://'!r}")
    if protocol == "file":
        return "file", _local_from_file_uri(uri, rest)
    return protocol, _bucket_path(uri, rest)


def _absolute_local(path: str) -> str:
    """An absolute POSIX path, ``~`` expanded, ``..`` collapsed, symlinks left alone."""
    return Path(os.path.abspath(os.path.expanduser(path))).as_posix()


def _local_from_file_uri(uri: str, rest: str) -> str:
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest.startswith("/"):
        raise _bad_uri(uri, "a file:// URI needs an absolute path, as in file:///home/me/photos")
    return _absolute_local(rest)


def _bucket_path(uri: str, rest: str) -> str:
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise _bad_uri(uri, "no bucket name")
    if not _BUCKET_RE.match(bucket):
        raise _bad_uri(uri, f"{bucket!r} is not a valid bucket name")
    key = key.strip("/")
    return f"{bucket}/{key}" if key else bucket


def _canonical_uri(protocol: Protocol, path: str) -> str:
    if protocol == "file":
        return path
    return f"{protocol}://{path.lstrip('/')}"


def has_glob(part: str) -> bool:
    """Whether ``part`` holds a wildcard (``*``, ``?``, ``[``)."""
    return any(char in part for char in _GLOB_CHARS)


def parse_source(source: str) -> ParsedSource:
    """Parse a source (path, glob or URI) into protocol, root and glob pattern.

    >>> p = parse_source("s3://bkt/photos/**/*.jpg")
    >>> p.protocol, p.root, p.pattern
    ('s3', 'bkt/photos', 'bkt/photos/**/*.jpg')

    Raises :class:`~lookalike.errors.BadURI` for an empty, unknown-scheme or malformed source.
    """
    protocol, path = _split_uri(source)
    parts = path.split("/")
    first_glob = next((i for i, part in enumerate(parts) if has_glob(part)), None)
    if first_glob is None:
        return ParsedSource(source, protocol, path)
    root = "/".join(parts[:first_glob]) or "/"
    return ParsedSource(source, protocol, root, path)


# ----------------------------------------------------------------------------------------------------
# Filesystems
# ----------------------------------------------------------------------------------------------------


def _filesystem(protocol: Protocol, options: StorageOptions) -> Any:
    """The fsspec filesystem for ``protocol`` and ``options``, built once per process and reused."""
    return _cached_filesystem(protocol, options, os.getpid())


@functools.lru_cache(maxsize=32)
def _cached_filesystem(protocol: Protocol, options: StorageOptions, pid: int) -> Any:
    # ``pid`` is part of the key because s3fs/gcsfs objects own an event loop thread that does not survive
    # a fork: a worker process must build its own.
    del pid
    if protocol == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()
    if protocol == "s3":
        return _make_s3(options)
    return _make_gcs(options)


def _make_s3(options: StorageOptions) -> Any:
    try:
        import s3fs
    except ImportError as exc:  # pragma: no cover - s3fs is a declared dependency
        raise StorageError("s3:// needs the s3fs package", hint="pip install s3fs") from exc
    client_kwargs: dict[str, Any] = {}
    if options.s3_endpoint_url:
        client_kwargs["endpoint_url"] = options.s3_endpoint_url
    if options.s3_region:
        client_kwargs["region_name"] = options.s3_region
    config_kwargs: dict[str, Any] = {}
    if options.s3_max_attempts is not None:
        config_kwargs["retries"] = {"max_attempts": options.s3_max_attempts}
    return s3fs.S3FileSystem(
        use_listings_cache=False,  # listings must be fresh: the indexer diffs them against stored rows
        anon=options.s3_anon,
        key=options.s3_key,
        secret=options.s3_secret,
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
    )


def _make_gcs(options: StorageOptions) -> Any:
    if options.gcs_endpoint_url:
        # gcsfs's experimental "extended" filesystem calls APIs that emulators lack; it is chosen when gcsfs
        # is first imported, so turn it off before importing, and use the core class in any case.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        import gcsfs.core
    except ImportError as exc:  # pragma: no cover - gcsfs is a declared dependency
        raise StorageError("gs:// needs the gcsfs package", hint="pip install gcsfs") from exc
    kwargs: dict[str, Any] = {"use_listings_cache": False}  # fresh listings, as for S3
    if options.gcs_project:
        kwargs["project"] = options.gcs_project
    if options.gcs_endpoint_url:
        kwargs["endpoint_url"] = options.gcs_endpoint_url
        kwargs["token"] = options.gcs_token or "anon"
        return gcsfs.core.GCSFileSystem(**kwargs)
    if options.gcs_token:
        kwargs["token"] = options.gcs_token
    import gcsfs as gcsfs_pkg

    return gcsfs_pkg.GCSFileSystem(**kwargs)


# ----------------------------------------------------------------------------------------------------
# Error translation
# ----------------------------------------------------------------------------------------------------


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status code carried by a gcsfs/aiohttp/botocore error, if any."""
    for attr in ("code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


_NOT_FOUND = {
    "file": "no such file or folder",
    "s3": "no such object, prefix or bucket",
    "gs": "no such object, prefix or bucket",
}
_PERMISSION_HINT = {
    "file": "check the file's permissions",
    "s3": "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or StorageOptions) and the bucket policy",
    "gs": "check GOOGLE_APPLICATION_CREDENTIALS (or StorageOptions.gcs_token) and the bucket's IAM roles",
}


def _protocol_of(uri: str) -> Protocol:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    return _SCHEME_TO_PROTOCOL.get(scheme, "file")


def _translate(exc: BaseException, uri: str, action: str) -> LookalikeError:
    """Turn any exception raised by fsspec/s3fs/gcsfs/botocore into our error hierarchy."""
    if isinstance(exc, LookalikeError):
        return exc
    protocol = _protocol_of(uri)
    status = _http_status(exc)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, FileNotFoundError) or status == 404:
        return ObjectNotFound(f"cannot {action} {uri}: {_NOT_FOUND[protocol]}")
    if isinstance(exc, IsADirectoryError):
        return StorageError(f"cannot {action} {uri}: it is a folder, not a file")
    if isinstance(exc, PermissionError) or status in (401, 403) or "Forbidden" in str(exc):
        return StorageError(
            f"cannot {action} {uri}: permission denied ({detail})",
            hint=_PERMISSION_HINT[protocol],
            code="permission_denied",
        )
    return StorageError(
        f"cannot {action} {uri}: {detail}",
        hint="check the network, the endpoint URL and the credentials",
    )


@contextlib.contextmanager
def _storage_errors(uri: str, action: str) -> Iterator[None]:
    """Re-raise anything that goes wrong inside the block as a :class:`StorageError` naming ``uri``."""
    try:
        yield
    except LookalikeError:
        raise
    except Exception as exc:  # storage libraries raise many unrelated types; map them all
        raise _translate(exc, uri, action) from exc


# ----------------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------------


def guess_content_type(path: str) -> str:
    """MIME type from a file name's extension; ``application/octet-stream`` when unknown."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _EXTRA_MIME_TYPES:
        return _EXTRA_MIME_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or _GENERIC_TYPE


def _content_type(given: Any, path: str) -> str:
    """The store's content type, unless it is missing or the generic ``application/octet-stream``."""
    if isinstance(given, str) and given and given != _GENERIC_TYPE:
        return given
    return guess_content_type(path)


def _to_utc(value: Any) -> datetime:
    """A timezone-aware UTC datetime from a datetime (naive means UTC), an ISO string or epoch seconds."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and value:
        return _to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromtimestamp(0, tz=UTC)


def _md5_from_base64(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _local_info(path: str) -> ObjectInfo:
    st = os.stat(path)
    return ObjectInfo(
        uri=path,
        size=st.st_size,
        content_type=guess_content_type(path),
        updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
        generation=str(st.st_mtime_ns),
    )


def _s3_info(path: str, raw: dict[str, Any]) -> ObjectInfo:
    etag = str(raw.get("ETag") or raw.get("etag") or "").strip('"') or None
    md5 = etag if etag and re.fullmatch(r"[0-9a-fA-F]{32}", etag) else None
    version = raw.get("VersionId")
    return ObjectInfo(
        uri=_canonical_uri("s3", path),
        size=int(raw.get("size", raw.get("Size", 0)) or 0),
        content_type=_content_type(raw.get("ContentType"), path),
        updated=_to_utc(raw.get("LastModified")),
        etag=etag,
        md5=md5.lower() if md5 else None,
        generation=str(version) if version and version != "null" else None,
    )


def _gcs_info(path: str, raw: dict[str, Any]) -> ObjectInfo:
    generation = raw.get("generation")
    return ObjectInfo(
        uri=_canonical_uri("gs", path),
        size=int(raw.get("size", 0) or 0),
        content_type=_content_type(raw.get("contentType"), path),
        updated=_to_utc(raw.get("updated") or raw.get("mtime")),
        etag=raw.get("etag") or None,
        md5=_md5_from_base64(raw.get("md5Hash")),
        generation=str(generation) if generation else None,
    )


def _object_info(protocol: Protocol, path: str, raw: dict[str, Any]) -> ObjectInfo:
    if protocol == "file":
        return _local_info(path)
    if protocol == "s3":
        return _s3_info(path, raw)
    return _gcs_info(path, raw)


# ----------------------------------------------------------------------------------------------------
# Listing
# ----------------------------------------------------------------------------------------------------


def is_image_name(path: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTENSIONS`."""
    return os.path.splitext(path)[1].lower().lstrip(".") in IMAGE_EXTENSIONS


def would_list(source: str, uri: str) -> bool:
    """Whether listing the folder or prefix ``source`` (images only, no wildcards) yields the object ``uri``.

    Purely textual and conservative: ``source`` must be written like the URIs it yields (an absolute path, or
    ``s3://`` / ``gs://``); anything else answers False.
    """
    if has_glob(source):
        return False
    root = source.rstrip("/")
    return uri.startswith(root + "/") and is_image_name(uri) and not _is_hidden(uri, root)


def _is_hidden(path: str, root: str) -> bool:
    """Whether any component of ``path`` below ``root`` starts with a dot."""
    root = root.rstrip("/")
    relative = path[len(root) :] if root and path.startswith(root + "/") else path
    return any(part.startswith(".") for part in relative.split("/") if part)


def _is_file(raw: dict[str, Any]) -> bool:
    kind = raw.get("type")
    if kind is None:
        return stat.S_ISREG(int(raw.get("mode", 0)))
    return kind == "file"


def _candidates(parsed: ParsedSource, fs: Any) -> tuple[bool, dict[str, dict[str, Any]]]:
    """The raw entries a source names: (named_a_single_file, {fsspec path: fsspec info})."""
    if parsed.pattern is None:
        info = fs.info(parsed.root)
        if _is_file(info):
            return True, {info.get("name", parsed.root): info}
        return False, fs.find(parsed.root, detail=True, withdirs=False)
    fs.info(parsed.root)  # a glob under a missing folder or bucket is an error, not an empty list
    return False, fs.glob(parsed.pattern, detail=True)


def _list_one(parsed: ParsedSource, options: StorageOptions, images_only: bool) -> list[ObjectInfo]:
    """Every object a source names, as sorted :class:`ObjectInfo` values."""
    fs = _filesystem(parsed.protocol, options)
    with _storage_errors(_describe(parsed), "list"):
        single, entries = _candidates(parsed, fs)
        infos: list[ObjectInfo] = []
        for path, raw in entries.items():
            path = _normalise_path(parsed.protocol, path)
            if not single and not _keep(path, raw, parsed.root, images_only):
                continue
            infos.append(_object_info(parsed.protocol, path, raw))
    infos.sort(key=lambda info: info.uri)
    return infos


def _describe(parsed: ParsedSource) -> str:
    """The source as the user wrote it, plus the absolute path when that differs (for error messages)."""
    if parsed.protocol == "file":
        resolved = parsed.pattern or parsed.root
        if resolved != parsed.source:
            return f"{parsed.source} ({resolved})"
    return parsed.source


def _normalise_path(protocol: Protocol, path: str) -> str:
    return Path(path).as_posix() if protocol == "file" else path.lstrip("/")


def _keep(path: str, raw: dict[str, Any], root: str, images_only: bool) -> bool:
    if not _is_file(raw) or _is_hidden(path, root):
        return False
    return is_image_name(path) or not images_only


def list_objects(
    sources: Sequence[str] | str,
    *,
    options: StorageOptions | None = None,
    images_only: bool = True,
) -> Iterator[tuple[str, ObjectInfo]]:
    """List the objects that ``sources`` name, as ``(source, info)`` pairs.

    Folders (and bucket prefixes) are listed recursively; globs are expanded. For both, only files with an
    image extension (:data:`IMAGE_EXTENSIONS`) are kept when ``images_only``, and hidden files or folders
    (a name starting with ``.`` below the listed folder) are skipped. A source that names one file is always
    yielded. Objects come sorted by URI within each source, sources in the given order; an object named by
    several sources is yielded once, with the first source naming it.

    Raises :class:`~lookalike.errors.BadURI` for a malformed source,
    :class:`~lookalike.errors.ObjectNotFound` if a source (or a glob's folder) does not exist and
    :class:`~lookalike.errors.StorageError` for permission or network failures. Each source is parsed
    before anything is listed, so a typo fails fast.
    """
    if isinstance(sources, str):
        sources = [sources]
    options = options or StorageOptions.from_env()
    parsed_sources = [parse_source(source) for source in sources]
    seen: set[str] = set()
    for parsed in parsed_sources:
        for info in _list_one(parsed, options, images_only):
            if info.uri not in seen:
                seen.add(info.uri)
                yield parsed.source, info


def stat_object(uri: str, *, options: StorageOptions | None = None) -> ObjectInfo:
    """The :class:`ObjectInfo` of one object (no wildcards). Raises ``ObjectNotFound`` if it is missing."""
    protocol, path = _split_uri(uri)
    fs = _filesystem(protocol, options or StorageOptions.from_env())
    with _storage_errors(uri, "read"):
        raw = fs.info(path)
        if not _is_file(raw):
            raise IsADirectoryError(path)
        return _object_info(protocol, _normalise_path(protocol, raw.get("name", path)), raw)


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------


def read_object(uri: str, *, options: StorageOptions | None = None, max_bytes: int | None = None) -> bytes:
    """Read one object's bytes.

    ``uri`` is taken literally (wildcard characters are part of the name). With ``max_bytes``, at most
    ``max_bytes + 1`` bytes are fetched and an object larger than ``max_bytes`` raises a
    :class:`~lookalike.errors.StorageError` with code ``object_too_large`` (a guard against reading a huge
    file by mistake).

    Raises :class:`~lookalike.errors.BadURI`, :class:`~lookalike.errors.ObjectNotFound` or
    :class:`~lookalike.errors.StorageError`, each naming ``uri``.
    """
    protocol, path = _split_uri(uri)
    fs = _filesystem(protocol, options or StorageOptions.from_env())
    with _storage_errors(uri, "read"):
        if max_bytes is None:
            data: bytes = fs.cat_file(path)
        else:
            data = fs.cat_file(path, start=0, end=max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise StorageError(
            f"cannot read {uri}: larger than the limit of {max_bytes} bytes",
            hint="raise max_bytes if this file is really wanted",
            code="object_too_large",
        )
    return data


def exists(uri: str, *, options: StorageOptions | None = None) -> bool:
    """Whether ``uri`` names an existing file, object, folder or prefix.

    Returns ``False`` only for "not found"; other failures (permission, network) raise
    :class:`~lookalike.errors.StorageError`, and a malformed URI raises :class:`~lookalike.errors.BadURI`.
    """
    protocol, path = _split_uri(uri)
    fs = _filesystem(protocol, options or StorageOptions.from_env())
    try:
        with _storage_errors(uri, "check"):
            fs.info(path)
    except ObjectNotFound:
        return False
    return True


def _read_or_error(uri: str, options: StorageOptions, max_bytes: int | None) -> bytes | LookalikeError:
    try:
        return read_object(uri, options=options, max_bytes=max_bytes)
    except LookalikeError as err:
        return err


def read_many(
    uris: Iterable[str],
    *,
    options: StorageOptions | None = None,
    workers: int = 8,
    max_bytes: int | None = None,
) -> Iterator[tuple[str, bytes | LookalikeError]]:
    """Read many objects concurrently, yielding ``(uri, bytes or error)`` in input order.

    A failing URI does not stop the others: its :class:`~lookalike.errors.LookalikeError` is yielded in
    place of the bytes, so the caller can record a status per row. At most ``2 * workers`` reads are in
    flight (the input may be a long generator); closing the iterator early cancels the reads not yet
    started. ``workers=1`` reads sequentially in this thread.
    """
    options = options or StorageOptions.from_env()
    if workers <= 1:
        for uri in uris:
            yield uri, _read_or_error(uri, options, max_bytes)
        return
    window = 2 * workers
    pending: deque[tuple[str, Future[bytes | LookalikeError]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookalike-read") as pool:
        try:
            for uri in uris:
                pending.append((uri, pool.submit(_read_or_error, uri, options, max_bytes)))
                if len(pending) >= window:
                    done_uri, future = pending.popleft()
                    yield done_uri, future.result()
            while pending:
                done_uri, future = pending.popleft()
                yield done_uri, future.result()
        finally:  # the caller stopped early: do not start the reads nobody will look at
            for _, future in pending:
                future.cancel()


# ----------------------------------------------------------------------------------------------------
# Copying whole files (exports and imports)
# ----------------------------------------------------------------------------------------------------


def upload_file(local_path: str | Path, uri: str, *, options: StorageOptions | None = None) -> None:
    """Copy the local file ``local_path`` to ``uri`` (a path, ``file://``, ``s3://`` or ``gs://`` URI), streamed.

    The folders above a local destination are created. Raises :class:`~lookalike.errors.BadURI` or
    :class:`~lookalike.errors.StorageError` naming ``uri``.
    """
    protocol, path = _split_uri(uri)
    fs = _filesystem(protocol, options or StorageOptions.from_env())
    with _storage_errors(uri, "write"):
        if protocol == "file":
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fs.put_file(os.fspath(local_path), path)


def download_file(uri: str, local_path: str | Path, *, options: StorageOptions | None = None) -> None:
    """Copy the object ``uri`` to the local file ``local_path``, streamed (never whole in memory).

    Raises :class:`~lookalike.errors.ObjectNotFound` or :class:`~lookalike.errors.StorageError` naming ``uri``.
    """
    protocol, path = _split_uri(uri)
    fs = _filesystem(protocol, options or StorageOptions.from_env())
    with _storage_errors(uri, "read"):
        fs.get_file(path, os.fspath(local_path))
