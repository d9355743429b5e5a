"""``cnnlab models [PATTERN]``: the zoo table with parameters and MACs."""

from __future__ import annotations

import json

import pytest

from cnnlab.cli import main


def test_table_lists_matching_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "resnet*"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split()[0] for line in out[1:-1]]
    assert rows == ["resnet18", "resnet34", "resnet50", "resnet101"]
    assert "11.69 M" in out[1] and "1.81 G" in out[1]  # ResNet-18: 11.69 M params, 1.81 G MACs


def test_json_counts_lenet5_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "lenet5", "--num-classes", "10", "--in-channels", "1", "--format",
                 "json"]) == 0  # fmt: skip
    (row,) = json.loads(capsys.readouterr().out)
    assert row["input"] == [1, 28, 28] and row["min_input_size"] == 12
    # Weights + biases: conv 1*6*25+6, conv 6*16*25+16, fc 400*120+120, 120*84+84, 84*10+10.
    assert row["params"] == 156 + 2416 + 48120 + 10164 + 850
    # MACs = output elements x inputs per output: conv1 6*28*28 outputs x 25, conv2 16*10*10 x
    # 150, then the three fully connected layers (in x out).
    assert row["macs"] == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "no_such_net"]) == 2
    assert "no model matches 'no_such_net'; known models: alexnet" in capsys.readouterr().err
    assert main(["models", "vgg11", "--input-size", "16"]) == 2
    assert "--input-size 16 is below the minimum 32 of vgg11" in capsys.readouterr().err
    assert main(["models", "--num-classes", "0"]) == 2
    assert "--num-classes must be >= 1, got 0" in capsys.readouterr().err
