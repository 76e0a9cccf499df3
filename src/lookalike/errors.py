"""One error hierarchy for the whole package.

Every error carries a machine ``code`` (stable, for scripts and the REST API), a ``message`` that names the
input it is about, and an optional ``hint`` saying what to do. Front ends print ``str(err)``; the CLI exits
with ``err.exit_code``.
"""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class of every error Lookalike raises on purpose."""

    code: str = "error"
    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidArgument(LookalikeError):
    """A bad option or argument value (unknown distance, top_k < 1, bad table name...)."""

    code = "invalid_argument"


class StorageError(LookalikeError):
    """Listing or reading an object failed (bad URI, missing object, no permission, network)."""

    code = "storage_error"


class ObjectNotFound(StorageError):
    """A path or URI that does not exist."""

    code = "not_found"
    http_status = 404


class BadURI(StorageError):
    """A URI that cannot be understood (unknown scheme, empty, malformed)."""

    code = "bad_uri"


class ImageError(LookalikeError):
    """Bytes that cannot be decoded as an image, or an image we refuse (too many pixels)."""

    code = "bad_image"


class ImageTooLarge(ImageError):
    """An image whose pixel count exceeds the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class NoFaceError(LookalikeError):
    """An image that was expected to contain a face has none."""

    code = "no_face"


class ModelError(LookalikeError):
    """A face model cannot be found, loaded or run."""

    code = "model_error"


class UnknownModel(ModelError):
    """A model name that is not in the registry."""

    code = "unknown_model"


class ModelNotInstalled(ModelError):
    """A registered model whose optional dependency is missing."""

    code = "model_not_installed"


class DatasetError(LookalikeError):
    """The dataset file cannot be opened, is not a Lookalike/DuckDB file, or is locked."""

    code = "dataset_error"


class DatasetLocked(DatasetError):
    """Another process holds the dataset file open for writing."""

    code = "dataset_locked"
    http_status = 409


class TableNotFound(DatasetError):
    """A named table (collection) that does not exist in the dataset."""

    code = "table_not_found"
    http_status = 404


class SearchError(LookalikeError):
    """A search that cannot run (empty table, dimension mismatch...)."""

    code = "search_error"
