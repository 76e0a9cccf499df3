"""The ``lookalike`` command as a user runs it: real subprocesses, real files, exit codes and JSON contract."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from _jobs import kill_after_commits

DATA = Path(__file__).resolve().parents[1] / "data"


def run(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset = tmp_path_factory.mktemp("cli") / "cli.duckdb"
    out = run("index", str(DATA / "gallery"), str(DATA / "gray"), "--dataset", str(dataset), "--json")
    report = json.loads(out.stdout)
    assert report["added"] == 45 and report["failed"] == 0
    return dataset


def test_search_json_contract(indexed: Path) -> None:
    queries = sorted(str(p) for p in (DATA / "queries").glob("*.jpg"))
    out = run("search", *queries, "--dataset", str(indexed), "--top-k", "5", "--json")
    rows = json.loads(out.stdout)
    assert isinstance(rows, list) and len(rows) >= 5 * len(queries)
    for key in ("query_uri", "query_face", "rank", "uri", "face", "distance", "same_person"):
        assert all(key in r for r in rows), key
    for q in queries:
        first = next(r for r in rows if r["query_uri"] == q and r["rank"] == 1)
        assert Path(first["uri"]).parent.name == Path(q).stem[:-5], (q, first["uri"])


def test_search_table_output_and_distances(indexed: Path) -> None:
    q = str(DATA / "queries" / "Jean_Chretien_0010.jpg")
    out = run("search", q, "--dataset", str(indexed), "--top-k", "2", "--distance", "euclidean")
    assert "same_person" in out.stdout and "Jean_Chretien" in out.stdout.splitlines()[2]


def test_verify_and_models_and_tables(indexed: Path) -> None:
    a = str(DATA / "gallery/Junichiro_Koizumi/Junichiro_Koizumi_0001.jpg")
    b = str(DATA / "queries/Junichiro_Koizumi_0010.jpg")
    res = json.loads(run("verify", a, b, "--json").stdout)
    assert res["same_person"] is True and 0 <= res["distance"] < res["threshold"]
    models = json.loads(run("models", "--json").stdout)
    assert len(models) >= 3 and sum(m["default"] for m in models) == 1
    assert all(m["dim"] > 0 and 0 < m["threshold"] < 2 for m in models)
    tables = json.loads(run("tables", "--dataset", str(indexed), "--json").stdout)
    assert tables[0]["name"] == "faces" and tables[0]["objects"] == 45


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["search", "/nonexistent/q.jpg"], "/nonexistent/q.jpg"),
        (["search", "ftp://host/q.jpg"], "ftp://host/q.jpg"),
        (["search", str(DATA / "queries/Tony_Blair_0010.jpg"), "--table", "facez"], "did you mean 'faces'"),
        (["index", str(DATA / "gallery"), "--model", "nosuchmodel"], "unknown face model 'nosuchmodel'"),
        (["verify", str(DATA / "queries/Tony_Blair_0010.jpg"), "/nonexistent/b.jpg"], "/nonexistent/b.jpg"),
    ],
)
def test_user_errors_exit_1_with_one_line(indexed: Path, args: list[str], needle: str) -> None:
    if args[0] in ("search", "index"):
        args = [*args, "--dataset", str(indexed)]
    proc = run(*args, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_traceback() -> None:
    proc = run("--debug", "search", "/nonexistent/q.jpg", "--dataset", "/nonexistent/x.duckdb", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_not_duckdb_dataset(tmp_path: Path) -> None:
    bogus = tmp_path / "x.duckdb"
    bogus.write_bytes(b"\x00garbage" * 100)
    proc = run("index", str(DATA / "gallery"), "--dataset", str(bogus), check=False)
    assert proc.returncode == 1 and "not a DuckDB database" in proc.stderr
    assert bogus.read_bytes() == b"\x00garbage" * 100


def test_missing_source_exits_3_but_indexes_the_rest(tmp_path: Path) -> None:
    ds = tmp_path / "d.duckdb"
    proc = run("index", str(DATA / "gray"), str(tmp_path / "missing"), "--dataset", str(ds), check=False)
    assert proc.returncode == 3
    assert "missing" in proc.stderr and "9 added" in proc.stdout


def test_usage_errors_exit_2() -> None:
    assert run("search", check=False).returncode == 2
    assert run("search", "x.jpg", "--top-k", "0", check=False).returncode == 2
    assert run("--help").stdout.count("index") >= 1


def test_killed_index_resumes_without_redoing_work(tmp_path: Path) -> None:
    """SIGKILL an index job after it committed some chunks; the rerun embeds only the rest."""
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    shutil.copytree(DATA / "gray", photos / "gray")
    ds = tmp_path / "kill.duckdb"
    cmd = [sys.executable, "-m", "lookalike.cli", "index", str(photos), "--dataset", str(ds)]
    committed = kill_after_commits([*cmd, "--chunk-size", "1", "--workers", "1", "--quiet"], ds)
    with duckdb.connect(str(ds), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM lookalike_objects").fetchall()[0][0]
        faces = con.execute("SELECT count(DISTINCT uri) FROM faces_faces").fetchall()[0][0]
    assert before >= committed and faces == before, "objects and face rows must be committed together"
    report = json.loads(run("index", str(photos), "--dataset", str(ds), "--json").stdout)
    assert report["unchanged"] == before
    assert report["added"] == 45 - before and report["failed"] == 0


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_killed_multi_worker_job_leaves_no_orphans_and_resumes(tmp_path: Path) -> None:
    """SIGKILL the parent of a --workers 2 job: its workers exit by themselves, and the rerun finishes the job."""
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    shutil.copytree(DATA / "gray", photos / "gray")
    ds = tmp_path / "kill2.duckdb"
    cmd = [sys.executable, "-m", "lookalike.cli", "index", str(photos), "--dataset", str(ds)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2", "--chunk-size", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
        workers = {c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()}
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the job finished before its workers could be seen")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()]
    assert not alive, f"worker processes outlived their killed parent: {alive}"
    report = json.loads(run("index", str(photos), "--dataset", str(ds), "--json").stdout)
    assert report["failed"] == 0 and report["added"] + report["unchanged"] == 45
