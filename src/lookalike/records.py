"""Value objects passed between the embedding job, the dataset and the search front ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from lookalike.faces.types import DetectedFace

if TYPE_CHECKING:
    from lookalike.storage import ObjectInfo

ObjectStatus = Literal["ok", "no_face", "error"]

#: ``status`` text of a face row for an image in which no face was found.
NO_FACE_STATUS = "no face detected"
#: ``status`` text of the face row kept for a photo whose every face a user forgot.
FORGOTTEN_STATUS = "forgotten"


@dataclass(slots=True)
class ObjectResult:
    """What embedding one object produced: its faces and their embeddings, or why there are none."""

    info: ObjectInfo
    source: str
    status: ObjectStatus
    error: str | None = None
    faces: list[DetectedFace] = field(default_factory=list)
    embeddings: np.ndarray | None = None  # (len(faces), dim) float32, L2-normalised
    #: Faces found but not kept because a user forgot their person (``lookalike people forget``).
    forgotten: int = 0
    #: Each kept face's index in the photo, when some were left out (else faces are numbered 0, 1, ...).
    face_numbers: list[int] | None = None

    @property
    def row_status(self) -> str:
        """The ``status`` of this object's face rows: '' for faces, else why there is none."""
        if self.status == "ok":
            return FORGOTTEN_STATUS if self.forgotten and not self.faces else ""
        if self.status == "no_face":
            return NO_FACE_STATUS
        return f"error: {self.error}"


@dataclass(frozen=True, slots=True)
class QueryFace:
    """A face to search with: where it came from, and its embedding."""

    uri: str
    face_index: int
    bbox: tuple[float, float, float, float] | None
    embedding: np.ndarray
    score: float | None = None
