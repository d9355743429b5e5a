"""The modern recipe inside training and the commands: resume exactness with every option on,
best.json choosing raw/EMA for evaluate/predict, lr-find, evaluate --tta, report sections."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn

from cnnlab.checkpoint import (
    load_state,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from cnnlab.cli import main
from cnnlab.train import fit

RECIPE = {
    "augment": "crop,ra=2:9,erase=0.5", "mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.7,
    "ema": 0.9, "class_weights": "auto", "sampler": "balanced", "monitor": "val_balanced_acc",
    "min_delta": 0.001, "label_smoothing": 0.1,
    "schedule": "none",  # a constant lr, so that a 1-epoch run resumed to 3 equals a 3-epoch run
}


def _options(tmp_path, **extra):
    return {"image_size": 8, "max_train_images": 128, "batch_size": 32, "threads": 1,
            "quiet": True, "report": False, "out_dir": str(tmp_path / "runs"),
            "cache_dir": str(tmp_path / "cache"), **RECIPE, **extra}


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    return tmp, fit(epochs=3, name="straight", eval_split="test", **_options(tmp))


def test_every_option_on_resumes_bit_identically(recipe_run, capsys):
    tmp, straight = recipe_run
    fit(epochs=1, name="split", eval_split=None, **_options(tmp))
    fit(resume=tmp / "runs" / "split", epochs=3, eval_split=None)
    out = capsys.readouterr().out
    assert "recipe: augment PolicyAugment(" in out and "EMA decay 0.9" in out
    assert "sampler balanced" in out and "monitor val_balanced_acc (min delta 0.001)" in out
    a, b = straight.run_dir, tmp / "runs" / "split"
    wa, _ = read_checkpoint(a / "last.safetensors")
    wb, _ = read_checkpoint(b / "last.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ea, eb = load_state(a / "train_state.pt")["ema"], load_state(b / "train_state.pt")["ema"]
    assert all(torch.equal(ea[k], eb[k]) for k in ea) and int(ea["n_averaged"]) > 0


def test_metrics_best_json_and_checkpoints_agree(recipe_run):
    _, result = recipe_run
    d = result.run_dir
    rows = list(csv.DictReader((d / "metrics.csv").open()))
    assert {"val_balanced_acc", "val_macro_f1", "ema_val_acc", "ema_val_balanced_acc"} <= set(
        rows[0])
    choice = json.loads((d / "best.json").read_text())
    assert choice["monitor"] == "val_balanced_acc"
    for key, prefix in (("raw", ""), ("ema", "ema_")):
        best = None  # the rule by hand: better by more than min_delta 0.001
        for r in rows:
            v = float(r[prefix + "val_balanced_acc"])
            if best is None or v > best[1] + 0.001:
                best = (int(r["epoch"]), v)
        assert choice[key]["epoch"] == best[0], key
        assert math.isclose(choice[key]["value"], best[1], rel_tol=1e-5), key
    better = "ema" if choice["ema"]["value"] > choice["raw"]["value"] else "raw"
    assert choice["weights"] == better
    _, meta = read_checkpoint(d / "ema.safetensors")
    assert meta["weights"] == "ema" and meta["epoch"] == choice["ema"]["epoch"]
    assert meta["recipe"]["sampler"] == "balanced"
    assert resolve_checkpoint(d, "best").name == choice["checkpoint"]
    assert result.eval["weights"] == better  # the final evaluation used the better weights


def _tiny_checkpoint(path, scale):
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.fill_(scale)
    save_checkpoint(path, net, {"model": {"name": "x"}})


def test_best_json_names_what_best_means(tmp_path):
    _tiny_checkpoint(tmp_path / "best.safetensors", 1.0)
    _tiny_checkpoint(tmp_path / "last.safetensors", 2.0)
    assert resolve_checkpoint(tmp_path, "best").name == "best.safetensors"
    with pytest.raises(FileNotFoundError, match="ema.safetensors"):
        resolve_checkpoint(tmp_path, "ema")
    _tiny_checkpoint(tmp_path / "ema.safetensors", 3.0)
    (tmp_path / "best.json").write_text(json.dumps({"checkpoint": "ema.safetensors"}))
    assert resolve_checkpoint(tmp_path, "best").name == "ema.safetensors"
    assert resolve_checkpoint(tmp_path, "last").name == "last.safetensors"
    (tmp_path / "best.json").write_text(json.dumps({"checkpoint": "../x.safetensors"}))
    with pytest.raises(ValueError, match="best.json"):
        resolve_checkpoint(tmp_path, "best")
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        resolve_checkpoint(tmp_path, "newest")


def test_evaluate_tta_writes_calibration_and_the_report_shows_it(recipe_run, capsys):
    _, result = recipe_run
    d = result.run_dir
    assert main(["evaluate", str(d), "--tta", "flip"]) == 0
    out = capsys.readouterr().out
    assert "ECE (15 bins)" in out and "test-time augmentation" in out
    folder = d / "eval" / "test"
    metrics = json.loads((folder / "metrics.json").read_text())
    cal = json.loads((folder / "calibration.json").read_text())
    assert metrics["tta"] == "flip" and math.isclose(metrics["ece"], cal["ece"])
    assert sum(b["count"] for b in cal["bins"]) == metrics["num_images"]
    assert (folder / "reliability.png").stat().st_size > 1000
    # an imbalanced evaluation puts per-class recall first
    rows = [["class", "precision", "recall", "f1", "support"]] + [
        [str(k), "0.5", f"{k / 10:.1f}", "0.5", str(5 if k else 100)] for k in range(10)]
    with (folder / "per_class.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    from cnnlab.viz import write_report

    html = write_report(d).read_text()
    for title in ("Per-class recall (imbalanced classes)", "Recipe", "Calibration"):
        assert f"<h2>{title}</h2>" in html, title
    assert html.index("Per-class recall") < html.index("Training curves")
    assert "could not be made" not in html
    assert "Expected calibration error" in html and "val_balanced_acc" in html


def test_lr_find_cli_prints_the_flag_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "lr.png"
    code = main(["lr-find", "--image-size", "8", "--max-train-images", "128", "--batch-size",
                 "32", "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--steps", "30",
                 "--start-lr", "1e-5", "--end-lr", "10", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0 and "suggested: --lr " in out
    doc = json.loads(plot.with_suffix(".json").read_text())
    assert math.isclose(doc["suggestion"], doc["lr_at_min"] / 10)
    assert plot.stat().st_size > 1000
    assert main(["lr-find", "--steps", "1"]) == 2
    assert "steps must be >= 2" in capsys.readouterr().err


def test_recipe_flag_errors_are_one_line(tmp_path, capsys):
    for flags, message in (
        (["--augment", "crop,ra=x"], "ra=N:M"),
        (["--monitor", "val_f1"], "monitor must be one of"),
        (["--sampler", "weighted"], "sampler must be one of"),
        (["--ema", "1.5"], "ema must be"),
        (["--mix-prob", "2"], "mix_prob must be"),
    ):
        code = main(["train", *flags, "--out-dir", str(tmp_path), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, flags
