"""Fixtures of the server tests: an indexed dataset, TestClients, and a real uvicorn on 127.0.0.1.

The dataset is the bundled gallery (12 people x 3 photos) indexed once per session; tests that change a
dataset work on a copy. ``live_server`` runs ``python -m lookalike.cli serve`` in a child process, exactly as
a user would start it, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import BASE_URL, GALLERY, LiveServer, start_server, stop_server

import lookalike
from lookalike.server import create_app

with warnings.catch_warnings():  # starlette warns about httpx at import time; the TestClient works with it
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def indexed_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset file with the gallery indexed into the table ``faces``, not yet grouped into persons (treat as
    read-only; the people tests group a copy)."""
    path = tmp_path_factory.mktemp("server-ds") / "gallery.duckdb"
    report = lookalike.open(path).index(str(GALLERY), cluster=False)
    assert (report.added, report.failed) == (36, 0)
    return path


@pytest.fixture()
def dataset_copy(indexed_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed dataset, for tests that write to it."""
    dst = tmp_path / "copy.duckdb"
    shutil.copy(indexed_dataset, dst)
    return dst


@pytest.fixture(scope="module")
def client(indexed_dataset: Path) -> Iterator[TestClient]:
    """A TestClient on the indexed dataset, with no token (loopback use)."""
    with TestClient(create_app(indexed_dataset), base_url=BASE_URL) as c:
        yield c


@pytest.fixture()
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build a TestClient for ``create_app(path, **settings)``; closed at the end of the test."""
    made: list[TestClient] = []

    def make(path: Path, **settings: object) -> TestClient:
        c = TestClient(create_app(path, **settings), base_url=BASE_URL)  # type: ignore[arg-type]
        c.__enter__()
        made.append(c)
        return c

    yield make
    for c in made:
        c.__exit__(None, None, None)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright (the page tests; a missing Chromium fails them)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium with 'apt-get install -y chromium'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package 'playwright' is missing: pip install -e '.[test]'")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def live_server(indexed_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real ``lookalike serve`` (uvicorn) on 127.0.0.1, serving a copy of the indexed dataset."""
    root = tmp_path_factory.mktemp("live")
    dataset = root / "live.duckdb"
    shutil.copy(indexed_dataset, dataset)
    server = start_server(dataset, root / "serve.log")
    yield server
    stop_server(server)
