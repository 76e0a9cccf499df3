"""Face models users bring: an ONNX identity network, registered by name like the built-in ones.

``lookalike models add NAME --onnx PATH_OR_URI`` (or ``add_model``) copies the file into the model folder
(``$LOOKALIKE_CONFIG_DIR/models``, default ``~/.config/lookalike/models``) under its SHA-256, reads its input
and output shapes, and records it with its preprocessing in ``models.json`` there. Every process (index workers,
the server) finds it by name. Detection and the 5-point alignment are Lookalike's (MTCNN, the ArcFace template
scaled to ``input_size``); the crop is then ``(pixel - mean) / std`` in ``color_order`` and ``layout``.

Until a model is calibrated its card says so, and ``same_person`` is null for its faces, not a guess. The stored
copy is checked against its SHA-256 when it loads: a changed file is refused.

**Model packs.** ``PATH_OR_URI`` may also be a folder (or bucket prefix) laid out like insightface's packs
(``buffalo_l``, ``antelopev2``): an SCRFD detector (``det_10g.onnx``) and an identity network (``w600k_r50.onnx``;
the packs' landmark and gender/age networks are recognised and left out). Then the pack's own detector finds and
places the faces (:mod:`lookalike.faces.scrfd`), and the default preprocessing is insightface's:
RGB ``(x - 127.5) / 127.5``, at the network's own input size.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import InvalidArgument, ModelError
from lookalike.faces.models import _Pipeline
from lookalike.faces.remote import RemoteModel, RemoteSpec, check_endpoint, probe
from lookalike.faces.types import FaceModel, ModelCard

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
_LOCK = threading.Lock()


def config_dir() -> Path:
    explicit = os.environ.get("LOOKALIKE_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "lookalike"


def _index_path() -> Path:
    return config_dir() / "models.json"


@dataclass(frozen=True, slots=True)
class OnnxSpec:
    name: str
    source: str
    sha256: str
    dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str  # RGB | BGR
    layout: str  # NCHW | NHWC
    batch: int | None  # fixed batch size of the graph, or None when dynamic
    threshold: float | None = None  # cosine distance at LFW-style FAR 0.1 %, once calibrated
    calibration_note: str = ""
    detector_sha256: str | None = None  # a pack's SCRFD detector (None: Lookalike's MTCNN)
    detector_source: str = ""
    recognizer_source: str = ""  # for a pack: its identity network's file

    @property
    def path(self) -> Path:
        return config_dir() / "models" / f"{self.sha256}.onnx"

    @property
    def detector_path(self) -> Path | None:
        return None if self.detector_sha256 is None else config_dir() / "models" / f"{self.detector_sha256}.onnx"

    def card(self) -> ModelCard:
        return ModelCard(
            name=self.name,
            dim=self.dim,
            input_size=(self.input_size, self.input_size),
            detector=(
                "MTCNN (Lookalike's) + 5-point ArcFace alignment"
                if self.detector_sha256 is None
                else f"SCRFD from the pack ({self.detector_source}, sha256 {self.detector_sha256[:12]}) + 5-point "
                "ArcFace alignment"
            ),
            licence="user-supplied",
            weights=f"user ONNX from {self.recognizer_source or self.source} (sha256 {self.sha256[:12]})",
            threshold=self.threshold if self.threshold is not None else 1.0,
            threshold_note=self.calibration_note or "not calibrated: same_person is null until it is",
            description=f"user model: {self.input_size}x{self.input_size} {self.color_order} {self.layout}, "
            f"(x - {self.mean[0]:g}) / {self.std[0]:g}",
            calibrated=self.threshold is not None,
        )


def _load_index() -> dict[str, dict[str, Any]]:
    path = _index_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read the user model list {path}: {err}", hint="fix or delete the file") from None
    return data if isinstance(data, dict) else {}


def _save_index(data: dict[str, dict[str, Any]]) -> None:
    path = _index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def user_specs() -> list[OnnxSpec | RemoteSpec]:
    out: list[OnnxSpec | RemoteSpec] = []
    for name, d in sorted(_load_index().items()):
        if d.get("kind") == "remote":
            out.append(
                RemoteSpec(
                    name=name,
                    endpoint=str(d["endpoint"]),
                    dim=int(d["dim"]),
                    input_size=int(d.get("input_size", 112)),
                    timeout=float(d.get("timeout", 30.0)),
                    retries=int(d.get("retries", 3)),
                    connection=d.get("connection"),
                    threshold=d.get("threshold"),
                    calibration_note=str(d.get("calibration_note") or ""),
                )
            )
            continue
        out.append(
            OnnxSpec(
                name=name,
                source=str(d["source"]),
                sha256=str(d["sha256"]),
                dim=int(d["dim"]),
                input_size=int(d["input_size"]),
                mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
                color_order=str(d["color_order"]),
                layout=str(d["layout"]),
                batch=d.get("batch"),
                threshold=d.get("threshold"),
                calibration_note=str(d.get("calibration_note") or ""),
                detector_sha256=d.get("detector_sha256"),
                detector_source=str(d.get("detector_source") or ""),
                recognizer_source=str(d.get("recognizer_source") or ""),
            )
        )
    return out


def _triple(value: float | tuple[float, ...] | list[float], what: str) -> tuple[float, float, float]:
    vals = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(vals) != 3:
        raise InvalidArgument(f"{what} takes one number or three (one per channel), got {len(vals)}")
    if what == "STD" and any(v == 0 for v in vals):
        raise InvalidArgument("STD must not be 0")
    return (vals[0], vals[1], vals[2])


def add_model(
    name: str,
    onnx: str,
    *,
    input_size: int | None = None,
    mean: float | tuple[float, ...] | None = None,
    std: float | tuple[float, ...] | None = None,
    color_order: str = "RGB",
    layout: str = "NCHW",
    replace: bool = False,
    storage_options: Any = None,
) -> OnnxSpec:
    """Register the ONNX identity network at ``onnx`` (a path or URI; or a pack folder, see the module
    docstring) as face model ``name``. ``input_size`` defaults to the network's own (else 112); ``mean`` and
    ``std`` to 127.5 and 128 (127.5 and 127.5 for a pack)."""
    name = _new_name(name)
    color_order, layout = color_order.upper(), layout.upper()
    if color_order not in ("RGB", "BGR"):
        raise InvalidArgument(f"COLOR_ORDER must be 'RGB' or 'BGR', got {color_order!r}")
    if layout not in ("NCHW", "NHWC"):
        raise InvalidArgument(f"LAYOUT must be 'NCHW' or 'NHWC', got {layout!r}")
    if input_size is not None and not 16 <= int(input_size) <= 1024:
        raise InvalidArgument(f"INPUT_SIZE must be between 16 and 1024, got {input_size}")
    pack = read_pack(onnx, storage_options)
    data = pack.recognizer
    if mean is None:
        mean = 127.5
    if std is None:
        std = 127.5 if pack.detector is not None else 128.0
    sha = hashlib.sha256(data).hexdigest()
    dim, batch, input_size = _inspect(data, input_size, layout, pack.recognizer_source)
    det_sha = None if pack.detector is None else hashlib.sha256(pack.detector).hexdigest()
    with _LOCK:
        index = _load_index()
        if name in index and not replace:
            raise InvalidArgument(f"model {name!r} already exists", hint="remove it first, or pass replace")
        _store(sha, data)
        if det_sha is not None and pack.detector is not None:
            _store(det_sha, pack.detector)
        index[name] = {
            "source": onnx,
            "sha256": sha,
            "dim": dim,
            "input_size": int(input_size),
            "mean": list(_triple(mean, "MEAN")),
            "std": list(_triple(std, "STD")),
            "color_order": color_order,
            "layout": layout,
            "batch": batch,
            "detector_sha256": det_sha,
            "detector_source": pack.detector_source,
            "recognizer_source": pack.recognizer_source if pack.detector is not None else "",
        }
        _save_index(index)
    register_user_models(force=True)
    spec = next(s for s in user_specs() if s.name == name)
    assert isinstance(spec, OnnxSpec)
    return spec


def _new_name(name: str) -> str:
    """``name`` lower-cased, or :class:`InvalidArgument` for a malformed or built-in name."""
    from lookalike.faces.registry import builtin_names

    name = name.strip().lower()
    if not _NAME.match(name):
        raise InvalidArgument(
            f"invalid model name {name!r}", hint="letters, digits, '_', '-' and '.', starting with a letter"
        )
    if name in builtin_names():
        raise InvalidArgument(f"{name!r} is a built-in model", hint="choose another name")
    return name


def add_remote_model(
    name: str,
    endpoint: str,
    *,
    input_size: int = 112,
    timeout: float = 30.0,
    retries: int = 3,
    connection: str | None = None,
    replace: bool = False,
) -> RemoteSpec:
    """Register the HTTP embedding service at ``endpoint`` as face model ``name`` (see
    :mod:`lookalike.faces.remote`); one grey crop is sent to learn the vectors' dimension."""
    name = _new_name(name)
    url = check_endpoint(endpoint)
    if not 16 <= int(input_size) <= 1024:
        raise InvalidArgument(f"INPUT_SIZE must be between 16 and 1024, got {input_size}")
    if not 0 < float(timeout) <= 3600:
        raise InvalidArgument(f"the timeout must be between 0 and 3600 seconds, got {timeout}")
    if not 0 <= int(retries) <= 10:
        raise InvalidArgument(f"retries must be between 0 and 10, got {retries}")
    dim = probe(url, int(input_size), model=name, timeout=float(timeout), retries=int(retries))
    with _LOCK:
        index = _load_index()
        if name in index and not replace:
            raise InvalidArgument(f"model {name!r} already exists", hint="remove it first, or pass replace")
        index[name] = {
            "kind": "remote",
            "endpoint": url,
            "dim": dim,
            "input_size": int(input_size),
            "timeout": float(timeout),
            "retries": int(retries),
            "connection": connection,
        }
        _save_index(index)
    register_user_models(force=True)
    spec = next(s for s in user_specs() if s.name == name)
    assert isinstance(spec, RemoteSpec)
    return spec


def _store(sha: str, data: bytes) -> None:
    """Write ``data`` as ``models/<sha>.onnx`` in the config folder (atomically; once)."""
    target = config_dir() / "models" / f"{sha}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


@dataclass(frozen=True, slots=True)
class Pack:
    """What a model source holds: the identity network, and a pack's SCRFD detector when it is a pack."""

    recognizer: bytes
    recognizer_source: str
    detector: bytes | None = None
    detector_source: str = ""


def _session(data: bytes, source: str) -> Any:
    """A CPU onnxruntime session over ``data`` for inspecting it, or :class:`ModelError` naming ``source``."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ModelError(f"{source} is not an ONNX model onnxruntime can load: {err}") from None


def _square_side(session: Any) -> int | None:
    """The fixed side of a one-input graph whose input is ``(n, c, s, s)``, else None."""
    inputs = session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    return shape[2] if len(shape) == 4 and isinstance(shape[2], int) and shape[2] == shape[3] else None


def _role(data: bytes, source: str) -> str:
    """What an ONNX file of a pack is, as insightface's model router tells them apart: ``detector`` (SCRFD's
    signature; ``detector without landmarks`` for the variants that give none), ``landmarks`` (192 x 192
    input), ``attributes`` (96 x 96), ``recognizer`` (a square input of at least 112, a multiple of 16), else
    ``other``."""
    from lookalike.faces.scrfd import LAYOUTS, looks_like_scrfd

    session = _session(data, source)
    if looks_like_scrfd(session):
        with_kps = LAYOUTS[len(session.get_outputs())][2]
        return "detector" if with_kps else "detector without landmarks"
    side = _square_side(session)
    if side == 192:
        return "landmarks"
    if side == 96:
        return "attributes"
    one_io = len(session.get_inputs()) == 1 and len(session.get_outputs()) == 1
    if one_io and (side is None or (side >= 112 and side % 16 == 0)):
        return "recognizer"
    return "other"


def read_pack(source: str, storage_options: Any = None) -> Pack:
    """The identity network at ``source`` (one ONNX file), or a pack's detector and identity network (a folder
    or bucket prefix holding ``.onnx`` files)."""
    from lookalike.storage import list_objects, read_object

    local = "://" not in source or source.startswith("file://")
    if local:
        is_folder = os.path.isdir(source.removeprefix("file://"))
    else:  # a bucket has no folders: a prefix is one that ends with "/" or names no .onnx file
        is_folder = source.endswith("/") or not source.lower().endswith(".onnx")
    if not is_folder:
        return Pack(read_object(source, options=storage_options), source)
    files = [info.uri for _, info in list_objects(source, options=storage_options, images_only=False)]
    onnx_files = sorted(f for f in files if f.lower().endswith(".onnx"))
    if not onnx_files:
        raise ModelError(f"{source} holds no .onnx file", hint="a pack holds an SCRFD det_*.onnx and an identity .onnx")
    roles: dict[str, list[tuple[str, bytes]]] = {}
    for f in onnx_files:
        data = read_object(f, options=storage_options)
        roles.setdefault(_role(data, f), []).append((f, data))
    names = ", ".join(os.path.basename(f) for f in onnx_files)
    detectors = roles.get("detector", []) + roles.get("detector without landmarks", [])
    recognizers = roles.get("recognizer", [])
    if len(recognizers) != 1:
        raise ModelError(
            f"the pack {source} has {len(recognizers)} identity networks among {names}; it needs exactly one",
            hint="point MODEL_PATH / --onnx at the identity .onnx file itself, or leave one in the folder",
        )
    if len(detectors) > 1:
        raise ModelError(f"the pack {source} has {len(detectors)} SCRFD detectors ({names}); it needs at most one")
    rec_name, rec = recognizers[0]
    if not detectors:
        return Pack(rec, rec_name)
    det_name, det = detectors[0]
    if "detector without landmarks" in roles:
        raise ModelError(
            f"the pack's detector {det_name} gives no landmarks; faces need five landmarks to be aligned",
            hint="use a *kps SCRFD (the packs' own det_10g.onnx has them)",
        )
    return Pack(rec, rec_name, det, det_name)


@dataclass(frozen=True, slots=True)
class PairsCalibration:
    threshold: float  # cosine distance where 0.1 % of the different-person pairs pass
    tar: float  # share of same-person pairs at or under it
    best_threshold: float  # the accuracy-optimal one
    best_accuracy: float
    pairs: int
    skipped: int  # pairs with a photo where no face was found


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """LFW-style pairs: ``name n1 n2`` (same person) or ``name1 n1 name2 n2`` (different); a first line of one or
    two numbers (LFW's header) is skipped. Images are ``name/name_NNNN.jpg``."""

    def image(person: str, n: str) -> str:
        return f"{person}/{person}_{int(n):04d}.jpg"

    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or (number == 1 and all(p.isdigit() for p in parts)):
            continue
        if len(parts) == 3:
            out.append((image(parts[0], parts[1]), image(parts[0], parts[2]), True))
        elif len(parts) == 4:
            out.append((image(parts[0], parts[1]), image(parts[2], parts[3]), False))
        else:
            raise InvalidArgument(f"{path}:{number}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {line!r}")
    return out


def calibrate_model(name: str, pairs_file: str, images: str) -> PairsCalibration:
    """Embed both photos of every pair with model ``name`` and store the threshold at FAR 0.1 % in its card."""
    from lookalike.api import Dataset

    spec = next((s for s in user_specs() if s.name == name.lower()), None)
    if spec is None:
        raise InvalidArgument(f"no user model {name!r}", hint="built-in models are calibrated already")
    pairs = read_pairs(Path(pairs_file))
    same = [p for p in pairs if p[2]]
    diff = [p for p in pairs if not p[2]]
    if len(same) < 10 or len(diff) < 100:
        raise InvalidArgument(
            f"{pairs_file} has {len(same)} same-person and {len(diff)} different-person pairs",
            hint="calibrating needs at least 10 and 100 (LFW's pairs.txt has 3,000 of each)",
        )
    root = Path(images)
    names = sorted({n for a, b, _ in pairs for n in (a, b)})
    ds = Dataset(None)
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(names), 64):
        chunk = names[start : start + 64]
        found = ds.embed([str(root / n) for n in chunk], model=spec.name, largest=True)
        for n, faces in zip(chunk, found, strict=True):
            if faces:
                vectors[n] = faces[0].embedding
    dist, label = [], []
    for a, b, is_same in pairs:
        if a in vectors and b in vectors:
            dist.append(1.0 - float(np.dot(vectors[a], vectors[b])))
            label.append(is_same)
    d, y = np.asarray(dist), np.asarray(label, bool)
    impostors = np.sort(d[~y])
    threshold = float(impostors[max(0, int(np.floor(0.001 * impostors.size)) - 1)]) if impostors.size else 0.0
    threshold = min(threshold, float(impostors[0]) - 1e-6) if impostors.size < 1000 else threshold
    candidates = np.unique(d)
    accuracy = [float(np.mean((d <= t) == y)) for t in candidates]
    best = int(np.argmax(accuracy))
    result = PairsCalibration(
        threshold=round(threshold, 4),
        tar=float(np.mean(d[y] <= threshold)) if y.any() else 0.0,
        best_threshold=round(float(candidates[best]), 4),
        best_accuracy=accuracy[best],
        pairs=int(d.size),
        skipped=len(pairs) - int(d.size),
    )
    note = (
        f"FAR 0.1 % on {result.pairs} pairs of {pairs_file}: TAR {100 * result.tar:.2f} %; accuracy-optimal "
        f"{result.best_threshold:.4f} ({100 * result.best_accuracy:.2f} %)"
    )
    with _LOCK:
        index = _load_index()
        index[spec.name]["threshold"] = result.threshold
        index[spec.name]["calibration_note"] = note
        _save_index(index)
    register_user_models(force=True)  # re-registering drops the model loaded with the old card
    return result


def remove_model(name: str) -> None:
    with _LOCK:
        index = _load_index()
        if name.lower() not in index:
            raise InvalidArgument(f"no user model {name!r}", hint="lookalike models lists them")
        del index[name.lower()]
        _save_index(index)
    from lookalike.faces.registry import unregister

    unregister(name.lower())


def _inspect(data: bytes, size: int | None, layout: str, source: str) -> tuple[int, int | None, int]:
    """(embedding dimension, fixed batch size or None, crop side) of an ONNX network, by running a blank crop
    through it. ``size`` None: the graph's own square side, else 112."""
    session = _session(data, source)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{source} has {len(inputs)} inputs; an identity network takes one image batch")
    size = int(size or _square_side(session) or 112)
    shape = inputs[0].shape
    batch = shape[0] if shape and isinstance(shape[0], int) else None
    blank = np.zeros((batch or 1, 3, size, size) if layout == "NCHW" else (batch or 1, size, size, 3), np.float32)
    try:
        out = session.run(None, {inputs[0].name: blank})[0]
    except Exception as err:
        raise ModelError(
            f"{source} does not take a {layout} {size}x{size} crop: {err}",
            hint="set INPUT_SIZE and LAYOUT to what the network expects",
        ) from None
    return int(np.asarray(out).reshape(out.shape[0], -1).shape[1]), batch, size


_REGISTERED: set[str] = set()


def register_user_models(*, force: bool = False) -> None:
    """Register every user model with the registry (once per process, or again with ``force``)."""
    from lookalike.faces.registry import register

    with _LOCK:
        specs = user_specs()
        for spec in specs:
            if spec.name in _REGISTERED and not force:
                continue
            register(spec.card())(_factory(spec))
            _REGISTERED.add(spec.name)


def _factory(spec: OnnxSpec | RemoteSpec) -> Callable[[ModelCard], FaceModel]:
    def build(card: ModelCard) -> FaceModel:
        return RemoteModel(card, spec) if isinstance(spec, RemoteSpec) else OnnxModel(card, spec)

    return build


class OnnxModel(_Pipeline):
    """A user's ONNX identity network behind Lookalike's detection, alignment and batching."""

    def __init__(self, card: ModelCard, spec: OnnxSpec) -> None:
        from lookalike.faces.runtime import ort_session

        super().__init__(card)
        self.spec = spec
        data = spec.path.read_bytes() if spec.path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != spec.sha256:
            raise ModelError(
                f"the file of model {spec.name!r} ({spec.path}) is missing or changed since it was added",
                hint=f"add it again: lookalike models add {spec.name} --onnx {spec.source} --replace",
            )
        self._session = ort_session(spec.path, None)
        det_path = spec.detector_path
        if det_path is not None:
            from lookalike.faces.scrfd import ScrfdDetector

            det = det_path.read_bytes() if det_path.is_file() else b""
            if hashlib.sha256(det).hexdigest() != spec.detector_sha256:
                raise ModelError(
                    f"the detector of model {spec.name!r} ({det_path}) is missing or changed since it was added",
                    hint=f"add it again: lookalike models add {spec.name} --onnx {spec.source} --replace",
                )
            self.detector = ScrfdDetector(det_path)
        self._input = self._session.get_inputs()[0].name
        self._mean = np.asarray(spec.mean, np.float32)
        self._std = np.asarray(spec.std, np.float32)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        x = crops.astype(np.float32)
        if self.spec.color_order == "BGR":
            x = x[..., ::-1]
        x = (x - self._mean) / self._std
        if self.spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        step = self.spec.batch or len(x)
        out = [self._session.run(None, {self._input: x[i : i + step]})[0] for i in range(0, len(x), step)]
        return np.concatenate(out).reshape(len(x), -1)
