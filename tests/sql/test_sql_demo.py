"""examples/demo.sql, the Google Cloud demo's statements, run as a user runs them: ranking equals `search`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sql_support import DATA, DEMO_SQL, REPO, Demo


def _lookalike(*args: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=300,
    )


def test_demo_statements_all_run(demo: Demo) -> None:
    messages = [r.message for r in demo.results]
    assert len(messages) == 5
    assert messages[0] == "created schema face_search"
    assert messages[1].startswith("created model face_search.face-search_model (face model fr-feature)")
    assert messages[2] == "created object table face_search.faces (48 objects)"
    assert "face_search.face_embeddings (48 rows)" in messages[3]
    last = demo.results[-1]
    assert last.returns_rows and last.columns == ["image_link", "distance"]
    assert last.num_rows == 5


def test_demo_ranking_equals_dataset_search(demo: Demo) -> None:
    rows = demo.results[-1].to_pylist()
    query = str(DATA / "queries" / "Tony_Blair_0010.jpg")
    hits = demo.ds.search(query, table=demo.index_table, top_k=5, distance="cosine").hits
    assert [r["image_link"] for r in rows] == [h.uri for h in hits]
    assert [r["distance"] for r in rows] == pytest.approx([h.distance for h in hits], abs=1e-5)
    assert rows[0]["image_link"] == query  # the query photo is in the bucket, as in the demo
    assert [Path(str(r["image_link"])).name[:10] for r in rows[1:4]] == ["Tony_Blair"] * 3


def test_every_query_ranks_like_search(demo: Demo) -> None:
    """All 12 query photos at once: VECTOR_SEARCH top-5 per query row equals Dataset.search's."""
    rows = demo.rows(
        """SELECT query.uri AS q, base.uri AS b, distance
           FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, 'ml_generate_embedding_result',
                (SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%/queries/%'),
                top_k => 5, distance_type => 'COSINE')"""
    )
    got: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        got[str(row["q"])].append(str(row["b"]))
    queries = sorted(str(p) for p in (DATA / "queries").glob("*.jpg"))
    assert sorted(got) == queries
    result = demo.ds.search(queries, table=demo.index_table, top_k=5)
    want: dict[str, list[str]] = defaultdict(list)
    for hit in result.hits:
        want[hit.query_uri].append(hit.uri)
    assert got == want


def test_demo_rerun_reuses_every_embedding(demo: Demo) -> None:
    notices = [n for r in demo.sql(DEMO_SQL.read_text().replace("tests/data", str(DATA))) for n in r.notices]
    embedding = [n for n in notices if n.startswith("ML.GENERATE_EMBEDDING")]
    assert embedding == [
        "ML.GENERATE_EMBEDDING (fr-feature): 0 object(s) embedded, 48 reused",
        "ML.GENERATE_EMBEDDING (fr-feature): 0 object(s) embedded, 1 reused",
    ]


def test_cli_runs_demo_file_with_json_output(demo: Demo, tmp_path: Path) -> None:
    dataset = tmp_path / "cli.duckdb"
    shutil.copy(demo.ds.path, dataset)  # embeddings are reused: the CLI run stays quick
    out = _lookalike("sql", "-f", str(DEMO_SQL), "--dataset", str(dataset), "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows == [
        {"image_link": r["image_link"], "distance": pytest.approx(r["distance"], abs=1e-6)}
        for r in demo.results[-1].to_pylist()
    ]
    # the CLI's own search over the same photos gives the same ranking
    search = _lookalike(
        "search",
        str(DATA / "queries/Tony_Blair_0010.jpg"),
        "--dataset",
        str(dataset),
        "--table",
        "_sqlemb_fr_feature",
        "--json",
    )
    assert search.returncode == 0, search.stderr
    assert [h["uri"] for h in json.loads(search.stdout)] == [r["image_link"] for r in rows]


def test_cli_table_csv_and_stdin(demo: Demo, tmp_path: Path) -> None:
    dataset = tmp_path / "cli.duckdb"
    shutil.copy(demo.ds.path, dataset)
    query = "SELECT uri, size FROM face_search.faces WHERE uri LIKE '%Hugo%' ORDER BY uri LIMIT 2"
    table = _lookalike("sql", query, "--dataset", str(dataset))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["uri", "size"] and lines[1].startswith("---") and lines[-1] == "(2 rows)"
    csv = _lookalike("sql", "-f", "-", "--dataset", str(dataset), "--format", "csv", stdin=query + ";")
    assert csv.returncode == 0, csv.stderr
    header, *body = csv.stdout.splitlines()
    assert header == "uri,size" and len(body) == 2 and "Hugo_Chavez" in body[0]
