"""Where onnxruntime models run (``LOOKALIKE_DEVICE``, :mod:`lookalike.faces.runtime`).

This machine has no GPU and the plain ``onnxruntime`` package, so the CPU paths run for real. The GPU paths can't:
where a test needs onnxruntime to *offer* a CUDA provider, ``onnxruntime.get_available_providers`` is patched to
list one (a mock, because no CUDA build can run here); the session itself is still built by the real onnxruntime,
which then has to fall back to the CPU, and that fallback is what is checked.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from lookalike.cli import main
from lookalike.errors import InvalidArgument, ModelError
from lookalike.faces import runtime
from lookalike.faces.models import WEIGHTS_DIR
from lookalike.faces.registry import get_card

MODEL = WEIGHTS_DIR / "fr_feature.onnx"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_FALLBACK", {})
    monkeypatch.delenv("LOOKALIKE_DEVICE", raising=False)


def _offer_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [runtime.CUDA, *real])


def test_auto_uses_the_cpu_here_and_says_why() -> None:
    assert runtime.ort_providers() == [runtime.CPU]
    device, note = runtime.onnx_device()
    assert device == "cpu" and "no CUDA provider" in note
    assert runtime.ort_session(MODEL).get_providers() == [runtime.CPU]


def test_cuda_without_a_gpu_is_a_clear_error_not_a_silent_cpu_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cuda")
    with pytest.raises(ModelError, match="LOOKALIKE_DEVICE=cuda"):
        runtime.ort_session(MODEL)
    assert runtime.onnx_device()[0] == "none"


def test_an_unknown_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_DEVICE", "gpu")
    with pytest.raises(InvalidArgument, match="auto, cpu, cuda"):
        runtime.ort_providers()


def test_cpu_never_asks_for_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _offer_cuda(monkeypatch)
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cpu")
    assert runtime.ort_providers() == [runtime.CPU]
    assert runtime.onnx_device() == ("cpu", "LOOKALIKE_DEVICE=cpu")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_auto_falls_back_to_the_cpu_when_the_cuda_provider_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    _offer_cuda(monkeypatch)
    assert runtime.ort_providers() == [runtime.CUDA, runtime.CPU]
    assert runtime.onnx_device()[0] == "cuda"
    session = runtime.ort_session(MODEL)  # the real onnxruntime has no CUDA: it must end up on the CPU
    assert session.get_providers()[0] == runtime.CPU
    device, note = runtime.onnx_device()
    assert device == "cpu" and "CUDA provider" in note
    assert runtime.ort_providers() == [runtime.CPU]  # later sessions don't try again
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 112, 112), np.float32)})[0]
    assert out.shape[-1] == 512


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_cuda_asked_for_but_not_started_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _offer_cuda(monkeypatch)
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cuda")
    with pytest.raises(ModelError, match="LOOKALIKE_DEVICE=cuda"):
        runtime.ort_session(MODEL)


def test_models_lists_the_device_of_each_model() -> None:
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    import json

    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["fr-feature"]["device"] == "cpu" and "CUDA" in rows["fr-feature"]["device_note"]
    assert rows["mobilefacenet"]["runtime"] == "litert" and rows["mobilefacenet"]["device"] == "cpu"
    assert runtime.model_device(get_card("dlib-resnet")) == ("cpu", "dlib runs on the CPU")
    text = CliRunner().invoke(main, ["models"]).output
    assert "device" in text and "onnxruntime models run on the CPU" in text
