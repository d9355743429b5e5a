"""Optimizers and per-batch schedules against torch's own schedulers, and decay groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.models import create
from cnnlab.train import TrainConfig
from cnnlab.train._setup import build_optimization
from cnnlab.train.optim import build_optimizer, build_scheduler, lr_factor


def _lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _sgd(lr=0.1):
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


@pytest.mark.parametrize("pct", [0.25, 0.3])
def test_onecycle_matches_torch_onecycle(pct):
    epochs, steps = 3, 7
    ours_opt, ref_opt = _sgd(), _sgd()
    ours = build_scheduler(ours_opt, schedule="onecycle", epochs=epochs, steps_per_epoch=steps,
                           onecycle_pct=pct)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=0.1, epochs=epochs, steps_per_epoch=steps, pct_start=pct,
        cycle_momentum=False, anneal_strategy="cos",
    )
    a, b = _lrs(ours, ours_opt, epochs * steps), _lrs(ref, ref_opt, epochs * steps)
    assert a == pytest.approx(b, rel=1e-9)
    assert a[0] == pytest.approx(0.1 / 25)


def test_cosine_with_warmup_matches_torch():
    epochs, steps, warm = 4, 5, 5
    ours_opt, ref_opt = _sgd(), _sgd()
    ours = build_scheduler(ours_opt, schedule="cosine", epochs=epochs, steps_per_epoch=steps,
                           warmup_epochs=1.0)
    ref = torch.optim.lr_scheduler.SequentialLR(
        ref_opt,
        [torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda s: (s + 1) / warm),
         torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=epochs * steps - warm)],
        milestones=[warm],
    )
    a, b = _lrs(ours, ours_opt, epochs * steps), _lrs(ref, ref_opt, epochs * steps)
    assert a == pytest.approx(b, abs=1e-9)


def test_step_schedule_decays_per_epoch_but_steps_per_batch():
    opt = _sgd(1.0)
    sched = build_scheduler(opt, schedule="step", epochs=4, steps_per_epoch=3, step_size=2,
                            gamma=0.5)
    assert _lrs(sched, opt, 12) == [1.0] * 6 + [0.5] * 6


def test_none_schedule_is_constant():
    assert {lr_factor(s, schedule="none", total_steps=10, steps_per_epoch=2)
            for s in range(10)} == {1.0}
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor(0, schedule="poly", total_steps=10, steps_per_epoch=2)


def test_no_weight_decay_on_biases_and_norms():
    model = create("simple_cnn_bn", num_classes=10, in_channels=1)
    opt, _ = build_optimization(TrainConfig(weight_decay=0.1), model, steps_per_epoch=4)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decay) == (p.ndim > 1), name
    norm_weights = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norm_weights and all(id(w) not in decay for w in norm_weights)
    held = sum(len(g["params"]) for g in opt.param_groups)
    assert held == len(list(model.parameters()))


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam),
                                           ("adamw", torch.optim.AdamW),
                                           ("sgd", torch.optim.SGD)])
def test_optimizers(name, cls):
    params = [nn.Parameter(torch.ones(3))]
    opt = build_optimizer([{"params": params}], name, 0.1, momentum=0.8,
                          nesterov=name == "sgd")
    assert type(opt) is cls
    group = opt.param_groups[0]
    if name == "sgd":
        assert group["momentum"] == 0.8 and group["nesterov"] is True
    else:
        assert group["betas"] == (0.8, 0.999)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([{"params": []}], name, 0.1)


def test_head_and_backbone_learning_rates():
    model = create("simple_cnn", num_classes=3, in_channels=1)
    cfg = TrainConfig(lr=0.01, head_lr=0.1, backbone_lr=0.001)
    opt, sched = build_optimization(cfg, model, steps_per_epoch=2)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["head"] == pytest.approx(0.1 / 25)  # onecycle starts at peak / 25
    assert lrs["backbone"] == pytest.approx(0.001 / 25)
    assert all(math.isclose(b, g["initial_lr"]) for b, g in zip(sched.base_lrs, opt.param_groups))
