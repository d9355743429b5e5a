"""The main job: `cnnlab train` with no arguments reaches >= 97% test accuracy on digits.

This is the full default run (simple_cnn, 1,439 training digits at 32x32, the default epochs);
it takes ~10 s on two quiet cores. Its wall time is not asserted (tests are not benchmarks).
"""

from __future__ import annotations

import json

import pytest

from cnnlab.cli import main


@pytest.mark.slow
def test_cnnlab_train_without_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "digits-simple_cnn"
    assert "run directory: runs/digits-simple_cnn" in out
    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    assert metrics["num_images"] == 179
    assert metrics["accuracy"] >= 0.97
