"""Remote face models: an HTTP embedding service, registered by CLI or SQL (``CREATE MODEL ... REMOTE WITH
CONNECTION ... OPTIONS (ENDPOINT = 'http://...')``).

The service is a real HTTP server started by the test on 127.0.0.1. It runs the vendored fr-feature network on
the crops it is sent, so the remote model must give exactly the built-in model's embeddings; it can also be told
to fail, stall or answer wrongly, to check the retries, timeouts and per-row statuses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import lookalike
from lookalike.cli import main as cli_main
from lookalike.errors import InvalidArgument, ModelError
from lookalike.faces import remote, user_models
from lookalike.faces.models import FrFeatureModel
from lookalike.faces.registry import get_card, get_model

pytestmark = pytest.mark.usefixtures("config_dir")  # users' models in a fresh folder (conftest.py)
DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
QUERY = str(DATA / "queries" / "Tony_Blair_0010.jpg")


class Service:
    """The fake embedding service: ``mode`` is ok | fail:N (N 503s, then ok) | down | slow | short | bad-request."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        self.failed = 0
        self.net = FrFeatureModel(get_card("fr-feature"))
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that timed out
                    self.wfile.write(raw)

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service.lock:
                    service.requests += 1
                    mode = service.mode
                    if mode.startswith("fail:") and service.failed < int(mode[5:]):
                        service.failed += 1
                        self._send(503, {"error": "warming up"}, {"Retry-After": "0"})
                        return
                if mode == "down":
                    self._send(500, {"error": "boom"})
                    return
                if mode == "slow":
                    time.sleep(1.5)
                if mode == "bad-request":
                    self._send(400, {"error": "crop too small"})
                    return
                size = int(req["size"])
                crops = np.stack(
                    [np.frombuffer(base64.b64decode(c), np.uint8).reshape(size, size, 3) for c in req["crops"]]
                )
                with service.lock:
                    vectors = service.net._forward(crops)
                if mode == "short":
                    vectors = vectors[:-1]
                self._send(200, {"embeddings": vectors.tolist()})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/embed"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[Service]:
    s = Service()
    yield s
    s.close()


def test_a_remote_model_serving_fr_feature_gives_the_builtin_models_answers(tmp_path: Path, service: Service) -> None:
    result = CliRunner().invoke(cli_main, ["models", "add", "remote-fr", "--endpoint", service.url])
    assert result.exit_code == 0, result.output
    assert "512-d" in result.output and service.url in result.output
    listing = CliRunner().invoke(cli_main, ["models", "--json"])
    row = next(r for r in json.loads(listing.output) if r["name"] == "remote-fr")
    assert row["device"] == "remote" and row["calibrated"] is False and service.url in row["weights"]
    ds = lookalike.open(tmp_path / "r.duckdb")
    builtin = ds.embed([QUERY], model="fr-feature")[0][0].embedding
    mine = ds.embed([QUERY], model="remote-fr")[0][0].embedding
    assert np.allclose(builtin, mine, atol=1e-6)
    ds.index(str(DATA / "gallery"), table="builtin")
    ds.index(str(DATA / "gallery"), table="remote", model="remote-fr")
    a, b = ds.search(QUERY, table="builtin", top_k=3), ds.search(QUERY, table="remote", top_k=3)
    assert [h.uri for h in a.hits] == [h.uri for h in b.hits]
    assert np.allclose([h.distance for h in a.hits], [h.distance for h in b.hits], atol=1e-5)
    assert all(h.same_person is None for h in b.hits)  # not calibrated: no guess


def test_failures_are_retried_with_back_off(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF", 0.01)
    user_models.add_remote_model("flaky", service.url, retries=3)
    service.mode, service.requests = "fail:2", 0
    model = get_model("flaky")
    crops = np.full((2, 112, 112, 3), 100, np.uint8)
    assert model._forward(crops).shape == (2, 512)  # type: ignore[attr-defined]
    assert service.requests == 3  # two 503s, then the answer


def test_a_service_that_stays_down_or_stalls_is_a_clear_error(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "BACKOFF", 0.01)
    crops = np.full((1, 112, 112, 3), 100, np.uint8)
    service.mode, service.requests = "down", 0
    with pytest.raises(remote.RemoteServiceError, match=r"failed 3 times \(last: HTTP 500\)"):
        remote.call(service.url, crops, model="m", retries=2)
    assert service.requests == 3
    service.mode = "slow"
    with pytest.raises(remote.RemoteServiceError, match="timed out after 0.3 s"):
        remote.call(service.url, crops, model="m", timeout=0.3, retries=0)
    service.mode, service.requests = "bad-request", 0
    with pytest.raises(ModelError, match="HTTP 400: .*crop too small"):
        remote.call(service.url, crops, model="m", retries=3)
    assert service.requests == 1  # a client error is not retried
    service.mode = "short"
    with pytest.raises(ModelError, match="sent 1 vectors for 2 crops"):
        remote.call(service.url, np.concatenate([crops, crops]), model="m")
    with pytest.raises(InvalidArgument, match="http:// or https://"):
        user_models.add_remote_model("nourl", "ftp://example.com/embed")
    service.close()
    with pytest.raises(remote.RemoteServiceError):  # nothing listens there any more
        user_models.add_remote_model("gone", service.url, retries=0)


def test_an_index_job_marks_photos_error_while_the_service_is_down_and_keeps_the_rest(
    tmp_path: Path, service: Service
) -> None:
    user_models.add_remote_model("svc", service.url, retries=1)
    ds = lookalike.open(tmp_path / "d.duckdb")
    first = ds.index(str(DATA / "gallery" / "Tony_Blair"), table="t", model="svc")
    assert first.failed == 0 and first.faces > 0
    service.mode = "down"
    second = ds.index(str(DATA / "gallery"), table="t", model="svc")
    assert second.failed > 0
    assert any("failed 2 times" in str(e) and service.url in str(e) for e in second.errors)
    service.mode = "ok"  # (the query is embedded by the service too)
    hits = ds.search(QUERY, table="t", top_k=3).hits
    assert hits and all("Tony_Blair" in h.uri for h in hits)  # the faces stored before are all there
    third = ds.index(str(DATA / "gallery"), table="t", model="svc")  # the failed photos again, and only them
    assert third.failed == 0 and third.faces > 0


def test_sql_create_model_remote_with_connection(tmp_path: Path, service: Service) -> None:
    ds = lookalike.open(tmp_path / "s.duckdb")
    with contextlib.chdir(REPO):
        results = ds.sql(
            f"""CREATE SCHEMA fs;
            CREATE MODEL fs.remote REMOTE WITH CONNECTION `us.face_conn`
              OPTIONS (ENDPOINT = '{service.url}', TIMEOUT_SECONDS = 20, RETRIES = 2);
            CREATE MODEL fs.builtin OPTIONS (ENDPOINT = 'default');
            CREATE EXTERNAL TABLE fs.photos OPTIONS (object_metadata = 'SIMPLE',
              uris = ['tests/data/gallery/Tony_Blair/*']);
            CREATE TABLE fs.a AS SELECT * FROM ML.GENERATE_EMBEDDING(MODEL fs.remote, TABLE fs.photos);
            CREATE TABLE fs.b AS SELECT * FROM ML.GENERATE_EMBEDDING(MODEL fs.builtin, TABLE fs.photos);
            SELECT a.uri, ML.DISTANCE(a.ml_generate_embedding_result, b.ml_generate_embedding_result, 'COSINE') AS d
            FROM fs.a a JOIN fs.b b USING (uri)"""
        )
    rows = results[-1].to_pylist()
    assert len(rows) == 3 and all(r["d"] < 1e-5 for r in rows)
    card = get_card("fs.remote")
    assert "us.face_conn" in card.weights and card.runtime == "remote"
    with pytest.raises(Exception, match="unknown option MEAN for a remote model"):
        ds.sql(f"CREATE OR REPLACE MODEL fs.r2 OPTIONS (ENDPOINT = '{service.url}', MEAN = 1)")
