"""Export to ONNX / TorchScript with metadata, checked with ONNX Runtime, and the backends."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _utils import SIZE

from cnnlab.checkpoint import load_model
from cnnlab.cli import main
from cnnlab.export import (
    OnnxPredictor,
    TorchPredictor,
    default_backend,
    export,
    load_predictor,
    physical_cores,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The run exported once per format: fixed-batch ONNX, dynamic-batch ONNX, TorchScript."""
    out = tmp_path_factory.mktemp("exported")
    return {
        "onnx": export(run_dir, "onnx", out=out / "m.onnx"),
        "dynamic": export(run_dir, "onnx", dynamic_batch=True, out=out),
        "torchscript": export(run_dir, "torchscript", out=out / "model.pt"),
        "dir": out,
    }


def _torch_logits(run_dir, x: np.ndarray) -> np.ndarray:
    model, _ = load_model(run_dir)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_onnx_export_carries_metadata_and_matches_pytorch(run_dir, exported):
    result = exported["onnx"]
    assert result.path == exported["dir"] / "m.onnx" and result.max_abs_diff <= 1e-4
    proto = onnx.load(str(result.path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["class_names"]) == ["zero", "one", "two"]
    assert json.loads(props["input_size"]) == [1, SIZE, SIZE]
    assert set(json.loads(props["normalization"])) == {"mean", "std"}
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, SIZE, SIZE]  # batch fixed at 1 by default
    x = np.random.default_rng(0).normal(size=(1, 1, SIZE, SIZE)).astype(np.float32)
    (got,) = session.run(None, {"input": x})
    assert np.abs(got - _torch_logits(run_dir, x)).max() <= 1e-4


def test_dynamic_batch_onnx_accepts_any_batch(run_dir, exported):
    result = exported["dynamic"]
    assert result.path == exported["dir"] / "model.onnx"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(7, 1, SIZE, SIZE)).astype(np.float32)
    (got,) = session.run(None, {"input": x})
    assert got.shape == (7, 3) and np.abs(got - _torch_logits(run_dir, x)).max() <= 1e-4


def test_torchscript_export_with_json_beside_it(run_dir, exported):
    result = exported["torchscript"]
    assert result.meta_path == exported["dir"] / "model.json"
    assert json.loads(result.meta_path.read_text())["class_names"] == ["zero", "one", "two"]
    extra = {"cnnlab.json": ""}
    scripted = torch.jit.load(str(result.path), _extra_files=extra)
    assert json.loads(extra["cnnlab.json"])["input_size"] == [1, SIZE, SIZE]
    x = np.random.default_rng(2).normal(size=(5, 1, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        got = scripted(torch.from_numpy(x)).numpy()
    assert np.abs(got - _torch_logits(run_dir, x)).max() <= 1e-5


def test_export_refuses_a_model_that_onnx_runtime_computes_differently(
    run_dir, tmp_path, monkeypatch
):
    import cnnlab.export.onnx as onnx_export

    monkeypatch.setattr(onnx_export, "max_abs_diff_vs_torch", lambda *a: 0.5)
    with pytest.raises(
        RuntimeError, match=r"disagrees with PyTorch: max abs difference .* 0.5 > 0.0001"
    ):
        export(run_dir, "onnx", out=tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_export_bad_arguments(run_dir, tmp_path):
    with pytest.raises(ValueError, match="format must be one of 'onnx', 'pt2', 'torchscript'"):
        export(run_dir, "tflite")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export(tmp_path / "missing-run")


def test_backends_give_the_same_logits(run_dir):
    x = np.random.default_rng(3).normal(size=(4, 1, SIZE, SIZE)).astype(np.float32)
    want = _torch_logits(run_dir, x)
    for backend in ("torch", "channels_last", "onnx", "auto"):
        predictor = load_predictor(run_dir, backend)
        assert np.abs(predictor(x) - want).max() <= 1e-4, backend
        assert predictor.meta["class_names"] == ["zero", "one", "two"]
    assert isinstance(load_predictor(run_dir, "auto"), OnnxPredictor)  # onnxruntime installed
    assert isinstance(load_predictor(run_dir, "torch"), TorchPredictor)
    assert physical_cores() >= 1


def test_fixed_batch_onnx_predictor_runs_larger_batches_in_chunks(run_dir, exported):
    path = exported["onnx"].path
    predictor = load_predictor(path)
    assert predictor.fixed_batch == 1
    x = np.random.default_rng(4).normal(size=(3, 1, SIZE, SIZE)).astype(np.float32)
    assert np.abs(predictor(x) - _torch_logits(run_dir, x)).max() <= 1e-4
    with pytest.raises(ValueError, match="backend 'torch' cannot run the ONNX file"):
        load_predictor(path, "torch")


def test_onnx_without_cnnlab_metadata_is_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    path = tmp_path / "plain.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 2, 2),), str(path), dynamo=False)
    with pytest.raises(ValueError, match="has no cnnlab metadata"):
        OnnxPredictor(path)


def test_cli_export(run_dir, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"exported onnx to {out}" in text and "max abs difference" in text
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_without_onnx_packages_export_says_how_to_install_and_auto_is_channels_last(
    run_dir, exported, monkeypatch, capsys
):
    for name in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)  # importing them now fails
    hint = "pip install 'cnnlab[export]'"
    assert main(["export", str(run_dir), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "ONNX export needs onnx, onnxruntime, which are not installed" in err and hint in err
    assert "Traceback" not in err
    assert main(["predict", str(exported["onnx"].path), str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "running an ONNX model needs onnxruntime" in err and hint in err
    # a run directory still predicts: auto falls back to PyTorch with channels_last
    assert default_backend() == "channels_last"
    predictor = load_predictor(run_dir, "auto")
    assert isinstance(predictor, TorchPredictor) and predictor.backend == "channels_last"
    x = np.random.default_rng(4).normal(size=(2, 1, SIZE, SIZE)).astype(np.float32)
    assert np.abs(predictor(x) - _torch_logits(run_dir, x)).max() <= 1e-4


def test_pt2_export_with_metadata_inside_and_beside(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "pt2", "--out", str(tmp_path)]) == 0
    assert "reloaded ExportedProgram" in capsys.readouterr().out
    path = tmp_path / "model.pt2"
    assert json.loads((tmp_path / "model.json").read_text())["class_names"] == ["zero", "one", "two"]
    extra = {"cnnlab.json": ""}
    program = torch.export.load(str(path), extra_files=extra)  # our own file, just written
    assert json.loads(extra["cnnlab.json"])["input_size"] == [1, SIZE, SIZE]
    x = np.random.default_rng(3).normal(size=(5, 1, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        got = program.module()(torch.from_numpy(x)).numpy()  # batch 5: the batch is dynamic
    assert np.abs(got - _torch_logits(run_dir, x)).max() <= 1e-5


def test_pt2_export_refuses_a_program_that_differs_from_eager():
    from cnnlab.export.pt2 import export_pt2

    class Drifting(torch.nn.Module):  # a Python counter: export freezes it as a constant
        calls = 0

        def forward(self, x):
            self.calls += 1
            return x.flatten(1) * self.calls

    with pytest.raises(RuntimeError, match="exported program disagrees with the eager model"):
        export_pt2(Drifting(), {"input_size": [1, 4, 4]})
