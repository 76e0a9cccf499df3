"""Users' own ONNX identity networks: added by CLI or SQL, run behind Lookalike's detection and alignment.

The tests build small ONNX networks with the ``onnx`` package (real input and output signatures), and import the
vendored fr-feature file as a user model, which must give exactly the built-in model's embeddings.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lookalike
from lookalike.cli import main as cli_main
from lookalike.errors import ModelError
from lookalike.faces import user_models
from lookalike.faces.registry import get_card, unregister

pytestmark = pytest.mark.usefixtures("config_dir")  # users' models in a fresh folder (conftest.py)
DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
FR_FEATURE = REPO / "src" / "lookalike" / "faces" / "weights" / "fr_feature.onnx"
QUERY = str(DATA / "queries" / "Tony_Blair_0010.jpg")


def _tiny_onnx(path: Path, size: int = 32, dim: int = 8, layout: str = "NCHW", batch: int | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = [batch or "N", 3, size, size] if layout == "NCHW" else [batch or "N", size, size, 3]
    weights = np.random.default_rng(0).standard_normal((3 * size * size, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch or "N", dim])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_vendored_fr_feature_as_a_user_model_is_exactly_the_builtin(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_main, ["models", "add", "my-fr", "--onnx", str(FR_FEATURE), "--mean", "127", "--std", "128"]
    )
    assert result.exit_code == 0, result.output
    assert "512-d" in result.output and "not calibrated" in result.output
    listing = CliRunner().invoke(cli_main, ["models"])
    assert "my-fr" in listing.output and "not calibrated" in listing.output
    ds = lookalike.open(tmp_path / "u.duckdb")
    builtin = ds.embed([QUERY], model="fr-feature")[0][0].embedding
    mine = ds.embed([QUERY], model="my-fr")[0][0].embedding
    assert np.array_equal(builtin, mine)
    ds.index(str(DATA / "gallery"), table="builtin")
    ds.index(str(DATA / "gallery"), table="mine", model="my-fr")
    a = ds.search(QUERY, table="builtin", top_k=3)
    b = ds.search(QUERY, table="mine", top_k=3)
    assert [h.uri for h in a.hits] == [h.uri for h in b.hits]
    assert [h.distance for h in a.hits] == [h.distance for h in b.hits]
    # not calibrated: no guess, until a threshold is given
    assert all(h.same_person is None for h in b.hits) and "not calibrated" in str(b.hits[0].same_person_reason)
    assert b.calibration is not None and b.calibration.method == "uncalibrated"
    decided = ds.search(QUERY, table="mine", top_k=3, threshold=0.5)
    assert decided.hits[0].same_person is True
    assert (
        ds.verify(QUERY, str(DATA / "gallery" / "Tony_Blair" / "Tony_Blair_0001.jpg"), model="my-fr").same_person
        is None
    )


def test_sql_create_model_onnx(tmp_path: Path) -> None:
    ds = lookalike.open(tmp_path / "s.duckdb")
    with contextlib.chdir(REPO):
        results = ds.sql(
            f"""CREATE SCHEMA fs;
            CREATE MODEL fs.mine OPTIONS (MODEL_TYPE = 'ONNX', MODEL_PATH = '{FR_FEATURE}', INPUT_SIZE = 112,
              MEAN = 127, STD = 128, COLOR_ORDER = 'RGB', LAYOUT = 'NCHW');
            CREATE MODEL fs.builtin OPTIONS (ENDPOINT = 'default');
            CREATE EXTERNAL TABLE fs.photos OPTIONS (object_metadata = 'SIMPLE',
              uris = ['tests/data/gallery/Tony_Blair/*']);
            CREATE TABLE fs.a AS SELECT * FROM ML.GENERATE_EMBEDDING(MODEL fs.mine, TABLE fs.photos);
            CREATE TABLE fs.b AS SELECT * FROM ML.GENERATE_EMBEDDING(MODEL fs.builtin, TABLE fs.photos);
            SELECT a.uri, a.ml_generate_embedding_result = b.ml_generate_embedding_result AS same
            FROM fs.a a JOIN fs.b b USING (uri)"""
        )
    assert results[1].message == "created model fs.mine (face model fs.mine)"
    rows = results[-1].to_pylist()
    assert len(rows) == 3 and all(r["same"] for r in rows)
    assert get_card("fs.mine").calibrated is False


def test_small_networks_layouts_and_bad_files(tmp_path: Path, config_dir: Path) -> None:
    spec = user_models.add_model("tiny", str(_tiny_onnx(tmp_path / "t.onnx")), input_size=32)
    assert (spec.dim, spec.batch) == (8, None)
    nhwc = user_models.add_model(
        "tiny-nhwc", str(_tiny_onnx(tmp_path / "h.onnx", layout="NHWC", batch=1)), input_size=32, layout="NHWC"
    )
    assert (nhwc.dim, nhwc.batch) == (8, 1)
    ds = lookalike.open(tmp_path / "t.duckdb")
    for name in ("tiny", "tiny-nhwc"):
        (face,) = ds.embed([QUERY], model=name)[0][:1]
        assert face.embedding.shape == (8,) and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5
    with pytest.raises(ModelError, match="does not take a NCHW 64x64 crop"):
        user_models.add_model("wrong-size", str(tmp_path / "t.onnx"), input_size=64)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="is not an ONNX model"):
        user_models.add_model("junk", str(tmp_path / "junk.onnx"))
    with pytest.raises(lookalike.errors.InvalidArgument, match="built-in model"):
        user_models.add_model("fr-feature", str(tmp_path / "t.onnx"))
    # the stored copy changed behind Lookalike's back: refused when it loads
    (config_dir / "models" / f"{spec.sha256}.onnx").write_bytes(b"changed")
    unregister("tiny")
    user_models._REGISTERED.discard("tiny")
    with pytest.raises(ModelError, match="missing or changed"):
        ds.embed([QUERY], model="tiny")
    result = CliRunner().invoke(cli_main, ["models", "remove", "tiny"])
    assert result.exit_code == 0 and "removed model tiny" in result.output
    assert CliRunner().invoke(cli_main, ["models", "remove", "tiny"]).exit_code == 1


def test_models_calibrate_from_pairs(tmp_path: Path) -> None:
    """A user model gets a same-person threshold from LFW-style pairs; tables then decide with it."""
    people = sorted(p.name for p in (DATA / "gallery").iterdir())
    lines = ["10 300"]  # LFW's header line is skipped
    lines += [f"{p}\t{a}\t{b}" for p in people for a, b in ((1, 2), (1, 3), (2, 3))]
    lines += [
        f"{p}\t{i}\t{q}\t{j}" for x, p in enumerate(people) for q in people[x + 1 :] for i in (1, 2) for j in (1, 3)
    ]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    assert (
        CliRunner().invoke(cli_main, ["models", "add", "cal-fr", "--onnx", str(FR_FEATURE), "--mean", "127"]).exit_code
        == 0
    )
    ds = lookalike.open(tmp_path / "c.duckdb")
    ds.index(str(DATA / "gallery"), table="t", model="cal-fr")
    assert all(h.same_person is None for h in ds.search(QUERY, table="t", top_k=2).hits)
    result = CliRunner().invoke(
        cli_main, ["models", "calibrate", "cal-fr", "--pairs", str(pairs), "--images", str(DATA / "gallery")]
    )
    assert result.exit_code == 0, result.output
    assert "FAR 0.1 %" in result.output
    card = get_card("cal-fr")
    assert card.calibrated and 0.3 < card.threshold < 0.9
    ds.index(str(DATA / "gallery"), table="t")  # the next index run takes the calibration
    hits = ds.search(QUERY, table="t", top_k=2).hits
    assert hits[0].same_person is True
    bad = tmp_path / "bad.txt"
    bad.write_text("a b\n")
    assert (
        CliRunner()
        .invoke(cli_main, ["models", "calibrate", "cal-fr", "--pairs", str(bad), "--images", str(DATA)])
        .exit_code
        == 1
    )
