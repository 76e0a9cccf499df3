"""The web page in headless Debian Chromium (Playwright): upload a photo, see the right person first.

Chromium is not optional: without ``/usr/bin/chromium`` this test fails (``.ci/run`` installs it with apt).
Screenshots are saved under ``artifacts/`` at the repository root.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from _support import ARTIFACTS, LiveServer, person_of, query_photo, start_server, stop_server


def _upload_and_wait(page: Any, url: str | None, person: str) -> None:
    """Open ``url`` (unless None: stay), choose the person's query photo, wait for every match to show."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    if url is not None:
        page.goto(url)
    page.wait_for_selector("#table option[value='faces']", state="attached")
    page.set_input_files("#file", str(query_photo(person)))
    page.wait_for_selector(".card", timeout=30_000)
    page.wait_for_selector(".frame .box.selected")
    # every thumbnail loaded (served by the API, not broken images). Polled from here: the page's
    # Content-Security-Policy forbids the eval that page.wait_for_function relies on.
    loaded = "() => Array.from(document.querySelectorAll('.card img')).every(i => i.complete && i.naturalWidth > 0)"
    deadline = time.monotonic() + 30
    while not page.evaluate(loaded):
        assert time.monotonic() < deadline, "thumbnails did not load"
        time.sleep(0.1)
    assert not errors, f"errors in the page: {errors}"


def test_page_finds_the_right_person(browser: Any, live_server: LiveServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    try:
        _upload_and_wait(page, live_server.url + "/", "George_W_Bush")
        cards = page.locator(".card")
        assert cards.count() == 10  # the default number of matches
        first = cards.first
        assert person_of(first.get_attribute("data-uri")) == "George_W_Bush"
        assert first.locator(".badge").inner_text() == "same person"
        assert "0." in first.locator(".distance").inner_text()
        href = first.locator("a.full").get_attribute("href")
        assert re.fullmatch(r"/v1/faces/\d+/image\?table=faces", href), href
        assert page.locator(".frame .box").count() == 1
        assert "1 face found" in page.locator("#status").inner_text()
        page.screenshot(path=str(ARTIFACTS / "serve-search.png"), full_page=True)

        full = page.request.get(live_server.url + href)
        assert full.status == 200 and full.headers["content-type"] == "image/jpeg"
    finally:
        page.close()


def test_page_at_phone_width(browser: Any, live_server: LiveServer) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True)
    try:
        _upload_and_wait(page, live_server.url + "/", "Hugo_Chavez")
        assert person_of(page.locator(".card").first.get_attribute("data-uri")) == "Hugo_Chavez"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width} px wide at a 375 px viewport"
        page.screenshot(path=str(ARTIFACTS / "serve-search-phone.png"), full_page=True)
    finally:
        page.close()


def test_page_with_a_token(browser: Any, indexed_dataset: Path, tmp_path: Path) -> None:
    """Against a token-protected server the page asks for the token, then works, thumbnails included."""
    dataset = tmp_path / "guarded.duckdb"
    shutil.copy(indexed_dataset, dataset)
    server = start_server(dataset, tmp_path / "serve.log", token="page-token-123")
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#token:focus")  # the first API call got 401: the token field opened
        assert "token" in page.locator("#status").inner_text().lower()
        page.fill("#token", "page-token-123")
        page.click("#token-form button")
        _upload_and_wait(page, None, "Junichiro_Koizumi")
        assert person_of(page.locator(".card").first.get_attribute("data-uri")) == "Junichiro_Koizumi"
    finally:
        page.close()
        stop_server(server)


def test_page_cancels_an_index_job(browser: Any, tmp_path: Path) -> None:
    """The page's Cancel button stops a running index job; what it committed stays."""
    photos = tmp_path / "photos"
    for copy in range(6):
        shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "gallery", photos / f"copy{copy}")
    server = start_server(tmp_path / "cancel.duckdb", tmp_path / "serve.log", allow_sources=[str(tmp_path)])
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    try:
        page.goto(server.url + "/")
        page.fill("#source", str(photos))
        page.click("#index-button")
        page.wait_for_selector("#cancel-job:not([hidden])")
        deadline = time.monotonic() + 60
        while not re.search(r"[1-9]\d* / 216 photos", page.locator("#job-text").inner_text()):
            assert time.monotonic() < deadline, page.locator("#job-text").inner_text()
            time.sleep(0.05)
        page.click("#cancel-job")
        deadline = time.monotonic() + 60
        while "Cancelled" not in page.locator("#job-text").inner_text():
            assert time.monotonic() < deadline, page.locator("#job-text").inner_text()
            time.sleep(0.1)
        assert page.locator("#cancel-job").is_hidden()
        status, _, body = server.request("/v1/jobs")
        (job,) = json.loads(body)["jobs"]
        assert status == 200 and job["status"] == "cancelled" and 0 < job["done"] < 216
    finally:
        page.close()
        stop_server(server)
