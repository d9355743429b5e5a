"""evaluate(): metrics against scikit-learn, saved files, splits, other data, clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_data
from cnnlab.evaluation import _metrics
from cnnlab.train import fit


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    result = fit(image_size=8, max_train_images=256, batch_size=32, epochs=2, threads=1,
                 quiet=True, report=False, eval_split=None, out_dir=str(tmp / "runs"),
                 cache_dir=str(tmp / "cache"))
    return result.run_dir


def test_files_and_numbers_agree_with_sklearn(run_dir):
    result = cnnlab.evaluate(run_dir, split="test")
    out = run_dir / "eval" / "test"
    assert result.out_dir == out
    for name in ("metrics.json", "per_class.csv", "confusion.csv", "confusion.json",
                 "predictions.csv"):
        assert (out / name).is_file(), name
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    y_true = [int(r["true"]) for r in preds]
    y_pred = [int(r["predicted"]) for r in preds]
    assert len(preds) == result.metrics["num_images"] == 179
    p, r, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(10)), zero_division=0
    )
    rows = list(csv.DictReader((out / "per_class.csv").open()))
    assert [float(x["precision"]) for x in rows] == pytest.approx(p, abs=1e-6)
    assert [float(x["recall"]) for x in rows] == pytest.approx(r, abs=1e-6)
    assert [float(x["f1"]) for x in rows] == pytest.approx(f1, abs=1e-6)
    assert [int(x["support"]) for x in rows] == support.tolist()
    conf = json.loads((out / "confusion.json").read_text())["matrix"]
    assert np.array_equal(np.array(conf), confusion_matrix(y_true, y_pred, labels=range(10)))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))
    assert metrics["top5_accuracy"] >= metrics["accuracy"]
    assert metrics["split"] == "test" and metrics["checkpoint"].endswith("best.safetensors")


def test_top5_only_above_five_classes_and_zero_division():
    logits = torch.tensor([[3.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    result = _metrics(logits, y, ["a", "b", "c"])
    assert result.metrics["top5_accuracy"] is None
    assert result.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    c = result.per_class[2]
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    logits6 = torch.eye(6)[[1, 2]] * 5  # predicts 1 and 2; true classes 0 and 2
    top = _metrics(logits6, torch.tensor([0, 2]), list("abcdef")).metrics
    assert top["accuracy"] == 0.5 and top["top5_accuracy"] == 1.0


def test_splits_all_and_bundle_data(run_dir):
    val = cnnlab.evaluate(run_dir, split="val", save=False)
    assert val.metrics["num_images"] == 179 and val.out_dir is None
    everything = cnnlab.evaluate(run_dir, split="all", save=False)
    assert everything.metrics["num_images"] == 1797  # every digit: the full train split too
    bundle = load_data("digits", image_size=8, seed=0)
    same = cnnlab.evaluate(run_dir, split="test", data=bundle, save=False)
    assert same.confusion.tolist() == cnnlab.evaluate(run_dir, save=False).confusion.tolist()


def test_wrong_image_size_or_split_is_clear(run_dir):
    with pytest.raises(ValueError, match=r"\[1, 16, 16\].*trained on \[1, 8, 8\]"):
        cnnlab.evaluate(run_dir, data=load_data("digits", image_size=16), save=False)
    with pytest.raises(ValueError, match="split must be one of"):
        cnnlab.evaluate(run_dir, split="holdout")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cnnlab.evaluate(run_dir / "nope")


def test_cli_prints_tables_and_json(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "per class" in out and "confusion matrix" in out
    assert (run_dir / "eval" / "val" / "confusion.csv").is_file()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 179
