"""The server keeps answering while another process writes to its dataset, and sees the new rows.

DuckDB lets one process at a time open a file for writing, and while it does no other process can open it at
all. These tests run the real thing: ``lookalike serve`` in one process, ``lookalike index`` (or a process that
just holds the write lock) in another, and a client hitting the server in between.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import GALLERY, PEOPLE, LiveServer, multipart, person_of, query_photo, start_server, stop_server

import lookalike

TOKEN = "concurrency-test-token"
_FIRST = PEOPLE[:3]


@pytest.fixture()
def growing(tmp_path: Path) -> Iterator[tuple[LiveServer, Path, Path]]:
    """A server (token from $LOOKALIKE_TOKEN) on a dataset holding 3 of the 12 people, and the photo folder
    with all 12 (the other 9 twice)."""
    photos = tmp_path / "photos"
    for person in _FIRST:
        shutil.copytree(GALLERY / person, photos / person)
    dataset = tmp_path / "growing.duckdb"
    assert lookalike.open(dataset).index(str(photos)).faces == 9
    for person in PEOPLE[3:]:
        shutil.copytree(GALLERY / person, photos / person)
        for photo in sorted((GALLERY / person).glob("*.jpg")):  # a second copy: a longer run to watch
            shutil.copy(photo, photos / person / f"{photo.stem}_copy.jpg")
    server = start_server(dataset, tmp_path / "serve.log", token=TOKEN)
    yield server, dataset, photos
    stop_server(server)


def _faces(server: LiveServer) -> int:
    status, _, raw = server.request("/v1/tables", timeout=10)
    assert status == 200, raw
    return int(json.loads(raw)["tables"][0]["faces"])


def _search(server: LiveServer, person: str) -> dict[str, object]:
    body, ctype = multipart({"top_k": "1"}, {"image": ("q.jpg", query_photo(person).read_bytes())})
    status, _, raw = server.request("/v1/search", data=body, headers={"Content-Type": ctype}, timeout=10)
    assert status == 200, raw
    result: dict[str, object] = json.loads(raw)
    return result


def _index_while_searching(server: LiveServer, dataset: Path, sources: list[Path]) -> tuple[list[int], int]:
    """Run ``lookalike index SOURCES`` in another process, one photo per commit, while a client asks the server for
    the face count and searches; every request must be answered. Returns the counts seen and the searches made."""
    cmd = [sys.executable, "-m", "lookalike.cli", "index", *map(str, sources), "--dataset", str(dataset)]
    cmd += ["--chunk-size", "1", "--workers", "1", "--quiet"]  # a steady trickle of commits, one photo at a time
    indexer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    counts: list[int] = []
    searches = 0
    deadline = time.monotonic() + 120
    try:
        while indexer.poll() is None and time.monotonic() < deadline:
            counts.append(_faces(server))
            _search(server, "Tony_Blair")  # must answer (200) whatever the indexer is doing
            searches += 1
            time.sleep(0.05)
        out = indexer.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if indexer.poll() is None:
            indexer.kill()
    assert indexer.returncode == 0, out
    return counts, searches


def _faces_once_refreshed(server: LiveServer, expected: int) -> int:
    """The server's face count once it shows ``expected`` (it re-reads the file within its refresh interval;
    no restart), or what it shows after 10 s."""
    end = time.monotonic() + 10
    while _faces(server) != expected and time.monotonic() < end:
        time.sleep(0.2)
    return _faces(server)


def test_server_answers_while_lookalike_index_writes(growing: tuple[LiveServer, Path, Path]) -> None:
    server, dataset, photos = growing
    assert server.request("/v1/tables", auth=False)[0] == 401  # the token from the environment is enforced
    assert _faces(server) == 9
    # two runs, so that the server is seen to grow without a restart whatever the timing: whether it catches a
    # commit in the middle of one short run depends on the machine's speed (that made this test flaky)
    first, searches_1 = _index_while_searching(server, dataset, [photos / p for p in PEOPLE[3:6]])
    first.append(_faces_once_refreshed(server, 9 + 3 * 3 * 2))
    second, searches_2 = _index_while_searching(server, dataset, [photos])
    second.append(_faces_once_refreshed(server, 63))
    counts = first + second
    assert first[-1] == 27 and counts[-1] == 63  # 9 + 9 people x 3 photos x 2 copies
    assert counts == sorted(counts), "the face count went backwards"
    assert searches_1 + searches_2 >= 3
    hit = _search(server, "Tony_Blair")["results"][0]  # type: ignore[index]
    assert person_of(hit["uri"]) == "Tony_Blair"  # a person only the other process indexed


_HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: no other process can open the file now
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def test_server_answers_from_its_cache_while_the_file_is_locked(growing: tuple[LiveServer, Path, Path]) -> None:
    server, dataset, _ = growing
    before = _search(server, "Ariel_Sharon")
    assert before["stale"] is False and _faces(server) == 9
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(dataset)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        time.sleep(0.6)  # past the refresh interval: the server must look at the file again, and find it locked
        started = time.monotonic()
        during = _search(server, "Ariel_Sharon")
        assert _faces(server) == 9
        face_id = during["results"][0]["face_id"]  # type: ignore[index]
        status, headers, _ = server.request(f"/v1/faces/{face_id}/thumbnail?table=faces")
        elapsed = time.monotonic() - started
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert during["stale"] is True and during["results"] == before["results"]
        assert elapsed < 5, f"answers took {elapsed:.1f} s while the file was locked"
    finally:
        assert holder.stdin is not None
        holder.stdin.write(b"\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    time.sleep(0.6)
    assert _search(server, "Ariel_Sharon")["stale"] is False
