"""fp16 mixed precision: the GradScaler's state survives a resume; an inf gradient skips a step."""

from __future__ import annotations

import sys

import pytest
import torch

from cnnlab.checkpoint import STATE_FILE, load_state
from cnnlab.models import list_models, register_model
from cnnlab.models.simple_cnn import SimpleCNN
from cnnlab.train import fit

TINY = dict(image_size=8, max_train_images=128, batch_size=32, threads=1, quiet=True,
            report=False, eval_split=None, precision="fp16", augment="none")
INF_AT_BATCH = 4  # the training batch whose gradients become inf (2 and 3 overflow anyway)


class _InfGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by inf."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class _InfOnce(SimpleCNN):
    """simple_cnn whose INF_AT_BATCH-th training forward pass gets an inf gradient."""

    calls = 0

    def forward(self, x):
        out = super().forward(x)
        if not self.training:  # (the model summary's passes do not count)
            return out
        _InfOnce.calls += 1
        return _InfGradient.apply(out) if _InfOnce.calls == INF_AT_BATCH else out


if "test_inf_grad_cnn" not in list_models():
    @register_model(name="test_inf_grad_cnn")
    def _inf_grad_cnn(num_classes: int = 10, in_channels: int = 3) -> SimpleCNN:
        return _InfOnce(num_classes, in_channels)


def test_inf_gradient_skips_the_step_and_is_logged(tmp_path, capsys, monkeypatch):
    paths = dict(out_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"))
    # The same run without the forced inf: the scaler's start (2**16) may overflow by itself.
    monkeypatch.setattr(sys.modules[__name__], "INF_AT_BATCH", -1)
    _InfOnce.calls = 0
    plain = fit(**TINY, epochs=1, model="test_inf_grad_cnn", **paths, name="plain")
    monkeypatch.setattr(sys.modules[__name__], "INF_AT_BATCH", 4)
    _InfOnce.calls = 0
    capsys.readouterr()
    forced = fit(**TINY, epochs=1, model="test_inf_grad_cnn", **paths, name="forced")
    skipped = forced.history[0]["skipped_steps"]
    assert skipped == plain.history[0]["skipped_steps"] + 1
    out = capsys.readouterr().out
    assert f"fp16: {skipped} of 4 optimizer steps skipped (inf/NaN gradients)" in out
    a, b = (load_state(r.run_dir / STATE_FILE)["scaler"] for r in (plain, forced))
    assert b["scale"] == a["scale"] / 2  # the forced skip backed the scale off once more
    assert not all(torch.equal(load_state(plain.run_dir / STATE_FILE)["model"][k], v)
                   for k, v in load_state(forced.run_dir / STATE_FILE)["model"].items())


def test_scaler_state_round_trips_through_resume(tmp_path):
    # With 128 images the first steps overflow at the scaler's start, so a scaler that was not
    # restored would skip again after the resume and end elsewhere.
    # schedule none: extending 1 epoch to 2 on resume keeps the learning rates of a 2-epoch run.
    paths = dict(out_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"),
                 schedule="none")
    first = fit(**TINY, epochs=1, **paths, name="r")
    s1 = load_state(first.run_dir / STATE_FILE)["scaler"]
    assert set(s1) >= {"scale", "_growth_tracker"}
    fit(resume=first.run_dir, epochs=2)
    whole = fit(**TINY, epochs=2, **paths, name="whole")
    a = load_state(first.run_dir / STATE_FILE)
    b = load_state(whole.run_dir / STATE_FILE)
    assert a["scaler"] == b["scaler"] and a["scaler"] != s1
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_fp16_is_a_precision_choice():
    from cnnlab.train import TrainConfig

    assert TrainConfig(precision="fp16").precision == "fp16"
    with pytest.raises(ValueError, match="precision.*fp16"):
        TrainConfig(precision="fp8")
