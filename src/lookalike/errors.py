"""One error hierarchy for the whole package.

Every error carries a machine ``code`` (stable, for scripts and the REST API), a ``message`` that names the
input it is about, and an optional ``hint`` saying what to do. Front ends print ``str(err)``; the CLI exits
with ``err.exit_code``.
"""

from __future__ import annotations

from typing import Any


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


class SourceNotAllowed(StorageError):
    """A source outside the roots a server may index (``lookalike serve --allow-source``)."""

    code = "forbidden"
    http_status = 403


class ImageError(LookalikeError):
    """Bytes that cannot be decoded as an image, or an image we refuse (too many pixels)."""

    code = "bad_image"


class ImageTooLarge(ImageError):
    """An image whose pixel count exceeds the configured limit (decompression-bomb guard)."""

    code = "image_too_large"
    http_status = 413


class NoFaceError(LookalikeError):
    """An image that was expected to contain a face has none."""

    code = "no_face"


class ModelError(LookalikeError):
    """A face model cannot be found, loaded or run."""

    code = "model_error"


class ModelUnavailable(ModelError):
    """A model's backend (a remote service, say) could not be reached at all: every photo of the batch would
    fail alike, so they are marked failed together instead of being retried one by one."""

    code = "model_unavailable"


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


class PersonNotFound(DatasetError):
    """A person id (or a face id given to a people command) that the table does not hold."""

    code = "person_not_found"
    http_status = 404


class PeopleConflict(LookalikeError):
    """A people edit that would break a rule: two faces of one photo in one person, merging a person with itself."""

    code = "people_conflict"
    http_status = 409


class ExecutorError(LookalikeError):
    """An executor that cannot run: Ray missing, a cluster that cannot be reached, a chunk that kept failing."""

    code = "executor_error"


class SearchError(LookalikeError):
    """A search that cannot run (empty table, dimension mismatch...)."""

    code = "search_error"


class SqlError(LookalikeError):
    """A SQL statement that cannot be parsed or run (see :mod:`lookalike.sql`).

    Besides the message and hint it says where: ``line`` and ``column`` (1-based, in the whole script), the
    ``statement`` text, and for a script, which statement failed (``statement_index`` of
    ``statement_count``, 1-based). ``cause`` is the code of the error that made the statement fail, when it
    came from elsewhere in Lookalike (``unknown_model``, ``not_found``...).
    """

    code = "sql_error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        line: int | None = None,
        column: int | None = None,
        statement: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, code=code)
        self.line = line
        self.column = column
        self.statement = statement
        self.cause = cause
        self.statement_index: int | None = None
        self.statement_count: int | None = None
        self.committed: int = 0

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        text = where + self.message
        if self.statement_count is not None and self.statement_count > 1 and self.statement_index is not None:
            n = self.statement_index
            done = (
                "nothing was committed"
                if self.committed == 0
                else "statement 1 was committed"
                if self.committed == 1
                else f"statements 1..{self.committed} were committed"
            )
            text += f" [statement {n} of {self.statement_count} failed; {done}]"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(super().to_dict())
        out.update(
            line=self.line,
            column=self.column,
            statement=self.statement,
            statement_index=self.statement_index,
            statement_count=self.statement_count,
            committed=self.committed,
            cause=self.cause,
        )
        return out


class SqlParseError(SqlError):
    """SQL text that is not valid BigQuery SQL (or one of the statement forms Lookalike adds)."""

    code = "sql_parse_error"


class SqlNotSupported(SqlError):
    """Valid BigQuery SQL that Lookalike does not run (model training, Vertex AI endpoints...)."""

    code = "sql_not_supported"
