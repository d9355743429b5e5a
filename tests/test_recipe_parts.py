"""The modern recipe's parts, each against a hand computation: policies, mixing, EMA, imbalance,
monitor, LR finder, ECE and test-time augmentation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.calibration import reliability
from cnnlab.data import build_augment, to_float
from cnnlab.train.ema import WeightEMA
from cnnlab.train.imbalance import BalancedSampler, class_weights
from cnnlab.train.lr_find import lr_range_test
from cnnlab.train.mix import BatchMixer, dominant_label
from cnnlab.train.monitor import best_choice, is_better, split_metrics
from cnnlab.tta import tta_logits, tta_views

# --- augmentation policies ---------------------------------------------------------------------


def _same_images(b=16, seed=0):
    one = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(seed))
    return one.expand(b, 3, 24, 24).contiguous()


@pytest.mark.parametrize("spec", ["ra=2:9", "ta", "aa=imagenet", "aa=cifar10", "erase=1.0",
                                  "crop-flip,ta,erase=0.5", "vflip"])
def test_policies_keep_shape_dtype_range_and_differ_per_image(spec):
    aug = build_augment(spec, 24)
    x = _same_images()
    y = aug(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.uint8
    distinct = {bytes(im.flatten().tolist()) for im in y}
    # 16 copies of one image: a batch-level call would give 1 distinct output (or 2 for vflip's
    # per-image coin, which is the point of that test too)
    assert len(distinct) >= (2 if spec == "vflip" else 6), (spec, len(distinct))
    yf = aug(to_float(x), torch.Generator().manual_seed(1))  # float [0, 1] in, float out
    assert yf.dtype == torch.float32 and float(yf.min()) >= 0 and float(yf.max()) <= 1
    # seeded: the same generator state gives the same batch; the global RNG is left alone
    state = torch.random.get_rng_state()
    assert torch.equal(aug(x, torch.Generator().manual_seed(1)), y)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert aug.eval()(x) is x


def test_vflip_is_an_exact_upside_down_copy():
    x = torch.randint(0, 256, (64, 1, 6, 6), dtype=torch.uint8)
    y = build_augment("vflip", 6)(x, torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    flipped = (y == x.flip(2)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_policy_spec_errors_name_the_item():
    for spec, match in (("ra=x", "ra=N:M"), ("aa=coco", "AutoAugment policy"),
                        ("ta,ra", "one of ra, ta, aa"), ("erase=2", r"\[0, 1\]"),
                        ("ra=2:40", "0..30")):
        with pytest.raises(ValueError, match=match):
            build_augment(spec, 32)


# --- mixup / cutmix ----------------------------------------------------------------------------


def _indexed_batch(b=8, k=10):
    # image i is filled with the value i + 1, so every output pixel says which image it came from
    x = torch.arange(1, b + 1, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, 16, 16)
    return x.contiguous(), torch.arange(b) % k


def test_mixup_targets_sum_to_one_and_match_the_pixel_mix():
    x, y = _indexed_batch()
    xm, t = BatchMixer(10, mixup=1.0)(x, y, torch.Generator().manual_seed(3))
    assert t.shape == (8, 10) and torch.allclose(t.sum(1), torch.ones(8))
    # v2.MixUp: x_i' = lam x_i + (1 - lam) x_{i-1}; recover lam from the pixel values
    lam = (xm[1, 0, 0, 0] - x[0, 0, 0, 0]) / (x[1, 0, 0, 0] - x[0, 0, 0, 0])
    for i in range(8):
        j = (i - 1) % 8
        assert torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
        assert math.isclose(t[i, y[i]].item(), lam.item(), abs_tol=1e-5)
        assert math.isclose(t[i, y[j]].item(), 1 - lam.item(), abs_tol=1e-5)


def test_cutmix_targets_equal_the_pasted_areas():
    x, y = _indexed_batch()
    for seed in range(5):
        xm, t = BatchMixer(10, cutmix=1.0)(x, y, torch.Generator().manual_seed(seed))
        assert torch.allclose(t.sum(1), torch.ones(8))
        for i in range(8):
            j = (i - 1) % 8
            own = (xm[i, 0] == i + 1).double().mean().item()
            pasted = (xm[i, 0] == j + 1).double().mean().item()
            assert own + pasted == 1.0
            assert math.isclose(t[i, y[i]].item(), own, abs_tol=1e-6)
            assert math.isclose(t[i, y[j]].item(), pasted, abs_tol=1e-6)


def test_mix_prob_zero_passes_batches_through_and_accuracy_uses_the_dominant_label():
    x, y = _indexed_batch()
    xm, t = BatchMixer(10, mixup=1.0, prob=0.0)(x, y, torch.Generator().manual_seed(0))
    assert xm is x and t is y
    assert dominant_label(torch.tensor([[0.2, 0.8], [0.55, 0.45]])).tolist() == [1, 0]


def test_soft_targets_work_with_label_smoothing():
    logits = torch.randn(4, 3)
    soft = torch.tensor([[0.7, 0.3, 0.0]] * 4)
    eps = 0.1
    got = nn.CrossEntropyLoss(label_smoothing=eps)(logits, soft)
    smoothed = soft * (1 - eps) + eps / 3
    want = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(got, want, atol=1e-6)


# --- EMA ---------------------------------------------------------------------------------------


def test_ema_equals_the_hand_computed_average_after_k_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay, k = 0.8, 6
    ema = WeightEMA(net, decay)
    want_w = want_rm = None
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(k):
        net(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        ema.update()
        w, rm = net[0].weight.detach().clone(), net[1].running_mean.clone()
        # w_ema_1 = w_1 (the first update copies); then w_ema <- d w_ema + (1 - d) w
        want_w = w if want_w is None else decay * want_w + (1 - decay) * w
        want_rm = rm if want_rm is None else decay * want_rm + (1 - decay) * rm
    assert torch.allclose(ema.module[0].weight, want_w, atol=1e-6)
    assert torch.allclose(ema.module[1].running_mean, want_rm, atol=1e-6)  # buffers averaged
    assert not torch.allclose(ema.module[0].weight, net[0].weight)
    fresh = WeightEMA(net, decay)
    fresh.load_state_dict(ema.state_dict())
    assert torch.equal(fresh.module[0].weight, ema.module[0].weight)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        WeightEMA(net, 1.0)


# --- class imbalance ---------------------------------------------------------------------------


def test_class_weights_equal_the_formula():
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 3 + [4] * 7)  # class 3 absent
    w = class_weights(labels, 5)
    n, present = len(labels), 4
    for k, n_k in ((0, 50), (1, 10), (2, 3), (4, 7)):
        assert math.isclose(w[k].item(), n / (present * n_k), rel_tol=1e-6)
    assert w[3].item() == 0.0


def test_balanced_sampler_epoch_counts():
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 3)
    sampler = BalancedSampler(labels, 3)
    g = torch.Generator().manual_seed(0)
    first = sampler.epoch_order(g)
    assert len(first) == 63
    assert torch.bincount(labels[first], minlength=3).tolist() == [21, 21, 21]
    counts = torch.bincount(first, minlength=63)
    assert int(counts[:50].max()) == 1  # the majority class: undersampled, no repeats
    assert sorted(counts[50:60].tolist()) == [2] * 9 + [3]  # 21 = two full rounds + 1
    assert counts[60:].tolist() == [7, 7, 7]  # the minority class: every image 7 times
    second = sampler.epoch_order(g)
    assert not torch.equal(first, second)
    assert torch.equal(first, BalancedSampler(labels, 3).epoch_order(
        torch.Generator().manual_seed(0)))  # seeded
    uneven = BalancedSampler(torch.tensor([0] * 5 + [1] * 2), 2).epoch_order(g)
    assert sorted(torch.bincount(torch.tensor([0] * 5 + [1] * 2)[uneven]).tolist()) == [3, 4]
    batches = sampler.batches(31, g)
    assert [len(b) for b in batches] == [31, 31]  # a last batch of one image is dropped


# --- monitor -----------------------------------------------------------------------------------


def test_split_metrics_and_is_better():
    logits = torch.tensor([[3.0, 0, 0], [3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0]])
    m = split_metrics(logits, torch.tensor([0, 0, 0, 2]))
    assert m["val_acc"] == 0.75
    assert math.isclose(m["val_balanced_acc"], 0.5)  # recalls 1 and 0 over the 2 true classes
    # per-class F1: class 0 = 1, class 1 (predicted once, never true) = 0, class 2 = 0
    assert math.isclose(m["val_macro_f1"], 1 / 3)
    assert is_better({"val_loss": 0.5}, {"val_loss": 0.6}, "val_loss")
    assert not is_better({"val_loss": 0.58}, {"val_loss": 0.6}, "val_loss", min_delta=0.05)
    assert not is_better({"val_macro_f1": 0.81}, {"val_macro_f1": 0.8}, "val_macro_f1", 0.02)
    assert is_better({"val_acc": 0.8, "val_loss": 0.4}, {"val_acc": 0.8, "val_loss": 0.5})
    assert is_better({"val_acc": float("nan"), "val_loss": float("nan")}, {"val_acc": 0.9})
    raw, ema = {"epoch": 2, "val_acc": 0.8}, {"epoch": 3, "val_acc": 0.8}
    assert best_choice(raw, ema, "val_acc")["checkpoint"] == "best.safetensors"  # a tie: raw
    assert best_choice(raw, {"epoch": 3, "val_acc": 0.81}, "val_acc")["weights"] == "ema"


# --- LR finder ---------------------------------------------------------------------------------


def test_lr_finder_minimum_lies_at_the_toy_problems_good_rate():
    # Least squares with X^T X / N = I: the MSE's Hessian is 2I, so plain gradient descent
    # converges in one step at lr = 1/2, converges for lr < 1 and diverges beyond lr = 1.
    torch.manual_seed(0)
    n, d = 64, 8
    q, _ = torch.linalg.qr(torch.randn(n, d))
    x = q * math.sqrt(n)  # (N, d), x^T x / N = I
    y = x @ torch.randn(d, 1) + 0.01 * torch.randn(n, 1)
    net = nn.Linear(d, 1, bias=False)
    before = net.weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=123.0)
    r = lr_range_test(net, opt, [(x, y)], nn.functional.mse_loss, start_lr=1e-4, end_lr=100,
                      num_steps=120, beta=0.0)
    assert 0.5 / 4 <= r.lr_at_min <= 1.0, r.lr_at_min
    assert r.stopped == "diverged" and r.lrs[-1] > 1.0  # it blew up past the stable range
    assert math.isclose(r.suggestion, r.lr_at_min / 10)
    assert torch.equal(net.weight, before) and opt.param_groups[0]["lr"] == 123.0  # a copy
    rates = r.lrs
    assert all(b > a for a, b in zip(rates, rates[1:]))  # exponential growth
    assert math.isclose(rates[1] / rates[0], (100 / 1e-4) ** (1 / 119), rel_tol=1e-9)


# --- calibration and TTA -----------------------------------------------------------------------


def test_ece_equals_the_hand_computed_value():
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.95, 0.05], [0.95, 0.05],
                          [0.55, 0.45], [0.55, 0.45], [0.7, 0.3]])
    labels = torch.tensor([0, 0, 0, 1, 0, 1, 0])
    r = reliability(probs, labels, n_bins=5)
    # bins of width 0.2: (0.8, 1] holds 4 images, acc 3/4, conf 0.95; (0.4, 0.6] holds 2, acc
    # 1/2, conf 0.55; (0.6, 0.8] holds 1, acc 1, conf 0.7
    want = 4 / 7 * abs(0.75 - 0.95) + 2 / 7 * abs(0.5 - 0.55) + 1 / 7 * abs(1 - 0.7)
    assert math.isclose(r["ece"], want, rel_tol=1e-6)  # float32 probabilities
    assert [b["count"] for b in r["bins"]] == [0, 0, 2, 1, 4]
    assert r["bins"][4]["accuracy"] == 0.75 and r["bins"][0]["accuracy"] is None


def test_tta_views_and_probability_average():
    x = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    flip = tta_views(x, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], x.flip(3))
    crops = tta_views(x, "crops")
    assert len(crops) == 5 and torch.equal(crops[0], x)  # the centre crop is the image
    assert torch.equal(crops[1][..., 2:, 2:], x[..., :-2, :-2])  # top-left: shifted by p = 2
    assert int(crops[1][..., :2, :].max()) == 0  # zero padding came in
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))

    def predict(images):
        return net(images.float())

    got = tta_logits(predict, x, "flip").exp()
    want = (predict(x).softmax(1) + predict(x.flip(3)).softmax(1)) / 2
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(tta_logits(predict, x, "none"), predict(x))
    with pytest.raises(ValueError, match="tta must be one of"):
        tta_views(x, "rotate")
