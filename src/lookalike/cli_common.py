"""What every ``lookalike`` command shares: exit codes, error handling, JSON output and common options."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import click

from lookalike import config
from lookalike.errors import LookalikeError

EXIT_ERROR = 1
EXIT_PARTIAL = 3

F = TypeVar("F", bound=Callable[..., Any])


def _emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _short(uri: str) -> str:
    """A local path relative to the current folder when it lies below it (for tables), else as is."""
    if uri.startswith("/"):
        rel = os.path.relpath(uri)
        if not rel.startswith(".."):
            return rel
    return uri


def handle_errors(fn: F) -> F:
    """Turn a :class:`LookalikeError` into one line on stderr and exit code 1 (traceback with --debug)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except LookalikeError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted: committed work is kept; run the same command again to resume", err=True)
            sys.exit(130)

    return cast(F, wrapper)


dataset_option = click.option(
    "--dataset",
    "dataset",
    default=None,
    metavar="PATH",
    help=f"DuckDB dataset file [default: $LOOKALIKE_DATASET or ./{config.DEFAULT_DATASET}]",
)
table_option = click.option(
    "--table", default=config.DEFAULT_TABLE, show_default=True, help="Name of the face table (collection)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(0.0, 2.0),
    default=None,
    help="Cosine distance at or below which faces are the same person (overrides the table's calibration).",
)

whole_photo_option = click.option(
    "--whole-photo-face",
    is_flag=True,
    help="A photo where no face is detected is one face (for photos that are face crops: ID photos, thumbnails).",
)
