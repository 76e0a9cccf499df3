"""Two writers on one dataset, as real processes: both finish, nothing is duplicated or lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "lookalike.cli", *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out + err


def test_two_index_runs_on_one_table_at_once(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    dataset = str(tmp_path / "two.duckdb")
    procs = [_start("index", str(photos), "--dataset", dataset, "--chunk-size", "2", "-q") for _ in range(2)]
    for proc in procs:
        code, text = _finish(proc)
        assert code == 0, text
    with duckdb.connect(dataset, read_only=True) as con:
        objects = con.execute("SELECT count(*), count(DISTINCT uri) FROM lookalike_objects").fetchall()[0]
        faces = con.execute(
            "SELECT count(*), count(DISTINCT (uri, face_index)) FROM faces_faces WHERE embedding IS NOT NULL"
        ).fetchall()[0]
    assert objects == (36, 36)
    assert faces[0] == faces[1] >= 36  # every face once


def test_index_while_sql_writes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    dataset = str(tmp_path / "mixed.duckdb")
    script = ";\n".join(
        ["CREATE SCHEMA IF NOT EXISTS s", "CREATE TABLE s.t (i INT64)"]
        + [f"INSERT INTO s.t VALUES ({i})" for i in range(40)]
    )
    index = _start("index", str(photos), "--dataset", dataset, "--chunk-size", "1", "-q")
    sql = _start("sql", script, "--dataset", dataset)
    for proc in (index, sql):
        code, text = _finish(proc)
        assert code == 0, text
    with duckdb.connect(dataset, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT i) FROM s.t").fetchall()[0] == (40, 40)
        assert con.execute("SELECT count(*) FROM lookalike_objects").fetchall()[0][0] == 36
