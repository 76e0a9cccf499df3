"""Accuracy experiments on LFW pairs: landmark sources, flip TTA, fusions (a record of what was tried).

Each variant embeds the images of ``pairs.txt`` (7,701 images) and reports 10-fold accuracy; embeddings
are cached in ``benchmarks/cache/emb-exp-<variant>.npz``. Not part of the package: it reaches into model
internals to swap the landmark source. Results are summarised in ``benchmarks/README-faces.md``.

    python benchmarks/lfw_experiments.py mtcnn onet-refine frlm-frdetect
    python benchmarks/lfw_experiments.py --fuse fr-feature mobilefacenet
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from lfw_common import (
    Detections,
    cosine_distance_pairs,
    data_dir,
    detect_images,
    embed_images,
    log,
    read_pairs,
    tar_at_far,
    ten_fold,
)
from lookalike.faces.align import align_faces
from lookalike.faces.types import DetectedFace
from machine import print_banner

FACEPLUGIN = "/tmp/npm/faceplugin-face-recognition-js-0.0.1/package/model"

Items = list[tuple[np.ndarray, DetectedFace]]


def _sess(path: str) -> object:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


class FrLandmark:
    """faceplugin's 68-point landmark net: 64x64 grayscale crop of a square face box, / 256."""

    def __init__(self) -> None:
        self.s = _sess(f"{FACEPLUGIN}/fr_landmark.onnx")

    def points68(self, img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        x1, y1, x2, y2 = (round(v) for v in box)
        bw, bh = x2 - x1, y2 - y1
        # shift the box inside the image, as the JavaScript does
        x1 = min(max(x1, 0), max(w - 1 - bw, 0))
        y1 = min(max(y1, 0), max(h - 1 - bh, 0))
        crop = img[y1 : y1 + bh, x1 : x1 + bw]
        g = cv2.cvtColor(cv2.resize(crop, (64, 64)), cv2.COLOR_RGB2GRAY).astype(np.float32) / 256.0
        out = self.s.run(None, {"input": g[None, None]})[0].reshape(68, 2)  # type: ignore[attr-defined]
        return out * [bw, bh] + [x1, y1]


def five_from_68(p: np.ndarray) -> np.ndarray:
    """faceplugin's mapping: eyelid-point means for the eyes, nose tip, mouth corner means."""
    return np.stack(
        [
            p[[37, 38, 40, 41]].mean(0),
            p[[43, 44, 46, 47]].mean(0),
            p[30],
            (p[48] + p[60]) / 2,
            (p[54] + p[64]) / 2,
        ]
    ).astype(np.float32)


class FrDetect:
    """faceplugin's 320x240 box detector (boxes only), square boxes of side = box height."""

    def __init__(self) -> None:
        self.s = _sess(f"{FACEPLUGIN}/fr_detect.onnx")

    def boxes(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        h, w = img.shape[:2]
        x = (cv2.resize(img, (320, 240)).astype(np.float32) - 127.0) / 128.0
        scores, boxes = self.s.run(None, {"input": x.transpose(2, 0, 1)[None]})  # type: ignore[attr-defined]
        sc = scores[0, :, 1]
        b = boxes[0] * [w, h, w, h]
        keep = sc >= 0.65
        return b[keep], sc[keep]

    def square_near(self, img: np.ndarray, face: DetectedFace) -> tuple[float, float, float, float] | None:
        b, sc = self.boxes(img)
        if len(b) == 0:
            return None
        fx1, fy1, fx2, fy2 = face.bbox
        ix = np.clip(np.minimum(b[:, 2], fx2) - np.maximum(b[:, 0], fx1), 0, None)
        iy = np.clip(np.minimum(b[:, 3], fy2) - np.maximum(b[:, 1], fy1), 0, None)
        inter = ix * iy
        iou = inter / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (fx2 - fx1) * (fy2 - fy1) - inter)
        k = int(np.argmax(iou * sc))
        if iou[k] < 0.3:
            return None
        x1, y1, x2, y2 = b[k]
        side = y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def onet_refine(det: object, img: np.ndarray, face: DetectedFace) -> np.ndarray:
    """Re-run MTCNN's O-Net on the final (regressed, squared) box: landmarks relative to a tighter box."""
    from lookalike.faces.detectors import _as_rgb, _square

    x1, y1, x2, y2 = face.bbox
    box = _square(np.array([[x1 + 1, y1 + 1, x2, y2, face.score]]))
    _, pts = det._stage3(_as_rgb(img), box, 0.0)  # type: ignore[attr-defined]
    return pts[0].astype(np.float32) if len(pts) else face.landmarks


def landmark_variant(name: str) -> Callable[[np.ndarray, DetectedFace], np.ndarray]:
    if name == "mtcnn":
        return lambda img, f: f.landmarks
    if name == "onet-refine":
        from lookalike.faces.detectors import get_detector

        det = get_detector()
        return lambda img, f: onet_refine(det, img, f)
    if name.startswith("frlm"):
        lm = FrLandmark()
        if name == "frlm-frdetect":
            fd = FrDetect()

            def fn(img: np.ndarray, f: DetectedFace) -> np.ndarray:
                box = fd.square_near(img, f)
                return f.landmarks if box is None else five_from_68(lm.points68(img, box))

            return fn
        if name == "frlm-mtcnnbox":

            def fn2(img: np.ndarray, f: DetectedFace) -> np.ndarray:
                x1, y1, x2, y2 = f.bbox
                side = y2 - y1
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                return five_from_68(lm.points68(img, (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)))

            return fn2
    if name in ("dlib68", "dlib5"):
        import dlib
        import face_recognition_models as frm

        from lookalike.faces.models import dlib_box_from_landmarks

        sp = dlib.shape_predictor(frm.pose_predictor_model_location())

        def fn3(img: np.ndarray, f: DetectedFace) -> np.ndarray:
            left, top, right, bottom = dlib_box_from_landmarks(f.landmarks)
            s = sp(
                np.ascontiguousarray(img),
                dlib.rectangle(round(left), round(top), round(right), round(bottom)),
            )
            p = np.array([[q.x, q.y] for q in s.parts()], dtype=np.float64)
            five = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
            return five.astype(np.float32)

        return fn3
    if name.startswith("avg:"):
        a, b = (landmark_variant(v) for v in name[4:].split("+"))
        return lambda img, f: (a(img, f) + b(img, f)) / 2
    raise SystemExit(f"unknown variant {name}")


def fr_feature_embedder(
    landmarks: Callable[[np.ndarray, DetectedFace], np.ndarray], flip: bool = False
) -> Callable[[Items], np.ndarray]:
    from lookalike.faces.models import l2_normalize
    from lookalike.faces.registry import get_model

    model = get_model("fr-feature")

    def embed(items: Items) -> np.ndarray:
        crops = np.concatenate([align_faces(img, landmarks(img, f), 112) for img, f in items])
        v = model._forward(crops)  # type: ignore[attr-defined]
        if flip:
            v = l2_normalize(v) + l2_normalize(model._forward(np.ascontiguousarray(crops[:, :, ::-1])))  # type: ignore[attr-defined]
        return l2_normalize(v)

    return embed


def evaluate(label: str, vec_of: dict[str, np.ndarray], pairs: object) -> None:
    a = np.stack([vec_of[n] for n in pairs.left])  # type: ignore[attr-defined]
    b = np.stack([vec_of[n] for n in pairs.right])  # type: ignore[attr-defined]
    dist = cosine_distance_pairs(a, b)
    res = ten_fold(dist, pairs.same, pairs.fold)  # type: ignore[attr-defined]
    tar, _ = tar_at_far(dist, pairs.same, 1e-3)  # type: ignore[attr-defined]
    print(
        f"{label:40s} {100 * res['accuracy_mean']:.2f} ± {100 * res['accuracy_std']:.2f} %"  # type: ignore[operator]
        f"  TAR@0.1% {100 * tar:.2f}  thr {res['threshold_mean']:.3f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*")
    ap.add_argument("--flip", action="store_true", help="add flipped-crop embeddings (TTA)")
    ap.add_argument("--fuse", nargs="+", help="cache keys (emb-<key>.npz) to concatenate")
    ap.add_argument("--weights", nargs="+", type=float, help="fusion weights")
    ap.add_argument("--min-face", type=float, help="detect again with this fixed MTCNN min face size")
    args = ap.parse_args()
    print_banner()
    root = data_dir(None)
    pairs = read_pairs(root / "lfw_protocols" / "pairs.txt")
    names = list(dict.fromkeys(pairs.left + pairs.right))
    suffix = ""
    if args.min_face:
        from lookalike.faces.detectors import MTCNNDetector, MTCNNOptions

        suffix = f"-minface{args.min_face:g}"
        det = MTCNNDetector(MTCNNOptions(min_face=args.min_face))
        dets: Detections = detect_images(root, names, tag=f"mtcnn{suffix}", detect=det.detect)
    else:
        dets = detect_images(root, names)
    for v in args.variants:
        key = f"exp-{v.replace(':', '_').replace('+', '_')}" + ("-flip" if args.flip else "") + suffix
        log(f"variant {key}")
        emb = embed_images(
            root, dets, "fr-feature", embed=fr_feature_embedder(landmark_variant(v), args.flip), cache_key=key
        )
        evaluate(key, dict(zip(emb.names, emb.vectors, strict=True)), pairs)
    if args.fuse:
        from lookalike.faces.models import l2_normalize

        ws = args.weights or [1.0] * len(args.fuse)
        parts = []
        for k, w in zip(args.fuse, ws, strict=True):
            e = embed_images(root, dets, k, cache_key=k)
            parts.append(np.sqrt(w) * l2_normalize(e.vectors))
        vec = l2_normalize(np.concatenate(parts, axis=1))
        evaluate(
            "fuse " + "+".join(f"{k}*{w}" for k, w in zip(args.fuse, ws, strict=True)),
            dict(zip(names, vec, strict=True)),
            pairs,
        )


if __name__ == "__main__":
    main()
