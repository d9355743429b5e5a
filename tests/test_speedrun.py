"""The CIFAR-10 speed run's parts: speednet, whitening and dirac init, alternating flips, the
final-evaluation TTA option, the cifar10-speedrun preset, and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnlab.checkpoint import load_state
from cnnlab.cli import main
from cnnlab.data import Normalizer
from cnnlab.models import create
from cnnlab.models.speednet import ConvGroup, SpeedNet, dirac_init_
from cnnlab.train import fit
from cnnlab.train.config import FLIP_MODES, TTA_MODES, TrainConfig, build_config
from cnnlab.train.presets import PRESETS
from cnnlab.train.speedrun import (
    AlternatingFlip,
    Lookahead,
    alternating_flip,
    parse_lookahead,
    whiten_stem,
)


@pytest.mark.parametrize("size", [16, 32, 40])
def test_speednet_shapes(size):
    net = create("speednet", num_classes=7, widths=(8, 16, 24))
    assert net(torch.zeros(2, 3, size, size)).shape == (2, 7)
    feats = net.forward_features(torch.zeros(2, 3, size, size))
    assert feats.shape[:2] == (2, 24)
    assert net.forward_head(feats, pre_logits=True).shape == (2, 24)


def test_speednet_grayscale_and_classifier_reset():
    net = create("speednet", in_channels=1, widths=(8, 8, 8))
    assert net.whiten.out_channels == 2 * 1 * 2 * 2
    net.reset_classifier(3)
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 3)


def test_speednet_frozen_parts():
    net = SpeedNet(widths=(8, 8, 8))
    assert not net.whiten.weight.requires_grad and net.whiten.bias.requires_grad
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)


@pytest.mark.parametrize("kwargs, match", [
    ({"widths": (8, 8)}, "widths must be three"),
    ({"widths": (8, 0, 8)}, "widths must be three"),
    ({"bn_momentum": 0.0}, "bn_momentum"),
])
def test_speednet_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create("speednet", **kwargs)


def test_dirac_init_is_the_identity_map():
    torch.manual_seed(0)
    conv = dirac_init_(nn.Conv2d(6, 6, 3, padding=1, bias=True))
    x = torch.randn(2, 6, 7, 7)
    assert torch.allclose(conv(x), x, atol=1e-6)
    wide = dirac_init_(nn.Conv2d(3, 5, 3, padding=1, bias=False))
    assert torch.allclose(wide(x[:, :3])[:, :3], x[:, :3], atol=1e-6)  # first 3 filters
    assert not torch.allclose(wide(x[:, :3])[:, 3:], torch.zeros(2, 2, 7, 7))  # rest random
    group = ConvGroup(4, 4)  # its convolutions start as the identity too
    assert torch.allclose(group.conv1(x[:, :4]), x[:, :4], atol=1e-6)


def _patches(x: torch.Tensor) -> torch.Tensor:
    return x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)


def test_whitening_makes_patch_covariance_identity():
    torch.manual_seed(0)
    mix = torch.randn(3, 3) + 2 * torch.eye(3)  # correlated channels, smooth-ish images
    base = torch.nn.functional.avg_pool2d(torch.randn(64, 3, 18, 18), 3, 1)  # (64, 3, 16, 16)
    x = torch.einsum("ij,njhw->nihw", mix, base)
    cov_before = _patches(x).T @ _patches(x) / len(_patches(x))
    assert (cov_before - torch.eye(12)).abs().max() > 0.5  # far from white to begin with
    net = SpeedNet(widths=(8, 8, 8))
    net.init_whitening(x, eps=1e-8)
    half = net.whiten.weight[:12]  # the other 12 filters are their negatives
    assert torch.equal(net.whiten.weight[12:], -half)
    z = torch.nn.functional.conv2d(x, half)  # (64, 12, 15, 15), bias-free
    flat = z.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = flat.T @ flat / len(flat)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3)


def test_whiten_stem_uses_normalized_training_images():
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    net = SpeedNet(widths=(8, 8, 8))
    line = whiten_stem(net, images, norm, seed=1, n=30)
    assert "30 training images" in line
    g = torch.Generator().manual_seed(1)
    pick = torch.randperm(40, generator=g)[:30].sort().values
    ref = SpeedNet(widths=(8, 8, 8))
    ref.init_whitening(norm(images[pick]))
    assert torch.equal(net.whiten.weight, ref.whiten.weight)
    with pytest.raises(ValueError, match="patch-whitening stem"):
        whiten_stem(create("simple_cnn"), images, norm)


def test_alternating_flip_flips_each_image_every_other_epoch():
    images = torch.randint(0, 256, (200, 3, 4, 5), dtype=torch.uint8)
    flips = AlternatingFlip(images, seed=3)
    mirrored = images.flip(3)
    start = flips.start_flipped
    assert 60 < int(start.sum()) < 140  # a random half starts mirrored
    for epoch in range(1, 6):
        now = flips.images(epoch)
        is_flipped = start ^ (epoch % 2 == 0)  # toggles every epoch
        assert torch.equal(now[is_flipped], mirrored[is_flipped])
        assert torch.equal(now[~is_flipped], images[~is_flipped])
    assert torch.equal(AlternatingFlip(images, seed=3).start_flipped, start)  # seeded


def test_alternating_flip_refuses_a_random_flip_too():
    from cnnlab.data import build_augment

    cfg = TrainConfig(flip="alternating", augment="crop=2,flip")
    with pytest.raises(ValueError, match="drop 'flip' from --augment"):
        alternating_flip(cfg, torch.zeros(2, 3, 4, 4), build_augment("crop=2,flip", 4))
    ok = alternating_flip(cfg, torch.zeros(2, 3, 4, 4), build_augment("crop=2,reflect", 4))
    assert isinstance(ok, AlternatingFlip)


@pytest.mark.parametrize("key, value, match", [
    ("flip", "sometimes", "flip must be one of"),
    ("tta", "five", "tta must be one of"),
])
def test_bad_options_are_one_line_errors(key, value, match):
    with pytest.raises(ValueError, match=match) as info:
        TrainConfig(**{key: value})
    assert "\n" not in str(info.value)


def test_cli_rejects_bad_flip(tmp_path, capsys):
    assert main(["train", "--flip", "sometimes", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alternating" in err[0]


def test_mode_tuples_match_their_modules():
    from cnnlab.tta import TTA_MODES as TTA

    assert TTA_MODES == TTA and FLIP_MODES == ("random", "alternating")


def test_speedrun_preset_resolves_to_its_documented_settings():
    cfg = build_config({"preset": "cifar10-speedrun"})
    p = PRESETS["cifar10-speedrun"]
    assert cfg.model == "speednet" and cfg.whiten_init and cfg.flip == "alternating"
    assert cfg.optimizer == "sgd" and cfg.nesterov and cfg.tta == p["tta"] != "none"
    assert cfg.label_smoothing == 0.2 and cfg.precision == "fp32" and cfg.channels_last
    assert "flip" not in cfg.augment.split(",")
    for key, value in p.items():
        assert getattr(cfg, key) == value
    fast = build_config({"preset": "cifar10-fast"})
    assert fast.model == "speednet_small" and fast.epochs == PRESETS["cifar10-fast"]["epochs"]


def test_fit_with_the_speedrun_methods(tmp_path, capsys):
    result = fit(model="speednet", model_args={"widths": [8, 8, 8]}, image_size=16,
                 max_train_images=96, batch_size=32, epochs=2, threads=1, optimizer="sgd",
                 nesterov=True, lr=0.2, weight_decay=1e-3, whiten_init=True,
                 flip="alternating", augment="crop=2,reflect", tta="flip",
                 eval_split="test", quiet=True, report=False, out_dir=str(tmp_path / "runs"),
                 cache_dir=str(tmp_path / "cache"))
    out = capsys.readouterr().out
    assert "whitening stem fitted to 2x2 patches of 96 training images" in out
    assert result.eval["tta"] == "flip" and 0.0 <= result.eval["accuracy"] <= 1.0
    metrics = json.loads((result.run_dir / "eval" / "test" / "metrics.json").read_text())
    assert metrics["tta"] == "flip"
    w = load_state(result.run_dir / "train_state.pt")["model"]["whiten.weight"]
    assert torch.equal(w[4:], -w[:4]) and w.abs().sum() > 0  # fitted (then frozen)


def test_fit_whiten_init_on_a_model_without_a_stem(tmp_path):
    with pytest.raises(ValueError, match="patch-whitening stem"):
        fit(whiten_init=True, image_size=8, max_train_images=32, epochs=1, threads=1,
            quiet=True, report=False, eval_split=None, out_dir=str(tmp_path / "runs"),
            cache_dir=str(tmp_path / "cache"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_lookahead_matches_a_hand_computation():
    torch.manual_seed(0)
    net = nn.Linear(3, 1, bias=False)
    w0 = net.weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    la = Lookahead(net, k=2, alpha=0.5).attach(opt)
    x = torch.randn(4, 3)

    def grad_at(w):  # d/dw of mean((x w^T)^2)
        return (2 * (x @ w.T) * x).mean(0, keepdim=True)

    fast = w0.clone()
    for _ in range(2):  # two plain SGD steps ...
        fast = fast - 0.1 * grad_at(fast)
        opt.zero_grad()
        (net(x) ** 2).mean().backward()
        opt.step()
    expected = w0 + 0.5 * (fast - w0)  # ... then the slow weights move half way, fast = slow
    assert torch.allclose(net.weight, expected, atol=1e-6)
    assert torch.allclose(la.slow[0], expected, atol=1e-6)
    opt.zero_grad()
    (net(x) ** 2).mean().backward()
    opt.step()  # step 3: no synchronisation
    assert torch.allclose(net.weight, expected - 0.1 * grad_at(expected), atol=1e-6)
    assert torch.allclose(la.slow[0], expected, atol=1e-6)


def test_lookahead_leaves_frozen_parameters_alone():
    net = SpeedNet(widths=(8, 8, 8))
    la = Lookahead(net, 1, 0.5)
    assert all(p.requires_grad for p in la.params)
    assert not any(p is net.whiten.weight for p in la.params)


@pytest.mark.parametrize("spec", ["5", "0,0.5", "5,0", "5,1.5", "a,b", "5,0.5,1"])
def test_bad_lookahead_is_a_one_line_error(spec):
    with pytest.raises(ValueError, match="lookahead must be 'K,ALPHA'") as info:
        TrainConfig(lookahead=spec)
    assert "\n" not in str(info.value)
    assert parse_lookahead("5,0.5") == (5, 0.5)


def test_bias_lr_scale_scales_the_no_decay_groups():
    from cnnlab.train._setup import build_optimization

    net = SpeedNet(widths=(8, 8, 8))
    opt, _ = build_optimization(TrainConfig(lr=0.1, bias_lr_scale=64.0), net, 10)
    lrs = {g["name"]: g["initial_lr"] for g in opt.param_groups}
    assert lrs["backbone"] == pytest.approx(0.1)
    assert lrs["backbone_no_decay"] == pytest.approx(6.4)
    with pytest.raises(ValueError, match="bias_lr_scale must be > 0"):
        TrainConfig(bias_lr_scale=0)


def test_resume_with_lookahead_and_alternating_flips_is_exact(tmp_path):
    opts = dict(model="speednet", model_args={"widths": [8, 8, 8]}, image_size=16,
                max_train_images=64, batch_size=16, threads=1, optimizer="sgd", lr=0.05,
                schedule="none", whiten_init=True, flip="alternating", lookahead="3,0.5",
                augment="crop=2,reflect", eval_split=None, quiet=True, report=False,
                out_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"))
    straight = fit(epochs=3, name="straight", **opts)
    fit(epochs=1, name="split", **opts)
    split = fit(resume=tmp_path / "runs" / "split", epochs=3)
    a = load_state(straight.run_dir / "train_state.pt")
    b = load_state(split.run_dir / "train_state.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["lookahead"]["steps"] == b["lookahead"]["steps"] == 12
    assert all(torch.equal(x, y) for x, y in zip(a["lookahead"]["slow"], b["lookahead"]["slow"]))
