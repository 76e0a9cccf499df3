"""SCRFD, the face detector of insightface's model packs (``det_10g.onnx``, ``det_2.5g.onnx``, ...).

A user who brings an insightface-style pack (``buffalo_l``, ``antelopev2``) gets the pack's own detector, not
Lookalike's MTCNN. SCRFD is an anchor-free one-stage detector; its ONNX graph gives, for each feature-map stride
(8, 16, 32, and 64, 128 in the five-level variants), a score per anchor, four distances from the anchor centre to
the box edges, and (``*kps`` variants) ten offsets for the five landmarks, all in units of the stride. Decoding,
as insightface's ``scrfd.py`` does it (read to learn; this is our own code):

- the photo is scaled to fit the network's input (640 x 640 when the graph leaves it open), kept at its aspect
  ratio, and placed in the top-left corner of a black canvas; pixels are RGB ``(x - 127.5) / 128``, NCHW;
- anchor centres are ``(col, row) * stride`` for every cell of a ``(H / stride) x (W / stride)`` map, repeated
  for the anchors per cell (2 for the three-level graphs, 1 for the five-level ones);
- box = centre -/+ distances * stride; landmark ``i`` = centre + offset ``i`` * stride;
- anchors scoring at least the threshold (0.5) are kept, then non-maximum suppression at IoU 0.4, and the
  boxes and landmarks are scaled back to the photo.

The outputs come in insightface's order: the scores of every level, then the boxes, then the landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.errors import ModelError
from lookalike.faces.detectors import _nms
from lookalike.faces.runtime import flush_denormals, ort_session
from lookalike.faces.types import DetectedFace

#: Output counts of SCRFD graphs: (levels, anchors per cell, landmarks?) by number of outputs.
LAYOUTS: dict[int, tuple[tuple[int, ...], int, bool]] = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}
#: The input side used when the graph's is dynamic (insightface's default ``det_size``).
DEFAULT_SIZE = 640
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.4


def looks_like_scrfd(session: object) -> bool:
    """Whether an onnxruntime session has SCRFD's signature: one image input and 6, 9, 10 or 15 outputs."""
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    outputs = session.get_outputs()  # type: ignore[attr-defined]
    return len(inputs) == 1 and len(inputs[0].shape) == 4 and len(outputs) in LAYOUTS


def anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """``(height * width * anchors, 2)`` anchor centres ``(x, y)`` in input pixels, row by row."""
    rows, cols = np.mgrid[:height, :width]
    centres = np.stack([cols, rows], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, anchors, axis=0) if anchors > 1 else centres


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression at ``iou``, best score first (MTCNN's)."""
    return _nms(boxes, scores, iou)


def decode(
    outputs: list[np.ndarray],
    input_hw: tuple[int, int],
    *,
    threshold: float = SCORE_THRESHOLD,
    iou: float = NMS_IOU,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(boxes (n, 4), scores (n,), landmarks (n, 5, 2) or None)`` in input pixels, after NMS, best first."""
    if len(outputs) not in LAYOUTS:
        raise ModelError(f"an SCRFD graph has 6, 9, 10 or 15 outputs, this one has {len(outputs)}")
    strides, anchors, with_kps = LAYOUTS[len(outputs)]
    levels = len(strides)
    h_in, w_in = input_hw
    all_boxes, all_scores, all_kps = [], [], []
    for i, stride in enumerate(strides):
        h, w = h_in // stride, w_in // stride
        count = h * w * anchors
        scores = np.asarray(outputs[i], np.float32).reshape(-1)
        dist = np.asarray(outputs[i + levels], np.float32).reshape(-1, 4)
        if scores.size != count or dist.shape[0] != count:
            raise ModelError(
                f"SCRFD output {i} has {scores.size} scores for a {h}x{w} map at stride {stride} "
                f"with {anchors} anchors (expected {count}): not the layout this decoder knows"
            )
        hit = np.flatnonzero(scores >= threshold)
        if hit.size == 0:
            continue
        centres = anchor_centres(h, w, stride, anchors)[hit]
        d = dist[hit] * stride
        all_boxes.append(np.concatenate([centres - d[:, :2], centres + d[:, 2:]], axis=1))
        all_scores.append(scores[hit])
        if with_kps:
            offsets = np.asarray(outputs[i + 2 * levels], np.float32).reshape(-1, 10)[hit] * stride
            all_kps.append(offsets.reshape(-1, 5, 2) + centres[:, None, :])
    if not all_boxes:
        empty = np.zeros((0, 4), np.float32)
        return empty, np.zeros(0, np.float32), (np.zeros((0, 5, 2), np.float32) if with_kps else None)
    boxes = np.concatenate(all_boxes)
    scores = np.concatenate(all_scores)
    keep = nms(boxes, scores, iou)
    kps = np.concatenate(all_kps)[keep] if with_kps else None
    return boxes[keep], scores[keep], kps


class ScrfdDetector:
    """The :class:`~lookalike.faces.types.Detector` of an SCRFD ONNX file (a model pack's ``det_*.onnx``)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self._session = ort_session(path, threads)
        if not looks_like_scrfd(self._session):
            raise ModelError(f"{Path(path).name} does not look like an SCRFD detector (one input; 6-15 outputs)")
        self._input = self._session.get_inputs()[0].name
        shape = self._session.get_inputs()[0].shape
        fixed = all(isinstance(v, int) and v > 0 for v in shape[2:4])
        self.input_hw = (int(shape[2]), int(shape[3])) if fixed else (DEFAULT_SIZE, DEFAULT_SIZE)
        if not LAYOUTS[len(self._session.get_outputs())][2]:
            raise ModelError(
                f"{Path(path).name} is an SCRFD without landmarks; faces need five landmarks to be aligned",
                hint="use a *kps detector (det_10g.onnx, det_2.5g.onnx and the packs' own have them)",
            )

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an RGB uint8 image, best score first."""
        import cv2

        h_in, w_in = self.input_hw
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            return []
        scale = min(h_in / h, w_in / w)
        nh, nw = max(1, int(h * scale)), max(1, int(w * scale))
        canvas = np.zeros((h_in, w_in, 3), np.float32)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]
        with flush_denormals():
            outputs = self._session.run(None, {self._input: np.ascontiguousarray(blob, np.float32)})
        boxes, scores, kps = decode(outputs, self.input_hw)
        sy, sx = nh / h, nw / w  # int() above: the two axes may scale a hair apart
        out = []
        for box, score, points in zip(boxes, scores, kps if kps is not None else [None] * len(boxes), strict=True):
            x1, y1, x2, y2 = (float(box[0] / sx), float(box[1] / sy), float(box[2] / sx), float(box[3] / sy))
            lm = np.asarray(points, np.float32) / np.array([sx, sy], np.float32)
            out.append(DetectedFace((x1, y1, x2, y2), lm, float(min(1.0, max(0.0, score)))))
        return out
