"""`cnnlab train` on the command line: flags, --config YAML, errors as one clear line."""

from __future__ import annotations

import subprocess
import sys

import yaml

from cnnlab.cli import main

TINY = ["--image-size", "8", "--max-train-images", "128", "--batch-size", "32", "--epochs", "1",
        "--threads", "1", "--quiet", "--no-report"]


def test_train_prints_its_run_directory_and_saves_the_effective_config(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"lr": 0.002, "label_smoothing": 0.05, "optimizer": "adam",
                                      "cache_dir": str(tmp_path / "cache")}))
    code = main(["train", *TINY, "--config", str(config), "--out-dir", str(tmp_path / "runs"),
                 "--name", "cli", "--lr", "0.004"])
    out = capsys.readouterr().out
    assert code == 0
    run_dir = tmp_path / "runs" / "cli"
    assert f"run directory: {run_dir}" in out
    assert "test accuracy" in out
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["lr"] == 0.004 and saved["label_smoothing"] == 0.05  # flag over YAML
    assert saved["optimizer"] == "adam" and saved["epochs"] == 1


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: 1\nlearnin_rate: 0.1\n")
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'learnin_rate'" in err and "valid keys are" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", "--optimizer", "rmsprop", "--out-dir", str(tmp_path)]) == 2
    assert "optimizer must be one of 'adam', 'adamw', 'sgd'" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["train", "--model-arg", "dropout", "--out-dir", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_divergence_exits_1_with_the_reason(tmp_path, capsys):
    code = main(["train", *TINY, "--optimizer", "sgd", "--lr", "1e9", "--schedule", "none",
                 "--weight-decay", "0", "--out-dir", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 1
    assert "loss became" in capsys.readouterr().err


def test_train_help_does_not_import_torch():
    code = (
        "import argparse, sys\n"
        "import cnnlab.cli.train as t\n"
        "t.add_parser(argparse.ArgumentParser().add_subparsers())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
