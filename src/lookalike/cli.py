"""The ``lookalike`` command line.

Exit codes: 0 success; 1 an error (one clear line on stderr; the traceback with ``--debug``); 2 bad usage;
3 partly done (``index``: a source could not be listed, or with ``--strict`` some photos failed; ``search``:
some queries failed).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import click

from lookalike import config
from lookalike.api import Dataset
from lookalike.errors import LookalikeError
from lookalike.faces.registry import DEFAULT_MODEL, is_installed, list_cards
from lookalike.ingest import DEFAULT_CHUNK
from lookalike.search.calibration import Calibration
from lookalike.search.distances import DISTANCES
from lookalike.textable import render

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lookalike")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Find the faces most similar to a query photo in a folder or a bucket of photos.

    \b
    Typical use:
      lookalike index photos/            # detect, align and embed every face
      lookalike search query.jpg         # the 5 most similar faces
      lookalike verify a.jpg b.jpg       # same person?
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@click.argument("sources", nargs=-1, required=True)
@dataset_option
@table_option
@click.option("--model", default=None, help=f"Face model (see 'lookalike models') [default: {DEFAULT_MODEL}]")
@click.option(
    "--workers", default=None, type=click.IntRange(min=1), help="Worker processes [default: one per CPU core]."
)
@click.option("--strict", is_flag=True, help="Exit 3 when any photo failed.")
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK,
    show_default=True,
    type=click.IntRange(min=1),
    help="Photos per committed batch.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option
@handle_errors
def index(
    sources: tuple[str, ...],
    dataset: str | None,
    table: str,
    model: str | None,
    workers: int | None,
    strict: bool,
    chunk_size: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Index the photos in SOURCES (folders, files, globs, file://, s3://, gs:// URIs).

    Only new or changed photos are embedded; rows of photos that disappeared from a source are removed. A run
    that is interrupted keeps what it committed; run it again to resume.
    """
    from tqdm import tqdm

    bar: tqdm[Any] | None = None

    def on_plan(total: int) -> None:
        nonlocal bar
        bar = tqdm(
            total=total, unit="photo", desc="indexing", disable=True if quiet or as_json else None, file=sys.stderr
        )

    def on_progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    ds = Dataset(dataset)
    try:
        report = ds.index(
            *sources,
            table=table,
            model=model,
            workers=workers,
            chunk_size=chunk_size,
            on_plan=on_plan,
            on_progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        _emit_json(report.to_dict())
    else:
        click.echo(
            f"table {report.table!r} ({report.model}): {report.added} added, {report.updated} updated, "
            f"{report.removed} removed, {report.unchanged} unchanged, {report.failed} failed; "
            f"{report.faces} faces, {report.no_face} photos without a face, {report.seconds:.1f} s"
        )
        for uri, msg in report.errors[:20]:
            click.echo(f"  failed: {msg}" if uri in msg else f"  failed: {uri}: {msg}", err=True)
        if len(report.errors) > 20:
            click.echo(f"  ... and {len(report.errors) - 20} more failures", err=True)
    for source, msg in report.source_errors:
        click.echo(f"error: cannot list source {source!r}: {msg}", err=True)
    if report.source_errors or (strict and report.failed):
        sys.exit(EXIT_PARTIAL)


@main.command()
@click.argument("images", nargs=-1, required=True)
@dataset_option
@table_option
@click.option("--top-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--distance", type=click.Choice(DISTANCES, case_sensitive=False), default="cosine", show_default=True)
@click.option("--largest", is_flag=True, help="Use only the largest face of each query image.")
@threshold_option
@json_option
@handle_errors
def search(
    images: tuple[str, ...],
    dataset: str | None,
    table: str,
    top_k: int,
    distance: str,
    largest: bool,
    threshold: float | None,
    as_json: bool,
) -> None:
    """The indexed faces most similar to every face in IMAGES.

    An IMAGE is a path or URI, or face:ID to search with an already indexed face.
    """
    ds = Dataset(dataset)
    result = ds.search(
        list(images),
        table=table,
        top_k=top_k,
        distance=distance,
        largest=largest,
        skip_errors=len(images) > 1,
        threshold=threshold,
    )
    for name, msg in result.errors:
        click.echo(f"error: {msg}" if name in msg else f"error: {name}: {msg}", err=True)
    if as_json:
        _emit_json([h.to_dict() for h in result.hits])
    else:
        rows = [
            (
                _short(h.query_uri),
                h.query_face,
                h.rank,
                _short(h.uri),
                h.face,
                h.distance,
                "uncertain" if h.same_person is None else h.same_person,
            )
            for h in result.hits
        ]
        headers = ["query", "qface", "rank", "uri", "face", "distance", "same_person"]
        click.echo(render(headers, rows))
        if result.calibration is not None:
            click.echo(
                f"same_person: {result.calibration.summary()} (uncertain: distance where this population's "
                "different people also fall; --threshold to decide)"
            )
    if result.errors:
        sys.exit(EXIT_PARTIAL if result.hits else EXIT_ERROR)


@main.command()
@click.argument("image_a")
@click.argument("image_b")
@click.option("--model", default=None, help=f"Face model [default: {DEFAULT_MODEL}]")
@dataset_option
@click.option("--table", "table", default=None, help="Decide with this table's calibration (and its model).")
@threshold_option
@json_option
@handle_errors
def verify(
    image_a: str,
    image_b: str,
    model: str | None,
    dataset: str | None,
    table: str | None,
    threshold: float | None,
    as_json: bool,
) -> None:
    """Are the largest faces of IMAGE_A and IMAGE_B the same person?

    Without --table or --threshold the model card decides: the same person up to its population-safe
    threshold, uncertain up to its LFW threshold, different people beyond.
    """
    if dataset is not None and table is None:
        table = config.DEFAULT_TABLE
    res = Dataset(dataset).verify(image_a, image_b, model=model, table=table, threshold=threshold)
    if as_json:
        _emit_json(res.to_dict())
    else:
        verdict = {True: "same person", False: "different people", None: "uncertain"}[res.same_person]
        cal = f"; {res.calibration.summary()}" if res.calibration is not None else ""
        click.echo(f"{verdict}: cosine distance {res.distance:.4f} ({res.model}{cal})")


@main.command()
@json_option
@handle_errors
def models(as_json: bool) -> None:
    """List the face models, their dimensions, thresholds, licences and whether they are installed."""
    cards = list_cards()
    if as_json:
        _emit_json(
            [
                {
                    "name": c.name,
                    "default": c.name == DEFAULT_MODEL,
                    "installed": is_installed(c.name),
                    "dim": c.dim,
                    "input_size": list(c.input_size),
                    "detector": c.detector,
                    "threshold": c.threshold,
                    "threshold_note": c.threshold_note,
                    "safe_threshold": c.safe_threshold,
                    "lfw_accuracy": c.lfw_accuracy,
                    "licence": c.licence,
                    "weights": c.weights,
                    "install_hint": c.install_hint,
                    "description": c.description,
                }
                for c in cards
            ]
        )
        return
    rows = [
        (
            c.name + (" (default)" if c.name == DEFAULT_MODEL else ""),
            c.dim,
            f"{c.threshold:.3f}",
            f"{c.safe_threshold:.3f}" if c.safe_threshold is not None else "",
            f"{c.lfw_accuracy * 100:.2f} %" if c.lfw_accuracy else "",
            c.licence,
            "yes" if is_installed(c.name) else f"no: {c.install_hint}",
        )
        for c in cards
    ]
    click.echo(render(["model", "dim", "threshold", "safe", "LFW", "licence", "installed"], rows))
    click.echo(
        "threshold: LFW FAR 0.1 %; safe: where the most look-alike population measured stays near 0.3 % false "
        "matches. Each table calibrates its own decision from its faces: see lookalike tables."
    )


@main.command()
@dataset_option
@json_option
@handle_errors
def tables(dataset: str | None, as_json: bool) -> None:
    """List the face tables of the dataset with their counts."""
    stats = Dataset(dataset).tables()
    if as_json:
        _emit_json(stats)
        return
    if not stats:
        click.echo("no tables yet: run lookalike index FOLDER")
        return
    keys = ["name", "model", "dim", "objects", "faces", "no_face", "errors", "version"]
    rows = [[s[k] for k in keys] + [Calibration(**s["calibration"]).summary()] for s in stats]  # type: ignore[arg-type]
    click.echo(render([*keys, "same_person"], rows))


@main.command("drop-table")
@click.argument("table")
@dataset_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def drop_table(table: str, dataset: str | None, yes: bool) -> None:
    """Delete a face table and all its rows."""
    if not yes:
        click.confirm(f"Delete table {table!r} and all its rows?", abort=True)
    Dataset(dataset).drop_table(table)
    click.echo(f"dropped table {table!r}")


@main.command()
@dataset_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any other than loopback needs --token.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token", default=None, metavar="T", help="API token required on every /v1 call [default: $LOOKALIKE_TOKEN]."
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages from ORIGIN call the API (repeatable; CORS is off by default).",
)
@click.option(
    "--max-upload-mb", default=20, show_default=True, type=click.IntRange(min=1), help="Largest uploaded photo."
)
@click.option(
    "--max-pixels",
    default=50_000_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest uploaded photo in pixels (width x height).",
)
@handle_errors
def serve(
    dataset: str | None,
    host: str,
    port: int,
    token: str | None,
    cors_origins: tuple[str, ...],
    max_upload_mb: int,
    max_pixels: int,
) -> None:
    """Serve the REST API (/v1, docs at /docs) and the web page (/) for the dataset."""
    from lookalike.server import check_bind, resolve_token
    from lookalike.server import serve as run_server

    token = resolve_token(token)
    check_bind(host, token)
    path = dataset if dataset is not None else config.default_dataset()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {path} on http://{shown}:{port}/ (API docs: /docs)", err=True)
    run_server(
        path,
        host=host,
        port=port,
        token=token,
        cors_origins=cors_origins,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        max_pixels=max_pixels,
    )


@main.command("sql")
@click.argument("statements", required=False)
@click.option(
    "-f", "--file", "file", type=click.File("r"), default=None, help="Read the statements from FILE ('-' for stdin)."
)
@dataset_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: every statement's result; json / csv: the last statement's rows.",
)
@handle_errors
def sql(statements: str | None, file: Any, dataset: str | None, fmt: str) -> None:
    """Run BigQuery-dialect SQL STATEMENTS (or a file of them) on the dataset.

    \b
    The Google Cloud face-search demo runs with only names and paths changed:
      lookalike sql -f examples/demo.sql
      lookalike sql "SELECT uri, size FROM face_search.faces LIMIT 3" --format json
    """
    from lookalike.sql import SqlResult, to_csv, to_json, to_text

    if (statements is None) == (file is None):
        raise click.UsageError("give either STATEMENTS or -f FILE")
    text = statements if statements is not None else file.read()

    def show(result: SqlResult) -> None:
        for notice in result.notices:
            click.echo(f"notice: {notice}", err=True)
        if fmt == "table":
            click.echo(to_text(result))

    results = Dataset(dataset).sql(text, on_result=show)
    if fmt == "json":
        click.echo(to_json(results[-1]))
    elif fmt == "csv":
        click.echo(to_csv(results[-1]), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
