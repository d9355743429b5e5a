"""What the figures show is right: feature maps, Grad-CAM, receptive fields, the explained ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab.viz as viz


def test_edge_kernel_feature_map_lights_up_exactly_at_the_band_edges():
    # y[i, j] = x[i, j] - x[i, j + 1]: nonzero only where the value changes along a row
    net = nn.Sequential(nn.Conv2d(1, 1, (1, 2), bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[1.0, -1.0]]]]))
    image = torch.zeros(1, 10, 12)
    image[:, :, 4:7] = 1.0  # a vertical band over columns 4, 5, 6
    maps = viz.feature_maps(net, image, "0")  # (1, 10, 11)
    assert maps.shape == (1, 10, 11)
    lit = (maps[0].abs() > 0).nonzero()
    assert set(lit[:, 1].tolist()) == {3, 6}  # the left edge (3|4) and the right edge (6|7)
    assert len(lit) == 2 * 10  # every row, both edges, nothing else
    assert (maps[0, :, 3] == -1).all() and (maps[0, :, 6] == 1).all()
    assert viz.feature_maps(net, image[None], "0").shape == (1, 10, 11)  # a batch of one works


def _object_task(n: int, g: torch.Generator, size: int = 20, side: int = 5):
    """Class = colour channel of a bright side x side square at a random position on noise.

    Class 3 has no square, so "not red and not blue" cannot stand in for "green": every class
    with a square must be recognized by looking at it. A gray square (bright in every channel)
    at another random position is a distractor that only colour tells apart.
    """
    x = torch.randn(n, 3, size, size, generator=g) * 0.25
    y = torch.randint(0, 4, (n,), generator=g)
    pos = torch.randint(0, size - side + 1, (n, 2), generator=g)
    for i, (r, c) in enumerate(torch.randint(0, size - side + 1, (n, 2), generator=g).tolist()):
        x[i, :, r:r + side, c:c + side] += 0.7
    for i, (r, c) in enumerate(pos.tolist()):
        if y[i] < 3:
            x[i, y[i], r:r + side, c:c + side] += 1.0
    return x, y, pos


def test_grad_cam_peak_falls_inside_the_deciding_object(one_thread):
    # Measured over seeds 0-11 with this exact setup (a sweep, not run here): 11 of 12 trainings
    # reach >= 92% test accuracy and in all 11 at least 95% of the peaks fall inside the square;
    # seed 1 does not learn the task in 30 epochs. The accuracy assertion keeps that case apart.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x_train, y_train, _ = _object_task(384, g)
    x_test, y_test, pos = _object_task(80, g)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(30):  # about 10 epochs of 12 steps: a second or two on one CPU core
        with torch.no_grad():
            if (net.eval()(x_train).argmax(1) == y_train).float().mean() >= 0.97:
                break
        net.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 32):
            idx = perm[i:i + 32]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    assert (net(x_test).argmax(1) == y_test).float().mean() >= 0.9, "the task did not train"
    with_object = (y_test < 3).nonzero().view(-1).tolist()
    hits = 0
    for i in with_object:
        cam = viz.grad_cam(net, x_test[i])
        assert cam.layer == "3" and cam.heatmap.shape == (20, 20)  # the last conv
        assert 0 <= float(cam.heatmap.min()) and float(cam.heatmap.max()) == pytest.approx(1.0)
        r, c = cam.peak()
        r0, c0 = pos[i].tolist()
        hits += r0 <= r < r0 + 5 and c0 <= c < c0 + 5
    n = len(with_object)
    assert hits / n >= 0.9, f"Grad-CAM peak inside the object for {hits}/{n} images"


def test_grad_cam_for_a_chosen_class_and_frozen_weights():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))
    for p in net.parameters():
        p.requires_grad_(False)
    net.train()
    cam = viz.grad_cam(net, torch.rand(1, 9, 9), class_index=1, layer="0")
    assert cam.class_index == 1 and cam.layer == "0" and cam.heatmap.shape == (9, 9)
    assert net.training, "the model's train/eval mode is restored"


@pytest.mark.parametrize(
    ("layers", "layer", "expected"),
    [
        # r_out = r_in + (k - 1) * j_in and j_out = j_in * s, starting from r = j = 1
        ([nn.Conv2d(1, 2, 3)], "0", 3),
        ([nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)], "1", 5),
        ([nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.MaxPool2d(2)], "3", 7),
        ([nn.Conv2d(1, 2, 3, dilation=2)], "0", 5),
        ([nn.Conv2d(1, 2, 5, stride=2), nn.Conv2d(2, 2, 3)], "1", 9),
    ],
)
def test_receptive_field_size_matches_the_hand_derived_one(layers, layer, expected):
    torch.manual_seed(0)
    rf = viz.receptive_field(nn.Sequential(*layers), torch.rand(1, 40, 40), layer)
    assert rf.size == (expected, expected)
    assert rf.gradient.shape == (40, 40)
    # the effective receptive field (gradient) lives inside the box
    outside = rf.gradient.clone()
    outside[rf.top:rf.bottom + 1, rf.left:rf.right + 1] = 0
    assert float(outside.abs().sum()) == 0.0


@settings(max_examples=25, deadline=None)
@given(size=st.integers(3, 7), kernel=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), seed=st.integers(0, 99))
def test_explained_convolution_equals_torch(size, kernel, stride, padding, dilation, seed):
    if dilation * (kernel - 1) + 1 > size + 2 * padding:
        return
    plan = viz.conv_plan(size, kernel, stride, padding, dilation, seed)
    x = torch.tensor(plan.inp[padding:padding + size, padding:padding + size])[None, None]
    y = F.conv2d(x, torch.tensor(plan.kernel)[None, None], stride=stride, padding=padding,
                 dilation=dilation)[0, 0]
    np.testing.assert_allclose(plan.result, y.numpy())
    assert len(plan.steps) == y.numel()
    # each step's text ends in its output value, and names exactly kernel*kernel products
    for step, value in zip(plan.steps, y.flatten().tolist()):
        assert step.text.endswith(f"= {int(value)}")
        assert step.text.count("·") == kernel * kernel


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 7), kernel=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 1), mode=st.sampled_from(["max", "avg"]), seed=st.integers(0, 99))
def test_explained_pooling_equals_torch(size, kernel, stride, padding, mode, seed):
    if padding > kernel // 2 or kernel > size + 2 * padding:
        return
    plan = viz.pool_plan(size, kernel, stride, padding, mode, seed)
    x = torch.tensor(plan.inp[padding:padding + size, padding:padding + size])[None, None]
    op = F.max_pool2d if mode == "max" else F.avg_pool2d
    y = op(x, kernel, stride, padding)[0, 0]
    np.testing.assert_allclose(plan.result, y.numpy(), rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 4), kernel=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 1), dilation=st.integers(1, 2), seed=st.integers(0, 99))
def test_explained_transposed_convolution_equals_torch(size, kernel, stride, padding, dilation,
                                                       seed):
    if (size - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding < 1:
        return
    plan = viz.transposed_conv_plan(size, kernel, stride, padding, dilation, seed)
    y = F.conv_transpose2d(torch.tensor(plan.inp)[None, None], torch.tensor(plan.kernel)[None, None],
                           stride=stride, padding=padding, dilation=dilation)[0, 0]
    np.testing.assert_allclose(plan.result, y.numpy())
    np.testing.assert_allclose(plan.steps[-1].out_values, plan.out)  # the last step is the sum


def test_explained_padding_cells_are_marked():
    plan = viz.conv_plan(4, 3, padding=1)
    assert plan.inp.shape == (6, 6) and plan.inp_pad.sum() == 36 - 16
    assert (plan.inp[plan.inp_pad] == 0).all()
    assert "out = floor((n + 2*p - d*(k - 1) - 1) / s) + 1" in plan.shape_text
    maxpool = viz.pool_plan(4, 2, stride=2, padding=1, mode="max")
    assert np.isneginf(maxpool.inp[maxpool.inp_pad]).all()  # max pooling pads with -inf


def test_confusion_matrix_and_most_confused():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    cm = viz.confusion_matrix(t, p, 4)
    expected = np.zeros((4, 4), int)
    for a, b in zip(t, p):
        expected[a, b] += 1
    np.testing.assert_array_equal(cm, expected)
    pairs = viz.most_confused(cm, list("abcd"), k=3)
    off = sorted((cm[i, j] for i in range(4) for j in range(4) if i != j), reverse=True)[:3]
    assert [n for _, _, n in pairs] == off
    a, b, n = pairs[0]
    assert cm["abcd".index(a), "abcd".index(b)] == n and a != b


def test_top_losses_are_the_highest_cross_entropies():
    logits = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2))
    idx, loss, pred, prob = viz.top_losses(logits, labels, 5)
    full = F.cross_entropy(logits, labels, reduction="none")
    assert set(idx.tolist()) == set(full.argsort(descending=True)[:5].tolist())
    assert torch.allclose(loss, full[idx]) and (pred == logits[idx].argmax(1)).all()


def test_receptive_field_of_an_off_centre_unit_with_padding_is_clipped_at_the_border():
    # conv3 p1: rf 3, jump 1, centre of unit 0 at 0; conv3 s2 p1: rf 5, jump 2, centre 0;
    # maxpool 2: rf 5 + 1*2 = 7, jump 4, centre 0 + 0.5*2 = 1. Unit u is centred at 1 + 4u.
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(2, 2, 3, stride=2, padding=1), nn.MaxPool2d(2))
    rf = viz.receptive_field(net, torch.rand(1, 16, 16), "3", (2, 3))
    assert (rf.top, rf.bottom) == (9 - 3, 9 + 3)  # rows centred at 1 + 4*2 = 9
    assert (rf.left, rf.right) == (13 - 3, 15)  # columns centred at 13, clipped at the border
    corner = viz.receptive_field(net, torch.rand(1, 16, 16), "3", (0, 0))
    assert (corner.top, corner.left, corner.bottom, corner.right) == (0, 0, 4, 4)
    support = (rf.gradient > 0).nonzero()
    assert support[:, 0].min() >= rf.top and support[:, 0].max() <= rf.bottom
    assert support[:, 1].min() >= rf.left and support[:, 1].max() <= rf.right
