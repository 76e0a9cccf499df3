"""The REST API fuzzed from its own OpenAPI description (schemathesis): never a 500, always the JSON error shape.

Bounded: a few tens of generated requests per operation. Index jobs are refused (no allowed roots), so the
fuzzing starts none.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from lookalike.server import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def app(indexed_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    copy = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    shutil.copy(indexed_dataset, copy)
    application = create_app(copy, allow_sources=[], check_host=False)  # the Host check has its own tests
    with TestClient(application):  # runs the app's startup and shutdown
        yield application


def _check(resp: Any) -> None:
    assert resp.status_code < 500 or resp.status_code == 503, resp.text
    if resp.status_code >= 400:
        body = resp.json()
        assert set(body) == {"error"}, body
        assert {"code", "message", "hint", "request_id"} <= set(body["error"]), body
        assert body["error"]["code"] and body["error"]["message"]


def test_no_server_errors_and_one_error_shape(app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        strategy = operation.as_strategy()

        @given(case=strategy)
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def fuzz(case: Any) -> None:
            _check(case.call())

        fuzz()
