"""``lookalike export`` and ``lookalike import``: a face table as Parquet shards plus a manifest, and back.

Thin over :meth:`lookalike.api.Dataset.export_table` and :meth:`lookalike.api.Dataset.import_table`; the layout
and what an import checks are in :mod:`lookalike.dataset.parquet` and ``docs/export.md``.
"""

from __future__ import annotations

import click

from lookalike.api import Dataset
from lookalike.cli_common import _emit_json, dataset_option, handle_errors, json_option
from lookalike.dataset.parquet import DEFAULT_SHARD_ROWS


@click.command("export")
@click.argument("table")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URI",
    help="Folder to write into: a path, file://, s3:// or gs:// (it must not hold an export already).",
)
@click.option(
    "--shard-rows",
    default=DEFAULT_SHARD_ROWS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per Parquet file.",
)
@dataset_option
@json_option
@handle_errors
def export_command(table: str, to: str, shard_rows: int, dataset: str | None, as_json: bool) -> None:
    """Write the rows of face table TABLE as Parquet files plus a manifest.json.

    \b
    The folder loads as it is into BigQuery, Spark and DuckDB (docs/export.md):
      lookalike export faces --to s3://bucket/faces-export
      bq load --source_format=PARQUET --parquet_enable_list_inference ds.faces 'gs://b/faces-export/*.parquet'
      duckdb -c "SELECT uri, embedding FROM 'faces-export/*.parquet' LIMIT 3"
    """
    report = Dataset(dataset).export_table(table, to, shard_rows=shard_rows)
    if as_json:
        _emit_json(report.to_dict())
        return
    click.echo(
        f"exported table {report.table!r} ({report.model}, version {report.table_version}): {report.rows} rows, "
        f"{report.faces} faces of {report.objects} photos, in {len(report.shards)} Parquet files, "
        f"{report.seconds:.1f} s"
    )
    click.echo(f"manifest: {report.manifest}")


@click.command("import")
@click.argument("uri")
@click.option("--table", default=None, help="Face table to import into [default: the exported table's name].")
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Then group the new faces into persons, as lookalike index does.",
)
@dataset_option
@json_option
@handle_errors
def import_command(uri: str, table: str | None, cluster: bool, dataset: str | None, as_json: bool) -> None:
    """Read an export (a folder written by lookalike export) at URI into a face table.

    The table is created when missing; a table of another model is refused. Photos already in the table get the
    exported rows instead of theirs. Nothing is written unless every file matches the manifest (SHA-256).
    """
    report = Dataset(dataset).import_table(uri, table, cluster=cluster)
    if as_json:
        _emit_json(report.to_dict())
        return
    made = "new table" if report.created else "table"
    click.echo(
        f"imported {report.uri} into {made} {report.table!r} ({report.model}, now version {report.version}): "
        f"{report.rows} rows, {report.faces} faces of {report.objects} photos, {report.replaced} photos replaced, "
        f"{report.seconds:.1f} s"
    )
    if report.forgotten:
        click.echo(f"  {report.forgotten} faces left out: forgotten in this dataset (lookalike people forget)")
    if report.calibration is not None:
        click.echo(f"same_person: {report.calibration.summary()}")
