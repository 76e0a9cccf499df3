"""The ``lookalike`` command line.

Exit codes: 0 success; 1 an error (one clear line on stderr; the traceback with ``--debug``); 2 bad usage;
3 partly done (``index``: a source could not be listed, or with ``--strict`` some photos failed; ``search``:
some queries failed).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from lookalike import config
from lookalike.api import Dataset
from lookalike.cli_common import (
    EXIT_ERROR,
    EXIT_PARTIAL,
    _emit_json,
    _short,
    dataset_option,
    handle_errors,
    json_option,
    table_option,
    threshold_option,
    whole_photo_option,
)
from lookalike.cli_people import cluster_summary
from lookalike.cli_people import people as people_group
from lookalike.faces.registry import DEFAULT_MODEL, is_installed, list_cards
from lookalike.faces.runtime import model_device, onnx_device
from lookalike.ingest import DEFAULT_CHUNK
from lookalike.people import ClusterReport
from lookalike.search.calibration import Calibration
from lookalike.search.distances import DISTANCES
from lookalike.textable import render


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
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where faces are embedded: local processes, or a Ray cluster (pip install 'lookalike[ray]').",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="HOST:PORT",
    help="The Ray cluster for --executor ray [default: $RAY_ADDRESS, else a local Ray runtime].",
)
@click.option("--strict", is_flag=True, help="Exit 3 when any photo failed.")
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK,
    show_default=True,
    type=click.IntRange(min=1),
    help="Photos per unit of work (finished ones are committed at most once a second).",
)
@whole_photo_option
@click.option(
    "--cluster/--no-cluster",
    "cluster",
    default=True,
    show_default=True,
    help="Then group new faces into persons (lookalike people); search decides 'same person' by them.",
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
    executor: str,
    ray_address: str | None,
    strict: bool,
    chunk_size: int,
    whole_photo_face: bool,
    cluster: bool,
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
            executor=executor,
            ray_address=ray_address,
            chunk_size=chunk_size,
            whole_photo_face=whole_photo_face,
            cluster=cluster,
            on_plan=on_plan,
            on_progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.close()
    people = report.people
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
        if people is not None and "error" in people:
            click.echo(f"people: not grouped: {people['error']}", err=True)
        elif people is not None:
            click.echo(cluster_summary(ClusterReport(**people)))  # type: ignore[arg-type]
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
@click.option(
    "--fraction-lists",
    "fraction_lists",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Share of the vector index's lists to search (BigQuery's fraction_lists_to_search; 1.0 is exact).",
)
@click.option("--exact", is_flag=True, help="Search every face exactly, even when the table has a vector index.")
@whole_photo_option
@click.option(
    "--people", is_flag=True, help="The nearest persons instead of faces: one row each, with their nearest face."
)
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
    fraction_lists: float | None,
    exact: bool,
    whole_photo_face: bool,
    people: bool,
    as_json: bool,
) -> None:
    """The indexed faces most similar to every face in IMAGES (with --people: the nearest persons).

    An IMAGE is a path or URI, or face:ID to search with an already indexed face. When the table has a vector
    index (lookalike vector-index create) the search uses it; a line on stderr says how.
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
        fraction_lists=fraction_lists,
        exact=exact,
        whole_photo_face=whole_photo_face,
        people=people,
    )
    if result.index_usage is not None and result.index_usage.index_name is not None:
        click.echo(result.index_usage.summary(), err=True)
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
                "" if h.person_id is None else (h.person_name or f"#{h.person_id}"),
            )
            for h in result.hits
        ]
        headers = ["query", "qface", "rank", "uri", "face", "distance", "same_person", "person"]
        if not any(h.person_id is not None for h in result.hits):  # no people grouped: no empty column
            click.echo(render(headers[:-1], [r[:-1] for r in rows]))
        else:
            click.echo(render(headers, rows))
        if result.calibration is not None:
            by_person = sum(1 for h in result.hits if h.same_person_basis == "person")
            persons = f"; {by_person} of {len(result.hits)} rows decided by the table's persons" if by_person else ""
            click.echo(
                f"same_person: {result.calibration.summary()}{persons} (uncertain: distance where this population's "
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


@main.group(invoke_without_command=True)
@json_option
@click.pass_context
@handle_errors
def models(ctx: click.Context, as_json: bool) -> None:
    """List the face models, their dimensions, thresholds, licences and whether they are installed.

    \b
      lookalike models                                   # the list
      lookalike models add NAME --onnx PATH_OR_URI ...   # your own ONNX identity network
      lookalike models remove NAME
    """
    if ctx.invoked_subcommand is not None:
        return
    cards = list_cards()
    devices = [model_device(c) for c in cards]
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
                    "calibrated": c.calibrated,
                    "runtime": c.runtime,
                    "device": device[0],
                    "device_note": device[1],
                }
                for c, device in zip(cards, devices, strict=True)
            ]
        )
        return
    rows = [
        (
            c.name + (" (default)" if c.name == DEFAULT_MODEL else ""),
            c.dim,
            f"{c.threshold:.3f}" if c.calibrated else "not calibrated",
            f"{c.safe_threshold:.3f}" if c.safe_threshold is not None else "",
            f"{c.lfw_accuracy * 100:.2f} %" if c.lfw_accuracy else "",
            c.licence,
            device[0],
            "yes" if is_installed(c.name) else f"no: {c.install_hint}",
        )
        for c, device in zip(cards, devices, strict=True)
    ]
    click.echo(render(["model", "dim", "threshold", "safe", "LFW", "licence", "device", "installed"], rows))
    device, note = onnx_device()
    where = {"cuda": "run on the GPU (CUDA)", "cpu": "run on the CPU", "none": "cannot run"}.get(device, device)
    click.echo(f"device: onnxruntime models {where}" + (f" ({note})" if note else "") + ".")
    click.echo(
        "threshold: LFW FAR 0.1 %; safe: where the most look-alike population measured stays near 0.3 % false "
        "matches. Each table calibrates its own decision from its faces: see lookalike tables."
    )


@models.command("add")
@click.argument("name")
@click.option(
    "--onnx",
    "onnx",
    default=None,
    metavar="PATH_OR_URI",
    help="The ONNX identity network, or an insightface-style pack folder (SCRFD det_*.onnx + identity .onnx).",
)
@click.option(
    "--endpoint",
    default=None,
    metavar="URL",
    help="Instead of --onnx: an HTTP embedding service (contract: docs/remote-models.md).",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
    help="With --endpoint: seconds per call.",
)
@click.option(
    "--retries",
    default=3,
    show_default=True,
    type=click.IntRange(0, 10),
    help="With --endpoint: retries of a failed call, with back-off.",
)
@click.option(
    "--input-size",
    default=None,
    type=click.IntRange(16, 1024),
    help="Crop side [default: the network's own, else 112].",
)
@click.option("--mean", default=None, type=float, help="Subtracted from every pixel, 0-255 [default: 127.5].")
@click.option("--std", default=None, type=float, help="Then divided by this [default: 128; 127.5 for a pack].")
@click.option(
    "--color-order", type=click.Choice(["RGB", "BGR"], case_sensitive=False), default="RGB", show_default=True
)
@click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False), default="NCHW", show_default=True)
@click.option("--replace", is_flag=True, help="Replace a model of that name.")
@handle_errors
def models_add(
    name: str,
    onnx: str | None,
    endpoint: str | None,
    timeout: float,
    retries: int,
    input_size: int | None,
    mean: float | None,
    std: float | None,
    color_order: str,
    layout: str,
    replace: bool,
) -> None:
    """Add your own ONNX identity network as face model NAME (faces are found and aligned by Lookalike, or by
    the pack's SCRFD detector when --onnx is an insightface-style pack folder), or an HTTP embedding service
    (--endpoint)."""
    from lookalike.faces.user_models import add_model, add_remote_model

    if (onnx is None) == (endpoint is None):
        raise click.UsageError("give either --onnx PATH_OR_URI or --endpoint URL")
    if endpoint is not None:
        remote = add_remote_model(
            name, endpoint, input_size=input_size or 112, timeout=timeout, retries=retries, replace=replace
        )
        click.echo(
            f"added remote model {remote.name}: {remote.dim}-d from {remote.endpoint}, {remote.input_size}x"
            f"{remote.input_size} RGB crops; not calibrated (same_person stays null until it is)"
        )
        return
    assert onnx is not None

    spec = add_model(
        name,
        onnx,
        input_size=input_size,
        mean=mean,
        std=std,
        color_order=color_order,
        layout=layout,
        replace=replace,
    )
    det = "" if spec.detector_sha256 is None else f", the pack's detector {spec.detector_source}"
    click.echo(
        f"added model {spec.name}: {spec.dim}-d, {spec.input_size}x{spec.input_size} {spec.color_order} "
        f"{spec.layout}, sha256 {spec.sha256[:12]}{det}; not calibrated (same_person stays null until it is)"
    )


@models.command("calibrate")
@click.argument("name")
@click.option("--pairs", "pairs", required=True, metavar="FILE", help="LFW-style pairs (pairs.txt format).")
@click.option("--images", required=True, metavar="DIR", help="Folder holding name/name_NNNN.jpg.")
@handle_errors
def models_calibrate(name: str, pairs: str, images: str) -> None:
    """Calibrate a model you added: its same-person threshold at 0.1 % false matches on the PAIRS.

    Tables indexed with it take the new decision on their next lookalike index run.
    """
    from lookalike.faces.user_models import calibrate_model

    r = calibrate_model(name, pairs, images)
    click.echo(
        f"model {name}: threshold {r.threshold:.4f} (FAR 0.1 %, TAR {100 * r.tar:.2f} %) from {r.pairs} pairs "
        f"({r.skipped} skipped: no face); accuracy-optimal {r.best_threshold:.4f} ({100 * r.best_accuracy:.2f} %)"
    )


@models.command("remove")
@click.argument("name")
@handle_errors
def models_remove(name: str) -> None:
    """Remove a model you added (tables indexed with it keep their rows)."""
    from lookalike.faces.user_models import remove_model

    remove_model(name)
    click.echo(f"removed model {name}")


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
    rows = [
        [s[k] for k in keys] + [Calibration(**s["calibration"]).summary(), _index_summary(s.get("vector_index"))]  # type: ignore[arg-type]
        for s in stats
    ]
    click.echo(render([*keys, "same_person", "vector_index"], rows))


def _index_summary(d: Any) -> str:
    if not d:
        return ""
    text = f"{d['index_name']} {d['index_type']} {d['coverage_percentage']:g}%"
    if d.get("too_small"):
        text += " (table too small: exact)"
    if d.get("rebuild_suggested"):
        text += f" (drift {d['drift']:.2f}: rebuild)"
    if d.get("error"):
        text += " BROKEN: exact search until rebuilt"
    return text


@main.group("vector-index")
def vector_index() -> None:
    """Vector indexes: approximate search over millions of faces (BigQuery's CREATE VECTOR INDEX).

    \b
      lookalike vector-index create --type TREE_AH   # build one on the default table
      lookalike vector-index list                    # coverage, size, drift
      lookalike vector-index rebuild                 # train again after much growth
      lookalike vector-index drop
    Searches use a table's index automatically; faces indexed after a build are searched exactly until
    the next lookalike index run adds them.
    """


def _show_index(d: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(d)
        return
    keys = ["table_name", "index_name", "index_type", "distance_type", "lists", "coverage_percentage"]
    keys += ["unindexed_row_count", "total_storage_bytes", "drift"]
    click.echo(render(keys, [[d[k] for k in keys]]))
    if d.get("too_small"):
        click.echo("the table is too small to need an index: it is searched exactly until it grows")


@vector_index.command("create")
@dataset_option
@table_option
@click.option(
    "--type",
    "index_type",
    type=click.Choice(["TREE_AH", "IVF"], case_sensitive=False),
    default="TREE_AH",
    show_default=True,
    help="TREE_AH: compressed codes + exact re-rank (keeps true matches); IVF: exact vectors in lists.",
)
@click.option(
    "--distance",
    type=click.Choice(["COSINE", "EUCLIDEAN", "DOT_PRODUCT"], case_sensitive=False),
    default="COSINE",
    show_default=True,
)
@click.option("--num-lists", type=click.IntRange(1, 5000), default=None, help="IVF lists [default: from the size].")
@click.option(
    "--leaf-size", type=click.IntRange(min=1), default=None, help="TREE_AH: faces per leaf [default: one leaf]."
)
@click.option("--name", default=None, help="Index name [default: TABLE_index].")
@click.option("--replace", is_flag=True, help="Replace the table's existing index.")
@json_option
@handle_errors
def vector_index_create(
    dataset: str | None,
    table: str,
    index_type: str,
    distance: str,
    num_lists: int | None,
    leaf_size: int | None,
    name: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Build a vector index on a face table."""
    d = Dataset(dataset).create_vector_index(
        table,
        index_type=index_type.upper(),
        distance=distance.upper(),
        num_lists=num_lists,
        leaf_node_embedding_count=leaf_size,
        name=name,
        replace=replace,
    )
    _show_index(d, as_json)


@vector_index.command("rebuild")
@dataset_option
@table_option
@click.option("--name", default=None, help="Index name [default: the table's index].")
@json_option
@handle_errors
def vector_index_rebuild(dataset: str | None, table: str, name: str | None, as_json: bool) -> None:
    """Train a table's index again over its faces as they are now."""
    _show_index(Dataset(dataset).rebuild_vector_index(table, name), as_json)


@vector_index.command("drop")
@dataset_option
@table_option
@click.option("--name", default=None, help="Index name [default: the table's index].")
@handle_errors
def vector_index_drop(dataset: str | None, table: str, name: str | None) -> None:
    """Drop a table's index (searches become exact again)."""
    dropped = Dataset(dataset).drop_vector_index(table, name)
    click.echo(f"dropped vector index {dropped} on {table!r}")


@vector_index.command("list")
@dataset_option
@click.option("--table", default=None, help="Only this table's index.")
@json_option
@handle_errors
def vector_index_list(dataset: str | None, table: str | None, as_json: bool) -> None:
    """Every vector index with its coverage, size and drift."""
    found = Dataset(dataset).vector_indexes(table)
    if as_json:
        _emit_json(found)
        return
    if not found:
        click.echo("no vector indexes: lookalike vector-index create --table TABLE")
        return
    keys = ["table_name", "index_name", "index_type", "distance_type", "lists", "coverage_percentage"]
    keys += ["unindexed_row_count", "total_storage_bytes", "drift", "last_refresh_time"]
    click.echo(render(keys, [[d[k] for k in keys] for d in found]))


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
@click.option(
    "--allow-source",
    "allow_sources",
    multiple=True,
    metavar="PATH_OR_PREFIX",
    help="A folder or URI prefix that POST /v1/index may index under (repeatable) [default: the working "
    "directory on loopback, none otherwise].",
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes (same dataset)."
)
@click.option(
    "--max-queue",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Photos being searched or waiting, per process; beyond it requests get 503 with Retry-After.",
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
    allow_sources: tuple[str, ...],
    workers: int,
    max_queue: int,
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
        allow_sources=allow_sources or None,
        workers=workers,
        max_queue=max_queue,
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


main.add_command(people_group)
from lookalike.cli_transfer import export_command, import_command  # noqa: E402

main.add_command(export_command)
main.add_command(import_command)

if __name__ == "__main__":  # pragma: no cover
    main()
