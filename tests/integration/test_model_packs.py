"""insightface-style model packs (an SCRFD ``det_*.onnx`` next to an identity ``.onnx``) as user models.

No real SCRFD weights can be shipped or downloaded here, so the pack's detector is a graph with SCRFD's real
input and output signature (9 outputs: scores, box distances and landmark offsets at strides 8, 16, 32, two
anchors per cell) whose outputs are constants: one face, placed where MTCNN finds the face of the test photo,
with its box moved so that the pack's detection is told apart from MTCNN's. The identity network is the
vendored fr-feature file, so the embeddings can be checked against the built-in model's.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lookalike
from lookalike.cli import main as cli_main
from lookalike.errors import ModelError
from lookalike.faces import scrfd, user_models
from lookalike.faces.detectors import get_detector
from lookalike.faces.registry import get_card
from lookalike.images import decode_image

pytestmark = pytest.mark.usefixtures("config_dir")  # users' models in a fresh folder (conftest.py)
DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
FR_FEATURE = REPO / "src" / "lookalike" / "faces" / "weights" / "fr_feature.onnx"
PHOTO = DATA / "queries" / "Tony_Blair_0010.jpg"
SIZE = 640
SHIFT = 6.0  # the pack's box is MTCNN's moved right by this many pixels (landmarks unchanged)


def _save(graph_outputs: list[np.ndarray], path: Path, input_shape: list[int | str]) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, outs = [], []
    for i, arr in enumerate(graph_outputs):
        name = f"out{i}"
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, f"c{i}")))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(
        nodes, "scrfd-like", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, input_shape)], outs
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _fake_scrfd(path: Path, box: np.ndarray, landmarks: np.ndarray, outputs: int = 9) -> Path:
    """An SCRFD-shaped graph that reports one face with ``box`` and ``landmarks`` (in 640 x 640 input pixels)."""
    strides, anchors, with_kps = scrfd.LAYOUTS[outputs]
    counts = [(SIZE // s) ** 2 * anchors for s in strides]
    scores = [np.zeros((c, 1), np.float32) for c in counts]
    dists = [np.zeros((c, 4), np.float32) for c in counts]
    kps = [np.zeros((c, 10), np.float32) for c in counts]
    stride = 8
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col, row = round(cx / stride), round(cy / stride)
    centre = np.array([col * stride, row * stride], np.float32)
    i = (row * (SIZE // stride) + col) * anchors
    scores[0][i, 0] = 0.95
    dists[0][i] = [centre[0] - box[0], centre[1] - box[1], box[2] - centre[0], box[3] - centre[1]]
    dists[0][i] /= stride
    kps[0][i] = ((landmarks - centre) / stride).reshape(-1)
    return _save(scores + dists + (kps if with_kps else []), path, [1, 3, SIZE, SIZE])


def _tiny(path: Path, side: int, dim: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # the pack's signature (input 1x3xSxS, output 1xD) with a weight of 3 x D: a flattened S x S input would
    # make it 3*S*S x D (1.5 GB for the 192-pixel landmark network, written again for every pack)
    w = np.zeros((3, dim), np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "w"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _mtcnn_face() -> tuple[np.ndarray, np.ndarray, float]:
    image = decode_image(PHOTO.read_bytes(), uri=str(PHOTO))
    face = get_detector().detect(image)[0]
    scale = min(SIZE / image.shape[0], SIZE / image.shape[1])
    return np.asarray(face.bbox, np.float32), np.asarray(face.landmarks, np.float32), scale


def _pack(folder: Path, *, outputs: int = 9, recognizers: int = 1) -> tuple[Path, np.ndarray, np.ndarray]:
    """A buffalo-style pack folder; returns it with the box and landmarks (photo pixels) its detector reports."""
    box, lm, scale = _mtcnn_face()
    box = box + np.array([SHIFT, 0, SHIFT, 0], np.float32)
    folder.mkdir(parents=True)
    _fake_scrfd(folder / "det_10g.onnx", box * scale, lm * scale, outputs=outputs)
    shutil.copy(FR_FEATURE, folder / "w600k_r50.onnx")
    if recognizers > 1:
        shutil.copy(FR_FEATURE, folder / "glintr100.onnx")
    _tiny(folder / "1k3d68.onnx", 192, 3309)  # landmarks network: recognised and left out
    _tiny(folder / "genderage.onnx", 96, 3)  # attributes network: likewise
    return folder, box, lm


def test_a_pack_detects_with_its_own_scrfd_and_embeds_with_its_network(tmp_path: Path) -> None:
    pack, box, _lm = _pack(tmp_path / "buffalo")
    result = CliRunner().invoke(
        cli_main, ["models", "add", "buffalo", "--onnx", str(pack), "--mean", "127", "--std", "128"]
    )
    assert result.exit_code == 0, result.output
    assert "det_10g.onnx" in result.output and "512-d" in result.output
    card = get_card("buffalo")
    assert card.detector.startswith("SCRFD from the pack") and "w600k_r50.onnx" in card.weights
    ds = lookalike.open(tmp_path / "p.duckdb")
    (face,) = ds.embed([str(PHOTO)], model="buffalo")[0]
    assert np.allclose(face.bbox, box, atol=0.05)  # the pack's box, not MTCNN's
    builtin = ds.embed([str(PHOTO)], model="fr-feature")[0][0]
    assert abs(builtin.bbox[0] + SHIFT - face.bbox[0]) < 0.05
    assert float(np.dot(face.embedding, builtin.embedding)) > 0.999  # same landmarks, same network
    # a whole index and search through the pack
    ds.index(str(DATA / "gallery"), table="packed", model="buffalo")
    hits = ds.search(str(PHOTO), table="packed", top_k=3).hits
    assert hits and "Tony_Blair" in hits[0].uri


def test_a_packs_default_preprocessing_is_insightfaces(tmp_path: Path) -> None:
    pack, _, _ = _pack(tmp_path / "antelope")
    spec = user_models.add_model("antelope", str(pack))
    assert spec.mean == (127.5, 127.5, 127.5) and spec.std == (127.5, 127.5, 127.5)
    assert spec.input_size == 112 and spec.detector_source.endswith("det_10g.onnx")


def test_sql_create_model_takes_a_pack_folder(tmp_path: Path) -> None:
    pack, _box, _ = _pack(tmp_path / "sqlpack")
    ds = lookalike.open(tmp_path / "s.duckdb")
    with contextlib.chdir(REPO):
        results = ds.sql(
            f"""CREATE SCHEMA fs;
            CREATE MODEL fs.pack OPTIONS (MODEL_TYPE = 'ONNX', MODEL_PATH = '{pack}');
            CREATE EXTERNAL TABLE fs.photos OPTIONS (object_metadata = 'SIMPLE', uris = ['{PHOTO}']);
            SELECT uri, ARRAY_LENGTH(ml_generate_embedding_result) AS d
            FROM ML.GENERATE_EMBEDDING(MODEL fs.pack, TABLE fs.photos)"""
        )
    assert results[-1].to_pylist()[0]["d"] == 512
    assert get_card("fs.pack").detector.startswith("SCRFD")


def test_bad_packs_are_refused_with_the_reason(tmp_path: Path) -> None:
    two, _, _ = _pack(tmp_path / "two", recognizers=2)
    with pytest.raises(ModelError, match="2 identity networks.*glintr100.onnx"):
        user_models.add_model("two", str(two))
    nokps, _, _ = _pack(tmp_path / "nokps", outputs=6)
    with pytest.raises(ModelError, match="no landmarks"):
        user_models.add_model("nokps", str(nokps))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no .onnx file"):
        user_models.add_model("empty", str(tmp_path / "empty"))


def test_a_changed_detector_file_is_refused(tmp_path: Path, config_dir: Path) -> None:
    pack, _, _ = _pack(tmp_path / "changed")
    spec = user_models.add_model("changed", str(pack))
    assert spec.detector_path is not None
    spec.detector_path.write_bytes(spec.detector_path.read_bytes() + b"\0")
    ds = lookalike.open(tmp_path / "c.duckdb")
    with pytest.raises(ModelError, match="detector of model 'changed'"):
        ds.embed([str(PHOTO)], model="changed")
