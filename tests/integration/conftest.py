"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A private copy of the bundled gallery (12 people x 3 photos) that tests may change."""
    dst = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", dst)
    return dst
