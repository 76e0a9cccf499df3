"""``lookalike people ...``: group faces into persons, and name, merge, move, hide and forget them."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from lookalike.api import Dataset
from lookalike.cli_common import _emit_json, _short, dataset_option, handle_errors, json_option, table_option
from lookalike.people import DEFAULT_MIN_FACES, ClusterReport, Person
from lookalike.textable import render


def cluster_summary(report: ClusterReport) -> str:
    """One line about a grouping run, for ``people cluster`` and ``index`` (which groups after its job)."""
    return (
        f"people in {report.table!r} ({report.mode}, linkage {report.face_threshold:g}-{report.threshold:g}): "
        f"{report.looked_at} faces looked at, {report.joined_existing} joined a person, {report.new_persons} new "
        f"persons, {report.unassigned} left unassigned; {report.persons} persons, {report.seconds:.1f} s"
    )


def _person_rows(persons: list[Person]) -> list[list[object]]:
    return [
        [p.person_id, p.name or "", p.faces, p.photos, p.feature_face_id, "hidden" if p.hidden else ""] for p in persons
    ]


@click.group()
def people() -> None:
    """Faces grouped into persons: cluster, then name, merge, move, hide or forget them.

    \b
      lookalike people cluster            # group faces in no person yet (incremental)
      lookalike people cluster --full     # regroup everything, keeping names and manual moves
      lookalike people list
      lookalike people name 3 "Grandma"
      lookalike people merge 3 7          # 7 joins 3
      lookalike people move 120 121 --new # two faces into a new person
      lookalike people forget 7           # delete their faces and embeddings for good
    """


@people.command("cluster")
@dataset_option
@table_option
@click.option("--full", is_flag=True, help="Regroup every face (names, merges and moved faces are kept).")
@click.option(
    "--min-faces",
    default=DEFAULT_MIN_FACES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Faces a new person needs; smaller groups stay unassigned until more faces arrive.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 2.0, min_open=True, max_open=True),
    default=None,
    help="Average cosine distance up to which large groups of faces merge; two single faces need 0.8 of it "
    "[default: 0.93 x the model's threshold, 0.626 for fr-feature].",
)
@json_option
@handle_errors
def cluster(
    dataset: str | None, table: str, full: bool, min_faces: int, threshold: float | None, as_json: bool
) -> None:
    """Group the table's faces into persons."""
    report = Dataset(dataset).people.cluster(table, full=full, min_faces=min_faces, threshold=threshold)
    if as_json:
        _emit_json(report.to_dict())
    else:
        click.echo(cluster_summary(report))


@people.command("list")
@dataset_option
@table_option
@click.option("--all", "include_hidden", is_flag=True, help="Include hidden persons.")
@json_option
@handle_errors
def list_people(dataset: str | None, table: str, include_hidden: bool, as_json: bool) -> None:
    """List persons: named first, then by number of faces."""
    persons = Dataset(dataset).people.list(table, include_hidden=include_hidden)
    if as_json:
        _emit_json([p.to_dict() for p in persons])
        return
    if not persons:
        click.echo("no persons yet: run lookalike people cluster")
        return
    click.echo(render(["person", "name", "faces", "photos", "feature face", ""], _person_rows(persons)))


@people.command("show")
@click.argument("person", type=int)
@dataset_option
@table_option
@json_option
@handle_errors
def show(person: int, dataset: str | None, table: str, as_json: bool) -> None:
    """A person and all their faces."""
    data = Dataset(dataset).people.show(person, table)
    if as_json:
        _emit_json(data)
        return
    name = data["name"] or "(no name)"
    click.echo(f"person {person}: {name}, {data['faces']} faces in {data['photos']} photos")
    faces: list[dict[str, Any]] = data["face_list"]
    rows = [[f["face_id"], _short(f["uri"]), f["face"], "moved here" if f["manual"] else ""] for f in faces]
    click.echo(render(["face_id", "uri", "face", ""], rows))


@people.command("name")
@click.argument("person", type=int)
@click.argument("name")
@dataset_option
@table_option
@json_option
@handle_errors
def name(person: int, name: str, dataset: str | None, table: str, as_json: bool) -> None:
    """Name a person (a named person is never merged with another named person automatically)."""
    p = Dataset(dataset).people.name(person, name, table)
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(f"person {p.person_id} is now {p.name!r}")


@people.command("merge")
@click.argument("persons", nargs=-1, required=True, type=int)
@dataset_option
@table_option
@json_option
@handle_errors
def merge(persons: tuple[int, ...], dataset: str | None, table: str, as_json: bool) -> None:
    """Merge PERSONS into the first one given."""
    if len(persons) < 2:
        raise click.UsageError("give at least two persons to merge")
    p = Dataset(dataset).people.merge(list(persons), table)
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(f"merged {', '.join(map(str, persons[1:]))} into person {p.person_id}: {p.faces} faces")


@people.command("move")
@click.argument("faces", nargs=-1, required=True, type=int)
@click.option("--to", "to", type=int, default=None, help="The person to move the faces to.")
@click.option("--new", "new", is_flag=True, help="Move the faces into a new person.")
@click.option("--none", "nowhere", is_flag=True, help="Take the faces out of their persons, into none.")
@dataset_option
@table_option
@json_option
@handle_errors
def move(
    faces: tuple[int, ...], to: int | None, new: bool, nowhere: bool, dataset: str | None, table: str, as_json: bool
) -> None:
    """Move FACES (face ids) to another person. A face moved out of a person is never grouped back into it."""
    if sum([to is not None, new, nowhere]) != 1:
        raise click.UsageError("give exactly one of --to PERSON, --new or --none")
    ppl = Dataset(dataset).people
    if nowhere:
        n = ppl.unassign(list(faces), table)
        if as_json:
            _emit_json({"unassigned": n})
        else:
            click.echo(f"{n} faces taken out of their persons")
        return
    p = ppl.move(list(faces), to, table)
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(f"moved {len(faces)} faces to person {p.person_id} ({p.faces} faces)")


@people.command("hide")
@click.argument("person", type=int)
@click.option("--unhide", is_flag=True, help="Show the person again.")
@dataset_option
@table_option
@json_option
@handle_errors
def hide(person: int, unhide: bool, dataset: str | None, table: str, as_json: bool) -> None:
    """Hide a person from lists (their faces stay searchable)."""
    p = Dataset(dataset).people.hide(person, table, hidden=not unhide)
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(f"person {p.person_id} is {'hidden' if p.hidden else 'shown'}")


@people.command("feature")
@click.argument("person", type=int)
@click.argument("face", type=int)
@dataset_option
@table_option
@json_option
@handle_errors
def feature(person: int, face: int, dataset: str | None, table: str, as_json: bool) -> None:
    """Show FACE (one of the person's face ids) for PERSON."""
    p = Dataset(dataset).people.feature(person, face, table)
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(f"person {p.person_id} is shown by face {p.feature_face_id}")


@people.command("export")
@dataset_option
@table_option
@json_option
@handle_errors
def export(dataset: str | None, table: str, as_json: bool) -> None:
    """One row per face: uri, face, face_id, person_id (empty: unassigned), person_name (CSV, or --json)."""
    rows = Dataset(dataset).people.export(table)
    if as_json:
        _emit_json(rows)
        return
    out = csv.DictWriter(sys.stdout, fieldnames=["uri", "face", "face_id", "person_id", "person_name"])
    out.writeheader()
    out.writerows(rows)


@people.command("forget")
@click.argument("person", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@dataset_option
@table_option
@json_option
@handle_errors
def forget(person: int, yes: bool, dataset: str | None, table: str, as_json: bool) -> None:
    """Delete a person for good: their face rows, embeddings, index entries and cached matrices.

    Their faces are kept out of the table when the photos are indexed again (the photo and the face's place in
    it are remembered, never the embedding)."""
    ppl = Dataset(dataset).people
    if not yes:
        p = ppl.get(person, table)
        label = f"{p.name!r} " if p.name else ""
        click.confirm(f"forget person {person} {label}and delete their {p.faces} faces?", abort=True, err=True)
    report = ppl.forget(person, table)
    if as_json:
        _emit_json(report)
    else:
        click.echo(
            f"forgot person {person}: {report['faces_removed']} faces in {report['photos']} photos deleted, "
            f"{report['vector_index_entries_removed']} vector-index entries, "
            f"{report['cached_matrices_removed']} cached matrices"
        )


@people.command("history")
@dataset_option
@table_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option
@handle_errors
def history(dataset: str | None, table: str, limit: int, as_json: bool) -> None:
    """Grouping runs and manual decisions, newest first."""
    rows = Dataset(dataset).people.history(table, limit)
    if as_json:
        _emit_json(rows)
        return
    click.echo(render(["at", "action", "detail"], [[r["at"], r["action"], r["detail"]] for r in rows]))
