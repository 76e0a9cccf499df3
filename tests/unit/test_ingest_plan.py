"""How an index job cuts its work into chunks and commits what comes back (a real DuckDB file)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

from lookalike.dataset import store
from lookalike.dataset.connection import connect
from lookalike.dataset.schema import migrate
from lookalike.faces.registry import get_card
from lookalike.faces.types import DetectedFace
from lookalike.ingest import commit_stream, split_tail
from lookalike.records import ObjectResult
from lookalike.storage import ObjectInfo


def test_split_tail_cuts_the_last_chunks_only() -> None:
    chunks = [list(range(i * 32, min(i * 32 + 32, 100))) for i in range(4)]  # 32, 32, 32, 4 items
    out = split_tail(chunks, 2)
    assert [x for c in out for x in c] == list(range(100))  # nothing lost, nothing reordered
    assert [len(c) for c in out] == [32, 32, 8, 8, 8, 8, 1, 1, 1, 1]
    assert split_tail(chunks, 1) == chunks  # one worker waits for nobody
    assert [len(c) for c in split_tail([[1, 2, 3]], 4)] == [1, 1, 1]  # fewer chunks than workers: all cut
    assert split_tail([], 2) == []


def _results(start: int, n: int) -> list[ObjectResult]:
    face = DetectedFace(bbox=(10.0, 10.0, 90.0, 90.0), landmarks=np.zeros((5, 2), np.float32), score=0.99)
    emb = np.eye(n, 512, dtype=np.float32)
    return [
        ObjectResult(
            info=ObjectInfo(
                uri=f"file:///photos/p{start + i}.jpg",
                size=1000,
                content_type="image/jpeg",
                updated=datetime.now(UTC),
                etag=None,
                md5=None,
                generation=str(start + i),
            ),
            source="file:///photos/",
            status="ok",
            faces=[face],
            embeddings=emb[i : i + 1],
        )
        for i in range(n)
    ]


def test_commit_stream_groups_chunks_within_the_interval(tmp_path: Path) -> None:
    """The first chunk is committed at once; chunks that finish within the interval of that commit wait for the
    next one, which the end of the stream triggers; every photo is written exactly once."""
    path = tmp_path / "d.duckdb"
    with connect(path) as con:
        migrate(con)
        info = store.ensure_table(con, "faces", get_card(None))
    first_committed = threading.Event()

    def batches() -> Iterator[list[ObjectResult]]:
        yield _results(0, 3)
        assert first_committed.wait(60)
        for k in range(1, 5):
            yield _results(3 * k, 3)

    commits: list[int] = []

    def on_commit(group: object) -> None:
        commits.append(len(group))  # type: ignore[arg-type]
        first_committed.set()

    commit_stream(path, info, batches(), on_commit, interval_s=3600)
    assert commits == [3, 12]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT uri) FROM lookalike_objects").fetchall() == [(15, 15)]
