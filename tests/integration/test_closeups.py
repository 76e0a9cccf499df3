"""Photos that are themselves face crops: found by the padded retry, or taken whole with --whole-photo-face."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.errors import NoFaceError
from lookalike.faces import detectors

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]


def _closeup(path: Path, keep: float = 0.8) -> np.ndarray:
    """The photo cropped to the central ``keep`` of its face box: the face cut at every edge."""
    img = np.asarray(Image.open(path).convert("RGB"))
    x0, y0, x1, y1 = detectors.get_detector().detect(img)[0].bbox
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * keep / 2, (y1 - y0) * keep / 2
    return np.ascontiguousarray(img[int(cy - hh) : int(cy + hh), int(cx - hw) : int(cx + hw)])


@pytest.fixture()
def closeups(tmp_path: Path) -> Path:
    folder = tmp_path / "closeups"
    folder.mkdir()
    for name in ("Tony_Blair/Tony_Blair_0001.jpg", "Ariel_Sharon/Ariel_Sharon_0001.jpg"):
        Image.fromarray(_closeup(DATA / "gallery" / name)).save(folder / Path(name).name, quality=95)
    rng = np.random.default_rng(0)
    texture = (rng.random((90, 70, 3)) * 60 + 100).astype(np.uint8)  # no face in it
    Image.fromarray(texture).save(folder / "texture.png")
    return folder


def test_padding_finds_faces_cut_at_the_edges(closeups: Path) -> None:
    crop = np.asarray(Image.open(closeups / "Tony_Blair_0001.jpg"))
    no_pad = detectors.MTCNNDetector(dataclasses.replace(detectors.MTCNNOptions(), retry_pad=0, retry_pad_wide=0))
    assert no_pad.detect(crop) == []  # the cascade alone misses it
    (face,) = detectors.get_detector().detect(crop)
    h, w = crop.shape[:2]
    assert 0 <= face.bbox[0] < face.bbox[2] <= w and 0 <= face.bbox[1] < face.bbox[3] <= h
    left_eye, right_eye = face.landmarks[0], face.landmarks[1]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < h / 5


def test_whole_photo_face_indexes_and_searches_crops(closeups: Path, tmp_path: Path) -> None:
    ds = lookalike.open(tmp_path / "c.duckdb")
    plain = ds.index(str(closeups), table="plain")
    assert (plain.faces, plain.no_face) == (2, 1)  # the crops are found; the texture has no face
    whole = ds.index(str(closeups), table="whole", whole_photo_face=True)
    assert (whole.faces, whole.no_face) == (3, 0)
    ds.index(str(DATA / "gallery"))
    query = tmp_path / "query.png"
    Image.fromarray(_closeup(DATA / "queries" / "Serena_Williams_0010.jpg", 0.7)).save(query)
    with pytest.raises(NoFaceError):
        ds.search(str(closeups / "texture.png"))
    found = ds.search(str(query), top_k=3, whole_photo_face=True)
    assert "Serena_Williams" in found.hits[0].uri
    args = ["search", str(query), "--dataset", ds.path, "--whole-photo-face", "--json", "--top-k", "1"]
    cli = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert "Serena_Williams" in json.loads(cli.stdout)[0]["uri"]
