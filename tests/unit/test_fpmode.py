"""Denormal floats are flushed to zero inside model calls, and only there (see lookalike.faces.fpmode).

The speed effect shows only on CPUs with a denormal penalty (many Intel ones); the benchmarks measure it. These
tests check the mechanism: the CPU's flush mode is on inside the block, off again after it, and every
onnxruntime session asks for it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.faces import fpmode, registry
from lookalike.faces.detectors import get_detector, nearest_to_centre
from lookalike.faces.runtime import DENORMAL_AS_ZERO

PHOTO = Path(__file__).resolve().parents[1] / "data" / "gallery" / "Tony_Blair" / "Tony_Blair_0001.jpg"
TINY = np.array([1e-39], dtype=np.float32)  # a float32 denormal

needs_mode = pytest.mark.skipif(not fpmode.supported(), reason="no flush-to-zero control on this CPU/OS")


@needs_mode
def test_flush_is_on_inside_the_block_and_restored_after() -> None:
    assert not fpmode.flushing()
    assert TINY[0] * np.float32(1.0) != 0  # IEEE gradual underflow outside
    with fpmode.flush_denormals():
        assert fpmode.flushing()
        assert TINY[0] * np.float32(1.0) == 0
        with fpmode.flush_denormals():  # nesting keeps it on
            assert fpmode.flushing()
        assert fpmode.flushing()
    assert not fpmode.flushing()
    assert TINY[0] * np.float32(1.0) != 0


@needs_mode
def test_mode_is_per_thread_and_restored_after_an_error() -> None:
    seen: list[bool] = []
    with fpmode.flush_denormals():
        worker = threading.Thread(target=lambda: seen.append(fpmode.flushing()))
        worker.start()
        worker.join()
    assert seen == [True]  # a thread created inside the block inherits the mode (how LiteRT's pool gets it)
    with pytest.raises(RuntimeError), fpmode.flush_denormals():
        raise RuntimeError("boom")
    assert not fpmode.flushing()


def test_every_onnxruntime_session_flushes_denormals() -> None:
    detector = get_detector()
    model = registry.get_model("fr-feature")
    sessions = [detector._pnet, detector._rnet, detector._onet, model._session]  # type: ignore[attr-defined]
    for session in sessions:
        assert session.get_session_options().get_session_config_entry(DENORMAL_AS_ZERO) == "1"


@needs_mode
def test_model_calls_leave_the_callers_mode_as_it_was() -> None:
    with Image.open(PHOTO) as im:
        image = np.asarray(im.convert("RGB"))
    model = registry.get_model("fr-feature")
    faces = model.detect(image)
    assert not fpmode.flushing()
    face = nearest_to_centre(faces, image.shape)
    assert face is not None
    vector = model.embed([(image, face)])
    assert vector.shape == (1, 512) and not fpmode.flushing()
