"""Int8 ONNX export: calibrated on the run's training images, checked against fp32 on its
validation split, refused (nothing written) when it disagrees or keeps compute ops in fp32."""

from __future__ import annotations

import json
import shutil

import onnx
import onnxruntime as ort
import pytest
import torch
from _utils import write_digit_pngs
from torch import nn

from cnnlab.checkpoint import load_model, save_checkpoint
from cnnlab.cli import main
from cnnlab.data import load_data, to_float_normalized
from cnnlab.export import export, load_predictor
from cnnlab.export.available import available_backends
from cnnlab.export.quantize import QuantizationRefused, compare_logits
from cnnlab.prediction import predict

SIZE = 16


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # trains a run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """simple_cnn trained on the 10 digits at 16x16 for a few epochs (a real run directory)."""
    from cnnlab.train import fit

    tmp = tmp_path_factory.mktemp("int8")
    result = fit(image_size=SIZE, batch_size=32, epochs=4, threads=1, quiet=True, report=False,
                 eval_split=None, out_dir=str(tmp / "runs"), cache_dir=str(tmp / "cache"))  # fmt: skip
    return result.run_dir


def _props(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _val(run_dir):
    """The run's validation images (normalized) and labels, loaded independently of cnnlab's
    export code: digits is split by the default seed."""
    model, meta = load_model(run_dir)
    bundle = load_data("digits", image_size=SIZE, cache_dir=None, use_cache=False)
    norm = meta["normalization"]
    x = to_float_normalized(bundle.val.images, norm["mean"], norm["std"]).numpy()
    return model, x, bundle.val.labels.numpy()


def test_int8_export_is_checked_and_carries_its_figures(run_dir, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    args = ["export", str(run_dir), "--quantize", "int8", "--dynamic-batch", "--out", str(out),
            "--calibration-size", "128"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "top-1 agreement int8 vs fp32" in text and f"exported int8 onnx to {out}" in text
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3  # every conv and linear layer's weights
    q = json.loads(_props(out)["quantization"])
    assert q["format"] == "QDQ" and q["calibration"] == {"split": "train", "images": 128, "seed": 0}
    check = q["check"]
    assert check["split"] == "val" and check["images"] == 179 and check["agreement"] >= 0.99
    assert q["float_ops"] == [] and q["forced"] is False

    # The figures are what ONNX Runtime computes on the run's validation split.
    model, x, y = _val(run_dir)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (int8,) = session.run(None, {"input": x})
    with torch.no_grad():
        fp32 = model(torch.from_numpy(x)).numpy()
    ours = compare_logits(fp32, int8, y)
    assert ours.agreement == pytest.approx(check["agreement"], abs=1 / 179)
    assert ours.top1_fp32 == pytest.approx(check["top1_fp32"], abs=1 / 179)
    assert ours.top1_int8 == pytest.approx(check["top1_int8"], abs=1e-9)
    assert ours.max_logit_diff == pytest.approx(check["max_logit_diff"], abs=1e-3)
    assert 0 < check["mean_logit_diff"] < check["max_logit_diff"]  # really int8: not equal

    # predict takes the int8 file like any ONNX export, and --backend list says what it is.
    pngs = write_digit_pngs(tmp_path / "pngs", n=6)
    predictor = load_predictor(out)
    assert predictor.meta["quantization"]["check"] == check
    results = predict(predictor, [p for p, _ in pngs], top_k=1)
    assert len(results) == 6 and all(r.classes[0] in [str(i) for i in range(10)] for r in results)
    assert main(["predict", str(out), "--backend", "list"]) == 0
    listing = capsys.readouterr().out
    assert "onnx" in listing and "int8 (QDQ" in listing and "agreement with fp32" in listing


def test_export_api_and_backend_list_of_a_run(run_dir):
    result = export(run_dir, "onnx", quantize="int8", calibration_size=64)
    assert result.path == run_dir / "export" / "model-int8.onnx" and not result.dynamic_batch
    assert result.quantization.images == 179 and result.quantization.agreement >= 0.99
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, SIZE, SIZE]
    rows = available_backends(run_dir)
    assert [r.backend for r in rows[:3]] == ["torch", "channels_last", "onnx"]
    assert all(r.available for r in rows) and "[auto]" in rows[2].description
    assert any(str(result.path) in r.description and "int8" in r.description for r in rows)
    with pytest.raises(ValueError, match="quantize must be one of 'int8'"):
        export(run_dir, "onnx", quantize="int4")
    with pytest.raises(ValueError, match="needs format 'onnx'"):
        export(run_dir, "torchscript", quantize="int8")
    with pytest.raises(ValueError, match="min_agreement must be a number in"):
        export(run_dir, "onnx", quantize="int8", min_agreement=1.5)
    with pytest.raises(ValueError, match="calibration_size must be"):
        export(run_dir, "onnx", quantize="int8", calibration_size=0)


def test_predict_without_images_says_what_to_give(run_dir, capsys):
    assert main(["predict", str(run_dir)]) == 2
    assert "give at least one IMAGE_OR_DIR" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--backend", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing[:3]] == ["torch", "channels_last", "onnx"]


def _tied_run(run_dir, dest):
    """The run with a head whose class weights differ by far less than one int8 step: fp32
    still tells the classes apart, int8 sees ties (and takes the first class)."""
    model, meta = load_model(run_dir)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        w0 = head.weight[0].clone()
        step = w0.abs().max() / 127
        noise = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0))
        head.weight.copy_(w0 + noise * step * 1e-3)
        head.bias.zero_()
    dest.mkdir()
    shutil.copy(run_dir / "config.yaml", dest / "config.yaml")
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "format", "version")}
    save_checkpoint(dest / "best.safetensors", model, meta)
    return dest


def test_disagreeing_int8_model_is_refused_and_nothing_is_written(run_dir, tmp_path, capsys):
    tied = _tied_run(run_dir, tmp_path / "tied")
    out = tmp_path / "refused.onnx"
    args = [
        "export",
        str(tied),
        "--quantize",
        "int8",
        "--out",
        str(out),
        "--calibration-size",
        "64",
    ]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "top-1 agreement int8 vs fp32" in captured.out  # the figures are still printed
    err = captured.err.strip()
    assert "below --min-agreement 0.99" in err and "nothing written" in err and "--force" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not (tied / "export").exists()
    assert main(args + ["--force"]) == 0
    assert "warning (--force): agreement below --min-agreement" in capsys.readouterr().out
    q = json.loads(_props(out)["quantization"])
    assert q["forced"] is True and q["check"]["agreement"] < 0.99


def upsampling_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A conv net with a learned upsampling (ConvTranspose2d): ONNX Runtime has no int8 kernel
    for ConvTranspose, so an int8 export would run it in fp32."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(8, 8, 2, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )  # fmt: skip


def test_op_without_int8_kernel_is_named_and_nothing_is_written(
    run_dir, tmp_path, capsys, monkeypatch
):
    import cnnlab.checkpoint

    # Not registered in the zoo (the zoo's tests run every registered model): the checkpoint
    # names it, and only this test knows how to build it.
    zoo_build = cnnlab.checkpoint.build_model
    monkeypatch.setattr(
        cnnlab.checkpoint,
        "build_model",
        lambda meta: upsampling_cnn(**meta["model"]["kwargs"])
        if meta["model"]["name"] == "upsampling_cnn"
        else zoo_build(meta),
    )
    _, meta = load_model(run_dir)
    run = tmp_path / "upsampling"
    run.mkdir()
    shutil.copy(run_dir / "config.yaml", run / "config.yaml")
    torch.manual_seed(0)
    net = upsampling_cnn(num_classes=10, in_channels=1).eval()
    spec = {"name": "upsampling_cnn", "kwargs": {"num_classes": 10, "in_channels": 1}}
    keep = ("class_names", "normalization", "input_size")
    save_checkpoint(run / "best.safetensors", net, {"model": spec, **{k: meta[k] for k in keep}})
    with pytest.raises(QuantizationRefused, match=r"no int8 kernel for op ConvTranspose \(here: "
                       r"ConvTranspose '/2/ConvTranspose'\)"):  # fmt: skip
        export(run, "onnx", quantize="int8", calibration_size=16)
    assert not (run / "export").exists()
    assert main(["export", str(run), "--quantize", "int8", "--calibration-size", "16"]) == 2
    err = capsys.readouterr().err
    assert "ConvTranspose" in err and "nothing written" in err and "Traceback" not in err
    forced = export(run, "onnx", quantize="int8", calibration_size=16, force=True, min_agreement=0)
    assert [op for op, _ in forced.float_ops] == ["ConvTranspose"]
    assert json.loads(_props(forced.path)["quantization"])["float_ops"] == ["ConvTranspose"]


def test_run_without_config_needs_data(run_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "best.safetensors", bare / "best.safetensors")
    assert main(["export", str(bare), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml' does not exist" in err and "--data digits" in err
    result = export(bare, "onnx", quantize="int8", calibration_size=32, data="digits",
                    out=tmp_path / "bare.onnx")  # fmt: skip
    assert result.quantization.images == 179
    assert main(["export", str(run_dir), "--format", "torchscript", "--quantize", "int8"]) == 2
    assert "needs --format onnx" in capsys.readouterr().err
