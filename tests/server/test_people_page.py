"""The web page's People view in headless Debian Chromium (Playwright): the grid of persons, a person's faces,
rename, merge, move a face out, forget after the in-page confirmation, and the person's name on search results.

Every step is checked against the API too. Screenshots are saved under ``artifacts/`` at the repository root.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import ARTIFACTS, LiveServer, person_of, query_photo, start_server, stop_server

import lookalike


@pytest.fixture()
def people_server(indexed_dataset: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """``lookalike serve`` on a copy of the gallery that is grouped into persons."""
    dataset = tmp_path / "people.duckdb"
    shutil.copy(indexed_dataset, dataset)
    lookalike.open(dataset).people.cluster()
    server = start_server(dataset, tmp_path / "serve.log")
    yield server
    stop_server(server)


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` from here (the page's Content-Security-Policy forbids the eval of wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _get(server: LiveServer, path: str) -> tuple[int, Any]:
    status, _, raw = server.request(path)
    return status, json.loads(raw)


def _thumbnails_loaded(page: Any, selector: str) -> bool:
    return bool(
        page.evaluate(
            "(sel) => Array.from(document.querySelectorAll(sel)).every(i => i.complete && i.naturalWidth > 0)",
            selector,
        )
    )


def test_people_view(browser: Any, people_server: LiveServer) -> None:
    server = people_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#table option[value='faces']", state="attached")
        assert page.locator("#people-view").is_hidden()

        # the grid: every person with its feature face, name and face count
        page.click("#tab-people")
        page.wait_for_selector(".person-card")
        listed = _get(server, "/v1/people")[1]["people"]
        cards = page.locator(".person-card")
        assert cards.count() == len(listed) >= 8
        assert page.locator("#search-view").is_hidden()
        _until(lambda: _thumbnails_loaded(page, ".person-card img"), "the persons' thumbnails")
        first = listed[0]
        assert cards.first.get_attribute("data-person-id") == str(first["person_id"])
        assert cards.first.locator(".person-label").inner_text() == f"Person {first['person_id']}"
        assert cards.first.locator(".person-count").inner_text() == f"{first['faces']} faces"
        page.screenshot(path=str(ARTIFACTS / "serve-people.png"), full_page=True)

        # open a person: all their faces; rename it
        pid = first["person_id"]
        gallery_person = person_of(_get(server, f"/v1/people/{pid}")[1]["face_list"][0]["uri"])
        cards.first.locator(".person-open").click()
        page.wait_for_selector("#person-panel:not([hidden])")
        assert page.locator("#people-panel").is_hidden()
        assert page.locator(".face-tile").count() == first["faces"]
        _until(lambda: _thumbnails_loaded(page, ".face-tile img"), "the faces' thumbnails")
        page.fill("#person-name", "Test Person")
        page.click("#rename-form button[type=submit]")
        _until(lambda: "Test Person" in page.locator("#person-title").inner_text(), "the new name")
        assert _get(server, f"/v1/people/{pid}")[1]["name"] == "Test Person"

        # move one face out, to a new person
        moved = int(page.locator(".face-tile").first.get_attribute("data-face-id"))
        page.locator(".face-tile .pick").first.check()
        assert page.locator("#move-new").is_enabled()
        page.click("#move-new")
        _until(lambda: page.locator(".face-tile").count() == first["faces"] - 1, "the face to leave")
        after_move = _get(server, "/v1/people")[1]["people"]
        assert len(after_move) == len(listed) + 1
        new_person = next(p for p in after_move if p["person_id"] not in {q["person_id"] for q in listed})
        assert new_person["faces"] == 1 and new_person["feature_face_id"] == moved
        page.screenshot(path=str(ARTIFACTS / "serve-person.png"), full_page=True)

        # back to the grid; merge the new person back into the renamed one
        page.click("#person-back")
        _until(lambda: page.locator(".person-card").count() == len(listed) + 1, "the grid with the new person")
        assert page.locator("#merge-selected").is_disabled()
        page.locator(f".person-card[data-person-id='{pid}'] .pick").check()
        page.locator(f".person-card[data-person-id='{new_person['person_id']}'] .pick").check()
        assert page.locator("#merge-selected").inner_text() == "Merge 2 selected"
        page.click("#merge-selected")
        _until(lambda: page.locator(".person-card").count() == len(listed), "the merged grid")
        merged = _get(server, f"/v1/people/{pid}")[1]
        assert merged["faces"] == first["faces"] and merged["name"] == "Test Person"
        assert _get(server, f"/v1/people/{new_person['person_id']}")[0] == 404

        # forget a person: nothing happens until the in-page dialog is confirmed
        victim = listed[-1]
        page.locator(f".person-card[data-person-id='{victim['person_id']}'] .person-open").click()
        page.wait_for_selector("#person-panel:not([hidden])")
        page.click("#forget-person")
        page.wait_for_selector("#confirm-dialog[open]")
        assert "Forget" in page.locator("#confirm-title").inner_text()
        page.screenshot(path=str(ARTIFACTS / "serve-people-forget.png"))
        page.click("#confirm-cancel")
        page.wait_for_selector("#confirm-dialog", state="hidden")
        assert _get(server, f"/v1/people/{victim['person_id']}")[0] == 200
        page.click("#forget-person")
        page.wait_for_selector("#confirm-dialog[open]")
        page.click("#confirm-ok")
        _until(lambda: page.locator("#people-panel").is_visible(), "the grid after forgetting")
        _until(lambda: page.locator(".person-card").count() == len(listed) - 1, "the person to go")
        assert "Forgot" in page.locator("#people-status").inner_text()
        assert _get(server, f"/v1/people/{victim['person_id']}")[0] == 404

        # search results name the person
        page.click("#tab-search")
        page.set_input_files("#file", str(query_photo(gallery_person)))
        page.wait_for_selector(".card .person-name", timeout=30_000)
        assert page.locator(".card").first.locator(".person-name").inner_text() == "Test Person"
        page.screenshot(path=str(ARTIFACTS / "serve-search-people.png"), full_page=True)

        # a click on the name opens the person
        page.locator(".card").first.locator(".person-name").click()
        page.wait_for_selector("#person-panel:not([hidden])")
        _until(lambda: "Test Person" in page.locator("#person-title").inner_text(), "the person from a search")

        # at phone width nothing overflows
        page.set_viewport_size({"width": 375, "height": 740})
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.click("#person-back")
        page.wait_for_selector(".person-card")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert not errors, f"errors in the page: {errors}"
    finally:
        page.close()
