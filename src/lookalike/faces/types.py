"""Value objects and protocols shared by detectors, aligners and embedders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: The five landmark points, in this order, everywhere in Lookalike.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found in an image.

    ``bbox`` is ``(x1, y1, x2, y2)`` in pixels of the EXIF-oriented image; ``landmarks`` is a ``(5, 2)``
    float32 array of ``(x, y)`` points in :data:`LANDMARK_NAMES` order ("left" is the image's left);
    ``score`` is the detector's confidence in ``[0, 1]``.
    """

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.bbox[2] - self.bbox[0]) * max(0.0, self.bbox[3] - self.bbox[1])


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a user needs to know about an identity model before choosing it.

    ``threshold`` is a cosine *distance* (``1 - cosine similarity``): two faces whose distance is at or below
    it are reported as ``same_person``. It is calibrated on LFW (see ``threshold_note``).
    """

    name: str
    dim: int
    input_size: tuple[int, int]
    detector: str
    licence: str
    weights: str
    threshold: float
    threshold_note: str = ""
    #: Cosine distance under which even the most look-alike population measured (K-pop idols, UTKFace groups)
    #: keeps different-person matches near 0.3 %; used by tables too small to calibrate themselves, with the
    #: distances between it and ``threshold`` reported as uncertain. ``None``: not measured for this model.
    safe_threshold: float | None = None
    lfw_accuracy: float | None = None
    description: str = ""
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    aliases: tuple[str, ...] = field(default=())
    #: False for a model nobody has calibrated (a user's ONNX file): ``same_person`` is then null.
    calibrated: bool = True
    #: What runs the identity network: ``onnxruntime`` (can use a GPU), ``litert``, ``opencv-dnn`` or ``dlib``.
    runtime: str = "onnxruntime"


class Detector(Protocol):
    """Finds faces and their 5 landmarks in an RGB uint8 ``(H, W, 3)`` image."""

    def detect(self, image: np.ndarray) -> list[DetectedFace]: ...


class FaceModel(Protocol):
    """A full face pipeline for one identity model: detect, align, embed.

    ``embed`` takes a list of ``(image, face)`` pairs (images RGB uint8) and returns an ``(N, dim)`` float32
    array of L2-normalised embeddings, computed in batches.
    """

    card: ModelCard

    def detect(self, image: np.ndarray) -> list[DetectedFace]: ...

    def embed(self, items: list[tuple[np.ndarray, DetectedFace]]) -> np.ndarray: ...
