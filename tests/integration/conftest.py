"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A private copy of the bundled gallery (12 people x 3 photos) that tests may change."""
    dst = tmp_path / "photos"
    shutil.copytree(DATA / "gallery", dst)
    return dst


@pytest.fixture()
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder for users' models (``LOOKALIKE_CONFIG_DIR``); the models a test added are unregistered after
    it, so the next test starts with none in this process."""
    from lookalike.faces import user_models
    from lookalike.faces.registry import unregister

    folder = tmp_path / "config"
    monkeypatch.setenv("LOOKALIKE_CONFIG_DIR", str(folder))
    yield folder
    for name in list(user_models._REGISTERED):
        unregister(name)
    user_models._REGISTERED.clear()
