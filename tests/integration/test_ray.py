"""``lookalike index --executor ray`` against a real local Ray cluster.

The module's fixture starts one head (``ray start --head --num-cpus 2`` on 127.0.0.1, its own temp folder), every
test uses it, and it is stopped at the end. Faults are real: a worker process of the cluster is SIGKILLed while it
embeds a chunk, and the driver is SIGKILLed mid-job.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pytest
from _jobs import kill_after_commits

import lookalike

if TYPE_CHECKING:
    from conftest import S3Server

pytestmark = pytest.mark.ray

DATA = Path(__file__).resolve().parents[1] / "data"
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local 2-CPU Ray cluster for this module's tests; its address."""
    temp = Path("/tmp") / f"lkray{os.getpid()}"  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [str(RAY), "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address", "127.0.0.1"]
    cmd += ["--disable-usage-stats", "--include-dashboard", "false", "--temp-dir", str(temp)]
    started = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _index(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lookalike.cli", "index", *args], capture_output=True, text=True, timeout=600
    )


def _rows(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT uri, face_index, bbox, det_score, embedding, status FROM faces_faces ORDER BY uri, face_index"
        ).fetchall()


def _photos(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", photos)
    shutil.copytree(DATA / "gray", photos / "gray")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return photos


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[object, ...]]]:
    """The photos indexed by a local job: what every Ray job must reproduce."""
    tmp = tmp_path_factory.mktemp("local")
    photos = _photos(tmp)
    ds = tmp / "local.duckdb"
    out = _index(str(photos), "--dataset", str(ds), "--workers", "1", "--json")
    assert out.returncode == 0, out.stderr
    return photos, _rows(ds)


def test_ray_job_gives_the_same_rows_as_a_local_job(
    ray_address: str, local_rows: tuple[Path, list[tuple[object, ...]]], tmp_path: Path
) -> None:
    photos, local = local_rows
    ds = tmp_path / "ray.duckdb"
    out = _index(str(photos), "--dataset", str(ds), "--executor", "ray", "--ray-address", ray_address, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["added"] == 46 and report["failed"] == 1 and "broken.jpg" in report["errors"][0]["uri"]
    with duckdb.connect(str(ds), read_only=True) as con:
        ray_rows = con.execute("SELECT uri, face_index, embedding FROM faces_faces ORDER BY uri, face_index").fetchall()
    assert [(r[0], r[1]) for r in ray_rows] == [(r[0], r[1]) for r in local]
    for got, want in zip(ray_rows, local, strict=True):
        assert (got[2] is None) == (want[4] is None)
        if got[2] is not None:
            assert np.array_equal(np.asarray(got[2], np.float32), np.asarray(want[4], np.float32))
    again = json.loads(
        _index(str(photos), "--dataset", str(ds), "--executor", "ray", "--ray-address", ray_address, "--json").stdout
    )
    assert again["unchanged"] == 45 and again["faces"] == 0  # incremental: only the broken photo is tried again


def _task_workers() -> list[int]:
    """Pids of the cluster's worker processes that are running an embedding task right now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::_call"):  # Ray names a worker process after the task it runs
            pids.append(int(entry.name))
    return pids


def test_a_killed_worker_process_is_retried_and_nothing_is_lost_or_doubled(
    ray_address: str, local_rows: tuple[Path, list[tuple[object, ...]]], tmp_path: Path
) -> None:
    photos, local = local_rows
    ds = tmp_path / "killworker.duckdb"
    cmd = [sys.executable, "-m", "lookalike.cli", "index", str(photos), "--dataset", str(ds)]
    cmd += ["--executor", "ray", "--ray-address", ray_address, "--chunk-size", "1", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        busy = _task_workers()
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed = busy[0]
        time.sleep(0.02)
    out, err = proc.communicate(timeout=600)
    assert killed is not None, "no worker was ever seen running a chunk"
    assert proc.returncode == 0, err
    assert out.strip(), err
    report = json.loads(out)
    assert report["added"] == 46 and report["failed"] == 1
    with duckdb.connect(str(ds), read_only=True) as con:
        dup = con.execute(
            "SELECT count(*) FROM (SELECT uri, face_index FROM faces_faces GROUP BY ALL HAVING count(*) > 1)"
        )
        assert dup.fetchall()[0][0] == 0
        ray_rows = con.execute("SELECT uri, face_index, embedding FROM faces_faces ORDER BY uri, face_index").fetchall()
    assert [(r[0], r[1]) for r in ray_rows] == [(r[0], r[1]) for r in local]


def test_a_killed_driver_resumes_from_the_last_commit(ray_address: str, tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    ds = tmp_path / "killdriver.duckdb"
    cmd = [sys.executable, "-m", "lookalike.cli", "index", str(photos), "--dataset", str(ds), "--quiet"]
    cmd += ["--executor", "ray", "--ray-address", ray_address, "--chunk-size", "1"]
    kill_after_commits(cmd, ds)
    with duckdb.connect(str(ds), read_only=True) as con:
        # the broken photo may be among the committed rows: a failed object is retried (an update), never unchanged
        good, bad = con.execute(
            "SELECT count(*) FILTER (status <> 'error'), count(*) FILTER (status = 'error') FROM lookalike_objects"
        ).fetchall()[0]
    out = _index(str(photos), "--dataset", str(ds), "--executor", "ray", "--ray-address", ray_address, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["unchanged"] == good and report["updated"] == bad and report["failed"] == 1
    assert report["added"] == 46 - good - bad, report


def test_an_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    port = _free_port()
    ds = tmp_path / "never.duckdb"
    out = _index(str(DATA / "gallery"), "--dataset", str(ds), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "cannot reach" in lines[0]
    assert not ds.exists()
    env_out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lookalike.cli",
            "index",
            str(DATA / "gallery"),
            "--dataset",
            str(ds),
            "--executor",
            "ray",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"},
    )
    assert env_out.returncode == 1 and f"127.0.0.1:{port}" in env_out.stderr and not ds.exists()


@pytest.mark.s3
def test_photos_in_s3_as_the_source_of_a_ray_job(ray_address: str, s3_server: S3Server, tmp_path: Path) -> None:
    """The cluster's workers read the photos from the bucket themselves (with the driver's S3 settings)."""
    fs = s3_server.bucket("ray-photos")
    for person in sorted((DATA / "gallery").iterdir())[:4]:
        for photo in sorted(person.glob("*.jpg")):
            fs.put_file(str(photo), f"ray-photos/{person.name}/{photo.name}")
    ds = lookalike.open(tmp_path / "s3.duckdb", storage_options=s3_server.options())
    report = ds.index("s3://ray-photos/", executor="ray", ray_address=ray_address, chunk_size=3)
    assert report.added == 12 and report.failed == 0 and report.faces == 12
    hits = ds.search(str(DATA / "queries" / f"{sorted((DATA / 'gallery').iterdir())[0].name}_0010.jpg")).hits
    assert hits[0].uri.startswith("s3://ray-photos/") and hits[0].same_person
