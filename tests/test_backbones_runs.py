"""A torchvision and a timm backbone through a whole run: train from a local state dict, then
evaluate, predict, report, viz gradcam, summary, export (ONNX, pt2) and --resume, all from
what the run recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.checkpoint import load_model, read_checkpoint
from cnnlab.cli import main
from cnnlab.models import create
from cnnlab.transfer import head_prefix

pytest.importorskip("timm")

MODELS = [("torchvision:mobilenet_v3_small", "features.0.0.weight"),
          ("timm:resnet10t", "conv1.0.weight")]


@pytest.mark.slow
@pytest.mark.parametrize("name, stem", MODELS)
def test_run_round_trip_from_a_local_state_dict(tmp_path, capsys, name, stem):
    torch.manual_seed(0)
    reference = create(name, num_classes=1000)  # stands in for the library's ImageNet file
    for m in reference.modules():  # realistic batch-norm statistics, so that logits are O(1)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(3):
            reference.train()(torch.randn(8, 3, 32, 32))
    weights = tmp_path / "imagenet.pth"
    torch.save(reference.state_dict(), weights)
    run = tmp_path / "runs" / "r"
    assert main(["train", "--model", name, "--pretrained", str(weights), "--freeze", "backbone",
                 "--freeze-bn", "--image-size", "32", "--max-train-images", "64",
                 "--batch-size", "32", "--epochs", "1", "--threads", "2", "--quiet",
                 "--no-report", "--out-dir", str(tmp_path / "runs"), "--name", "r",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "pretrained" in capsys.readouterr().out

    state, meta = read_checkpoint(run / "best.safetensors")
    source, _, builder = name.partition(":")
    assert meta["model"]["name"] == name and meta["model"]["source"] == source
    assert meta["model"]["builder"] == builder and meta["model"]["library_version"]
    assert meta["model"]["kwargs"] == {"num_classes": 10, "in_channels": 1}  # digits: gray
    gray_mean = sum(reference.pretrained_cfg["mean"]) / 3 if source == "timm" else 0.449
    assert meta["normalization"]["mean"] == pytest.approx([gray_mean])  # the weights' own
    # --freeze backbone --freeze-bn: every backbone tensor is the file's, bit for bit (the stem
    # is the summed RGB filters); only the head (torchvision's whole `classifier`) trained.
    ref = reference.state_dict()
    prefix = head_prefix(create(name, num_classes=10, in_channels=1))
    in_head = [k for k in state if k.startswith(prefix + ".")]
    assert in_head and all(state[k].shape[0] == 10 for k in in_head if k not in ref
                           or state[k].shape != ref[k].shape)  # the new 10-way layer
    for key, value in state.items():
        if key == stem:
            assert torch.equal(value, ref[key].sum(1, keepdim=True))
        elif key not in in_head:
            assert torch.equal(value, ref[key]), key

    image = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(image)
    assert main(["evaluate", str(run)]) == 0
    assert main(["predict", str(run), str(image), "--format", "json", "--backend", "torch"]) == 0
    assert main(["viz", "gradcam", str(run), str(image)]) == 0
    assert (run / "figures" / "gradcam.png").is_file()
    assert main(["report", str(run)]) == 0
    assert main(["summary", str(run), "--input", "1x32x32", "--depth", "1"]) == 0
    capsys.readouterr()

    model, _ = load_model(run)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        eager = model(x).numpy()
    assert np.abs(eager).max() > 0.1  # logits large enough for the comparisons to mean something
    from cnnlab.export import export

    onnx = export(run, "onnx", dynamic_batch=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - eager).max() < 1e-4 and onnx.max_abs_diff < 1e-4

    assert main(["export", str(run), "--format", "pt2"]) == 0
    assert "exported pt2" in capsys.readouterr().out
    pt2 = run / "export" / "model.pt2"
    program = torch.export.load(str(pt2)).module()  # our own file, just written
    np.testing.assert_allclose(program(x).detach().numpy(), eager, rtol=0, atol=1e-5)
    side = json.loads((run / "export" / "model.json").read_text())
    assert side["model"]["name"] == name and side["input_size"] == [1, 32, 32]

    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    _, meta = read_checkpoint(run / "last.safetensors")
    assert meta["epoch"] == 2 and meta["model"]["name"] == name
