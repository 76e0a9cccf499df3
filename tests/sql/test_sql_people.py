"""People in SQL: ``lookalike_people`` and ``lookalike_person_faces`` over the bundled gallery, grouped into persons
by the core (``ds.people``), read through the SQL front end and compared with what the core says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sql_support import DATA

import lookalike
from lookalike.errors import SqlError

TABLE = "gallery"


@dataclass
class Grouped:
    """The gallery indexed into table ``gallery`` and grouped; one person named after its folder, one hidden."""

    ds: lookalike.Dataset
    named_id: int
    named: str
    hidden_id: int

    def rows(self, text: str) -> list[dict[str, object]]:
        return self.ds.sql(text)[-1].to_pylist()


def _folder(uri: object) -> str:
    return Path(str(uri)).parent.name


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Grouped:
    ds = lookalike.open(tmp_path_factory.mktemp("sql-people") / "people.duckdb")
    ds.index(str(DATA / "gallery"), table=TABLE, cluster=False)
    report = ds.people.cluster(TABLE)
    assert report.persons >= 2
    first, second = ds.people.list(TABLE)[:2]
    folders = {_folder(f["uri"]) for f in ds.people.show(first.person_id, TABLE)["face_list"]}
    assert len(folders) == 1
    named = folders.pop().replace("_", " ")
    ds.people.name(first.person_id, named, TABLE)
    ds.people.hide(second.person_id, TABLE)
    return Grouped(ds, first.person_id, named, second.person_id)


def test_people_table_has_a_row_per_person(grouped: Grouped) -> None:
    result = grouped.ds.sql("SELECT * FROM lookalike_people ORDER BY person_id")[-1]
    assert result.to_arrow().column_names == [
        "table_name", "person_id", "name", "hidden", "confirmed", "faces", "photos", "feature_face_id",
    ]  # fmt: skip
    core = sorted(grouped.ds.people.list(TABLE, include_hidden=True), key=lambda p: p.person_id)
    assert result.to_pylist() == [
        {
            "table_name": TABLE,
            "person_id": p.person_id,
            "name": p.name,
            "hidden": p.hidden,
            "confirmed": p.confirmed,
            "faces": p.faces,
            "photos": p.photos,
            "feature_face_id": p.feature_face_id,
        }
        for p in core
    ]
    by_id = {r["person_id"]: r for r in result.to_pylist()}
    assert by_id[grouped.named_id]["name"] == grouped.named
    assert by_id[grouped.hidden_id]["hidden"] is True
    # dataset-qualified with main, where the face tables are, gives the same rows
    assert grouped.rows("SELECT count(*) AS n FROM main.lookalike_people") == [{"n": len(core)}]


def test_person_faces_join_face_table_to_person_names(grouped: Grouped) -> None:
    rows = grouped.rows(
        f"""SELECT f.face_id, f.uri, p.person_id, p.name
            FROM faces_{TABLE} f
            JOIN lookalike_person_faces pf USING (face_id)
            JOIN lookalike_people p USING (person_id)
            ORDER BY f.face_id"""
    )
    export = [r for r in grouped.ds.people.export(TABLE) if r["person_id"] is not None]
    assert len(rows) == len(export) > 0
    assert {(r["face_id"], r["uri"], r["person_id"], r["name"]) for r in rows} == {
        (r["face_id"], r["uri"], r["person_id"], r["person_name"]) for r in export
    }
    named = [r for r in rows if r["name"] == grouped.named]
    assert named and {_folder(r["uri"]) for r in named} == {grouped.named.replace(" ", "_")}
    assert grouped.rows("SELECT DISTINCT table_name, manual FROM lookalike_person_faces") == [
        {"table_name": TABLE, "manual": False}
    ]


def test_vector_search_results_join_person_names(grouped: Grouped) -> None:
    folder = grouped.named.replace(" ", "_")
    rows = grouped.rows(
        f"""SELECT base.uri AS uri, base.face_id AS face_id, p.name, distance
            FROM VECTOR_SEARCH(TABLE faces_{TABLE}, 'embedding',
                   (SELECT embedding FROM faces_{TABLE} WHERE uri LIKE '%{folder}_0001%'),
                   top_k => 3, distance_type => 'COSINE') AS vs
            LEFT JOIN lookalike_person_faces pf ON pf.face_id = vs.base.face_id
            LEFT JOIN lookalike_people p USING (person_id)
            ORDER BY distance"""
    )
    assert len(rows) == 3
    # the core search names the same persons for the same faces
    hits = grouped.ds.search(str(DATA / "gallery" / folder / f"{folder}_0001.jpg"), table=TABLE, top_k=3)
    assert [(r["face_id"], r["name"]) for r in rows] == [(h.face_id, h.person_name) for h in hits.hits]
    assert rows[0]["name"] == grouped.named


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO lookalike_people (person_id, name) VALUES (999, 'x')",
        "UPDATE lookalike_people SET name = 'x' WHERE TRUE",
        "DELETE FROM main.lookalike_people WHERE TRUE",
        "DELETE lookalike_person_faces WHERE TRUE",
        "MERGE lookalike_person_faces t USING (SELECT 1 AS face_id) s ON t.face_id = s.face_id "
        "WHEN MATCHED THEN DELETE",
        "TRUNCATE TABLE lookalike_person_faces",
        "DROP TABLE lookalike_people",
        "CREATE OR REPLACE TABLE lookalike_people AS SELECT 1 AS x",
        "ALTER TABLE lookalike_people ADD COLUMN x INT64",
        "UPDATE lookalike_persons SET name = 'x' WHERE TRUE",
        "DELETE FROM lookalike_people_log WHERE TRUE",
        "CREATE EXTERNAL TABLE lookalike_people OPTIONS (object_metadata = 'SIMPLE', uris = ['x/*'])",
    ],
)
def test_people_are_read_only(grouped: Grouped, statement: str) -> None:
    before = grouped.rows("SELECT * FROM lookalike_people ORDER BY person_id")
    with pytest.raises(SqlError, match=r"lookalike_\w+ is read-only: people are changed with the people commands"):
        grouped.ds.sql(statement)
    assert grouped.rows("SELECT * FROM lookalike_people ORDER BY person_id") == before


def test_read_only_error_names_the_table_and_the_commands(grouped: Grouped) -> None:
    with pytest.raises(SqlError) as info:
        grouped.ds.sql("SELECT 1;\nDELETE FROM lookalike_people WHERE person_id = 1")
    err = info.value
    assert (err.line, err.column) == (2, 13)
    assert err.hint is not None and "lookalike people name" in err.hint
    assert (err.statement_index, err.committed) == (2, 1)


def test_copies_and_reads_are_allowed_but_views_of_people_are_not(grouped: Grouped) -> None:
    n = len(grouped.ds.people.list(TABLE, include_hidden=True))
    grouped.ds.sql("CREATE TABLE people_copy AS SELECT * FROM lookalike_people")
    assert grouped.rows("SELECT count(*) AS n FROM people_copy") == [{"n": n}]
    grouped.ds.sql("DELETE FROM people_copy WHERE TRUE; DROP TABLE people_copy")
    with pytest.raises(SqlError, match="a view cannot hold lookalike_people"):
        grouped.ds.sql("CREATE VIEW people_view AS SELECT * FROM lookalike_people")
    # a CTE of that name in a view is the view's own
    grouped.ds.sql("CREATE VIEW cte_view AS WITH lookalike_people AS (SELECT 1 AS x) SELECT * FROM lookalike_people")
    assert grouped.rows("SELECT * FROM cte_view") == [{"x": 1}]
    grouped.ds.sql("DROP VIEW cte_view")


def test_names_resolve_like_the_face_tables(grouped: Grouped) -> None:
    # a CTE of the same name wins
    assert grouped.rows("WITH lookalike_people AS (SELECT 1 AS x) SELECT * FROM lookalike_people") == [{"x": 1}]
    # another dataset has no people views: the error says where they are
    grouped.ds.sql("CREATE SCHEMA IF NOT EXISTS other")
    with pytest.raises(SqlError, match="lookalike_people is in the main dataset") as info:
        grouped.ds.sql("SELECT * FROM other.lookalike_people")
    assert info.value.hint == "write lookalike_people (or main.lookalike_people)"
    with pytest.raises(SqlError, match="did you mean lookalike_people"):
        grouped.ds.sql("SELECT * FROM lookalike_peple")


def test_information_schema_lists_the_people_views(grouped: Grouped) -> None:
    tables = grouped.rows(
        "SELECT table_name, table_type, is_insertable_into FROM INFORMATION_SCHEMA.TABLES "
        "WHERE table_name LIKE 'lookalike%' ORDER BY table_name"
    )
    assert tables == [
        {"table_name": "lookalike_people", "table_type": "VIEW", "is_insertable_into": "NO"},
        {"table_name": "lookalike_person_faces", "table_type": "VIEW", "is_insertable_into": "NO"},
    ]
    cols = grouped.rows(
        "SELECT column_name, data_type FROM INFORMATION_SCHEMA.COLUMNS WHERE table_name = 'lookalike_person_faces' "
        "ORDER BY ordinal_position"
    )
    assert [(c["column_name"], c["data_type"]) for c in cols] == [
        ("table_name", "STRING"), ("face_id", "INT64"), ("person_id", "INT64"), ("manual", "BOOL"),
    ]  # fmt: skip


def test_a_dataset_without_persons_has_empty_people_views(tmp_path: Path) -> None:
    ds = lookalike.open(tmp_path / "empty.duckdb")
    people = ds.sql("SELECT * FROM lookalike_people")[-1]
    assert people.to_pylist() == [] and "feature_face_id" in people.to_arrow().column_names
    assert ds.sql("SELECT face_id FROM lookalike_person_faces")[-1].to_pylist() == []
