"""SCRFD decoding (:mod:`lookalike.faces.scrfd`) on hand-made network outputs, checked against hand-computed
boxes and landmarks (no SCRFD weights can be shipped or downloaded here; the pack tests run a graph with
SCRFD's real output signature)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import ModelError
from lookalike.faces import scrfd


def _empty(size: int = 640, layout: int = 9) -> list[np.ndarray]:
    strides, anchors, kps = scrfd.LAYOUTS[layout]
    counts = [(size // s) ** 2 * anchors for s in strides]
    out = [np.zeros((c, 1), np.float32) for c in counts]
    out += [np.zeros((c, 4), np.float32) for c in counts]
    if kps:
        out += [np.zeros((c, 10), np.float32) for c in counts]
    return out


def _put(out: list[np.ndarray], level: int, row: int, col: int, anchor: int, score: float, dist, kps, size=640):
    strides, anchors, _ = scrfd.LAYOUTS[len(out)]
    levels = len(strides)
    width = size // strides[level]
    i = (row * width + col) * anchors + anchor
    out[level][i, 0] = score
    out[level + levels][i] = dist
    if len(out) in (9, 15):
        out[level + 2 * levels][i] = kps


def test_anchor_centres_are_cells_times_stride_repeated_per_anchor() -> None:
    c = scrfd.anchor_centres(2, 3, 8, 2)
    assert c.shape == (12, 2)
    assert c[:2].tolist() == [[0, 0], [0, 0]]
    assert c[2].tolist() == [8, 0] and c[6].tolist() == [0, 8] and c[-1].tolist() == [16, 8]


def test_a_face_decodes_to_its_box_and_landmarks_and_a_weaker_overlap_is_suppressed() -> None:
    out = _empty()
    kps = [-2.0, -1.0, 2.0, -1.0, 0.0, 1.0, -1.5, 3.0, 1.5, 3.0]
    _put(out, 0, row=30, col=40, anchor=1, score=0.9, dist=[5, 6, 5, 7], kps=kps)  # centre (320, 240), stride 8
    _put(out, 1, row=15, col=20, anchor=0, score=0.7, dist=[2.5, 3, 2.5, 3.5], kps=[0] * 10)  # same face, stride 16
    _put(out, 2, row=2, col=3, anchor=0, score=0.6, dist=[1, 1, 1, 1], kps=[0] * 10)  # another face, stride 32
    _put(out, 0, row=70, col=70, anchor=0, score=0.3, dist=[1, 1, 1, 1], kps=[0] * 10)  # under the threshold
    boxes, scores, lm = scrfd.decode(out, (640, 640))
    assert scores.tolist() == pytest.approx([0.9, 0.6])
    assert boxes[0].tolist() == pytest.approx([280, 192, 360, 296])
    assert lm is not None
    assert np.allclose(lm[0], [[304, 232], [336, 232], [320, 248], [308, 264], [332, 264]])
    assert boxes[1].tolist() == pytest.approx([64, 32, 128, 96])


def test_five_level_graphs_and_graphs_with_a_batch_dimension() -> None:
    out = _empty(layout=15)
    _put(out, 4, row=2, col=1, anchor=0, score=0.8, dist=[0.5, 0.5, 0.5, 0.5], kps=[0] * 10)  # stride 128
    out = [o[None] for o in out]  # (1, n, c), as some exports have it
    boxes, _scores, lm = scrfd.decode(out, (640, 640))
    assert boxes.tolist() == [[64.0, 192.0, 192.0, 320.0]] and lm is not None and lm.shape == (1, 5, 2)


def test_nothing_above_the_threshold_gives_no_face() -> None:
    boxes, scores, lm = scrfd.decode(_empty(), (640, 640))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and lm is not None and lm.shape == (0, 5, 2)


def test_outputs_that_do_not_fit_the_input_size_are_refused() -> None:
    with pytest.raises(ModelError, match="expected"):
        scrfd.decode(_empty(size=320), (640, 640))
    with pytest.raises(ModelError, match="6, 9, 10 or 15"):
        scrfd.decode(_empty()[:7], (640, 640))


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert scrfd.nms(boxes, np.array([0.5, 0.9, 0.4], np.float32)).tolist() == [1, 2]
