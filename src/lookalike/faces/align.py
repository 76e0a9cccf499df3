"""Five-point face alignment: map detected landmarks onto a canonical template and crop.

Identity models are trained on faces warped so that the eyes, nose tip and mouth corners land on fixed
pixel positions. We estimate, for each face, the *similarity* transform (uniform scale, rotation,
translation; no shear, no reflection) that best maps its five landmarks onto the template in the
least-squares sense, then warp the image with it.

The estimate is closed-form: writing 2-D points as complex numbers, a similarity is ``z -> a*z + b`` with
``a = s*exp(i*theta)``, and the least-squares ``a`` is ``sum((d - d_mean) * conj(s - s_mean)) /
sum(|s - s_mean|^2)`` (the 2-D case of Umeyama's method). It is vectorised over any number of faces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lookalike.faces.types import DetectedFace

#: ArcFace / InsightFace landmark template for a 112x112 crop, in ``LANDMARK_NAMES`` order.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def template(size: int | tuple[int, int] = 112) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` crop (an int for a square, or ``(width, height)``)."""
    w, h = (size, size) if isinstance(size, int) else size
    return ARCFACE_TEMPLATE_112 * np.array([w / 112.0, h / 112.0])


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms mapping ``src`` points onto ``dst`` points.

    ``src`` is ``(..., K, 2)`` (one set of K points per face); ``dst`` is ``(K, 2)`` or broadcastable to
    ``src``. Returns ``(..., 2, 3)`` float64 affine matrices ``M`` with ``dst ~= M @ [x, y, 1]``, ready for
    ``cv2.warpAffine``. Degenerate inputs (all points equal) give a pure translation.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.broadcast_to(np.asarray(dst, dtype=np.float64), s.shape)
    zs = s[..., 0] + 1j * s[..., 1]
    zd = d[..., 0] + 1j * d[..., 1]
    ms = zs.mean(axis=-1, keepdims=True)
    md = zd.mean(axis=-1, keepdims=True)
    cs = zs - ms
    cd = zd - md
    var = np.sum(np.abs(cs) ** 2, axis=-1)
    cov = np.sum(cd * np.conj(cs), axis=-1)
    a = np.divide(cov, var, out=np.ones_like(cov), where=var > 1e-12)
    b = md[..., 0] - a * ms[..., 0]
    m = np.empty((*s.shape[:-2], 2, 3), dtype=np.float64)
    m[..., 0, 0] = a.real
    m[..., 0, 1] = -a.imag
    m[..., 0, 2] = b.real
    m[..., 1, 0] = a.imag
    m[..., 1, 1] = a.real
    m[..., 1, 2] = b.imag
    return m


def align_faces(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int | tuple[int, int] = 112,
) -> np.ndarray:
    """Warp every face of one image onto the template.

    ``image`` is ``(H, W, C)`` uint8; ``landmarks`` is ``(N, 5, 2)`` (or ``(5, 2)`` for one face). Returns
    ``(N, h, w, C)`` uint8 crops (bilinear, black outside the image).
    """
    import cv2

    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    w, h = (size, size) if isinstance(size, int) else size
    mats = estimate_similarity(pts, template((w, h)))
    img = np.ascontiguousarray(image)
    out = np.empty((len(mats), h, w, *img.shape[2:]), dtype=img.dtype)
    for i, m in enumerate(mats):  # one warp per face; OpenCV has no batched warp
        out[i] = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def align_items(
    items: list[tuple[np.ndarray, DetectedFace]],
    size: int | tuple[int, int] = 112,
) -> np.ndarray:
    """Aligned crops ``(N, h, w, 3)`` uint8 for a list of ``(image, face)`` pairs."""
    w, h = (size, size) if isinstance(size, int) else size
    if not items:
        return np.empty((0, h, w, 3), dtype=np.uint8)
    return np.concatenate([align_faces(img, face.landmarks, (w, h)) for img, face in items])
