"""``cnnlab summary``: zoo names, import paths, formats and clear errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cnnlab.cli import main
from cnnlab.cli.summary import load_model, parse_input


def _run(capsys, *argv):
    code = main(["summary", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_path_json(capsys):
    code, out, _ = _run(
        capsys, "torchvision.models:squeezenet1_1", "--input", "3x64x64", "--format", "json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "SqueezeNet"
    assert data["input_shapes"] == [[1, 3, 64, 64]]
    assert data["totals"]["params"] == 1_235_496  # torchvision's published count
    assert data["rows"][0]["output_shape"] == [[1, 1000]]
    assert data["not_counted"] == {}


def test_module_instance_and_several_inputs(capsys):
    code, out, _ = _run(capsys, "torch.nn:Flatten", "--input", "2x3x4", "--format", "json")
    assert code == 0
    assert json.loads(out)["rows"][0]["output_shape"] == [[1, 24]]


def test_zoo_name_csv_with_depth_and_channels(capsys):
    code, out, _ = _run(
        capsys, "lenet5", "--input", "1x28x28", "--format", "csv", "--depth", "1", "--batch-size", "2"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows[:3]] == ["", "features", "pool"]
    assert all(r["depth"] in ("0", "1") for r in rows)
    assert rows[0]["output_shape"] == "2x10"  # 10 classes, batch 2
    assert rows[1]["output_shape"] == "2x16x5x5"  # in_channels taken from --input (1)
    assert rows[1]["params"] == str(1 * 6 * 25 + 6 + 6 * 16 * 25 + 16)


def test_table_and_torchvision_name(capsys):
    code, out, _ = _run(capsys, "torchvision:squeezenet1_1", "--input", "3x96x96", "--depth", "1")
    assert code == 0
    assert "FLOPs = 2 × MACs" in out and "1,235,496" in out
    assert "not counted: none" in out


@pytest.mark.parametrize("bad", ["3x", "3xax224", "0x224x224", "224", "3x-1x4", ""])
def test_bad_input_string(capsys, bad):
    code, _, err = _run(capsys, "lenet5", "--input", bad)
    assert code == 2
    assert "--input must be" in err and repr(bad) in err


@pytest.mark.parametrize(
    "model, message",
    [
        ("lenet", "unknown model name 'lenet'"),
        ("no_such_pkg.mod:net", "cannot import module 'no_such_pkg.mod'"),
        ("torchvision.models:resnet1", "closest names: resnet18"),
        ("torchvision:resnet1", "torchvision has no model 'resnet1'"),
        ("json:dumps", "calling dumps() failed"),
        ("json:JSONDecoder", "returned JSONDecoder, not a torch.nn.Module"),
        ("torchvision.models:", "must look like package.module:callable"),
    ],
)
def test_bad_model_names(capsys, model, message):
    code, _, err = _run(capsys, model, "--input", "3x32x32")
    assert code == 2
    assert message in err


def test_too_small_input_is_one_clear_line(capsys):
    # SqueezeNet 1.1 at 16x16: conv s2 -> 7, pools (k3 s2, ceil) -> 3 -> 1, then the third pool
    # on 1 pixel: ceil((1 - 3) / 2) + 1 = 0
    code, _, err = _run(capsys, "torchvision:squeezenet1_1", "--input", "3x16x16")
    assert code == 2
    assert "input too small" in err and "'features.8' (MaxPool2d)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_parse_input_and_load_model_helpers():
    assert parse_input("3x224x224,1x224x224", 4) == [(4, 3, 224, 224), (4, 1, 224, 224)]
    with pytest.raises(ValueError, match="--batch-size"):
        parse_input("3x8x8", 0)
    assert load_model("torchvision.models:squeezenet1_1", num_classes=7).num_classes == 7
