"""fit(): run directory contents, exact repeatability, early stopping, divergence, options."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from cnnlab.checkpoint import load_model, load_state, read_checkpoint
from cnnlab.train import TrainConfig, TrainingDiverged, fit

# Tiny settings: 8x8 digits (their native size), 256 training images, a couple of epochs.
TINY = dict(image_size=8, max_train_images=256, batch_size=32, epochs=2, quiet=True, threads=1,
            report=False)


def _tiny(tmp_path, **kw):
    return fit(**{**TINY, "out_dir": str(tmp_path / "runs"),
                  "cache_dir": str(tmp_path / "cache"), **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _tiny(tmp_path_factory.mktemp("loop"), epochs=3, lr=5e-3)


def test_run_directory_contents(run):
    d = run.run_dir
    assert d.name == "digits-simple_cnn"
    for name in ("config.yaml", "data.json", "metrics.csv", "last.safetensors",
                 "best.safetensors", "train_state.pt", "eval/test/metrics.json"):
        assert (d / name).is_file(), name
    rows = list(csv.DictReader((d / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                             "epoch_time_s", "images_per_s", "val_macro_f1", "val_balanced_acc"]
    cfg = TrainConfig(**yaml.safe_load((d / "config.yaml").read_text()))
    assert cfg.epochs == 3 and cfg.lr == 5e-3 and cfg.image_size == 8
    data = json.loads((d / "data.json").read_text())
    assert data["class_names"] == [str(i) for i in range(10)]
    assert data["split_sizes"]["train"] == 256


def test_checkpoint_metadata_rebuilds_the_model(run):
    _, meta = read_checkpoint(run.run_dir / "last.safetensors")
    assert meta["model"] == {"name": "simple_cnn",
                             "kwargs": {"num_classes": 10, "in_channels": 1}}
    assert meta["input_size"] == [1, 8, 8] and meta["epoch"] == 3
    assert len(meta["normalization"]["mean"]) == 1
    assert meta["metrics"]["val_acc"] == pytest.approx(run.history[-1]["val_acc"])
    model, best_meta = load_model(run.run_dir)
    assert best_meta["epoch"] == run.best_epoch
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_it_learns_and_reports(run):
    m = run.metrics
    assert m["epochs_run"] == 3 and m["best_epoch"] in (1, 2, 3)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert m["test_acc"] > 0.5  # chance is 0.1; 3 tiny epochs reach ~0.8-0.9
    assert m["test_top5_acc"] >= m["test_acc"]
    state = load_state(run.run_dir / "train_state.pt")
    assert state["epoch"] == 3 and set(state["rng"]) >= {"torch", "numpy", "python", "shuffle"}


def test_same_seed_repeats_exactly_and_other_seed_differs(tmp_path, run):
    again = _tiny(tmp_path, epochs=3, lr=5e-3)
    assert again.run_dir != run.run_dir
    a, _ = read_checkpoint(run.run_dir / "last.safetensors")
    b, _ = read_checkpoint(again.run_dir / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if not k.endswith("_s") and k != "images_per_s"}
             for r in (*run.history, *again.history)]
    assert strip[:3] == strip[3:]
    other = _tiny(tmp_path, epochs=1, lr=5e-3, seed=1)
    c, _ = read_checkpoint(other.run_dir / "last.safetensors")
    assert not torch.equal(a["classifier.fc2.weight"], c["classifier.fc2.weight"])


def test_unique_run_names(tmp_path):
    first = _tiny(tmp_path, epochs=1, eval_split=None)
    second = _tiny(tmp_path, epochs=1, eval_split=None)
    assert (first.run_dir.name, second.run_dir.name) == ("digits-simple_cnn",
                                                         "digits-simple_cnn-2")
    named = _tiny(tmp_path, epochs=1, eval_split=None, name="mine")
    assert named.run_dir.name == "mine"
    with pytest.raises(ValueError, match="already exists.*--resume"):
        _tiny(tmp_path, epochs=1, name="mine")


def test_early_stopping(tmp_path):
    # lr 1e-12 leaves the weights unchanged (below float32 resolution): no epoch improves.
    result = _tiny(tmp_path, epochs=6, lr=1e-12, schedule="none", patience=2)
    assert result.stopped == "early_stopping"
    assert len(result.history) == 3 and result.best_epoch == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # Epoch 1 trains normally; the step schedule then multiplies the lr by 1e12.
    with pytest.raises(TrainingDiverged, match=r"loss became .*epoch 2.*last good checkpoint"):
        _tiny(tmp_path, epochs=3, optimizer="sgd", lr=0.05, weight_decay=0.0,
              schedule="step", step_size=1, gamma=1e12, name="boom")
    run_dir = tmp_path / "runs" / "boom"
    _, meta = read_checkpoint(run_dir / "last.safetensors")
    assert meta["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in read_checkpoint(run_dir / "last.safetensors")[0].values())
    assert load_state(run_dir / "train_state.pt")["epoch"] == 1


def test_options_sgd_nesterov_smoothing_clip_bf16_nhwc_off(tmp_path):
    result = _tiny(tmp_path, epochs=1, optimizer="sgd", nesterov=True, lr=0.05,
                   label_smoothing=0.1, grad_clip=1.0, channels_last=False, precision="bf16",
                   schedule="cosine", warmup_epochs=0.5, augment="crop",
                   model="simple_cnn_bn", max_train_images=96)
    row = result.history[0]
    assert torch.isfinite(torch.tensor(row["train_loss"]))
    assert 0.0 <= row["val_acc"] <= 1.0


def test_model_args_and_preset(tmp_path):
    result = _tiny(tmp_path, epochs=1, model="simple_cnn_dropout",
                   model_args={"dropout": 0.2}, preset="course", eval_split=None)
    _, meta = read_checkpoint(result.run_dir / "last.safetensors")
    assert meta["model"]["kwargs"]["dropout"] == 0.2
    assert result.config.optimizer == "adam" and result.config.lr == 1e-3


def test_tensorboard_missing_is_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install tensorboard"):
            _tiny(tmp_path, epochs=1, tensorboard=True)
    else:
        result = _tiny(tmp_path, epochs=1, tensorboard=True)
        assert any((result.run_dir / "tensorboard").iterdir())


def test_fit_rejects_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="unknown key.*'learning_rate'.*valid keys"):
        fit(learning_rate=0.1)
    with pytest.raises(ValueError, match="device 'cuda' is not available|cuda"):
        if torch.cuda.is_available():
            raise ValueError("cuda")
        _tiny(tmp_path, epochs=1, device="cuda")


def test_pretrained_frozen_backbone_then_gradual_unfreezing(tmp_path, run):
    source, _ = read_checkpoint(run.run_dir / "best.safetensors")
    frozen = _tiny(tmp_path, epochs=1, pretrained=str(run.run_dir), freeze="backbone",
                   head_lr=1e-2, eval_split=None)
    after, _ = read_checkpoint(frozen.run_dir / "last.safetensors")
    backbone = [k for k in source if k.startswith("features.")]
    assert backbone and all(torch.equal(source[k], after[k]) for k in backbone)
    assert not torch.equal(source["classifier.fc2.weight"], after["classifier.fc2.weight"])

    # no image_size given: the input size the source run was trained at (TINY's 8), not 32
    default = _tiny(tmp_path, epochs=1, pretrained=str(run.run_dir), image_size=None,
                    freeze="backbone", eval_split=None)
    assert yaml.safe_load((default.run_dir / "config.yaml").read_text())["image_size"] is None
    assert read_checkpoint(default.run_dir / "last.safetensors")[1]["input_size"] == [1, 8, 8]

    thawed = _tiny(tmp_path, epochs=2, pretrained=str(run.run_dir), freeze="backbone",
                   unfreeze_at=2, backbone_lr=1e-3, eval_split=None)
    after2, _ = read_checkpoint(thawed.run_dir / "last.safetensors")
    assert not torch.equal(source["features.0.0.weight"], after2["features.0.0.weight"])
    groups = load_state(thawed.run_dir / "train_state.pt")["optimizer"]["param_groups"]
    assert {g["name"] for g in groups} >= {"head", "backbone"}
