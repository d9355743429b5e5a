"""Analytic receptive field vs gradient support on random chains, branches, skips and deconvs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.inspect import receptive_field, summary


@st.composite
def chains(draw):
    """A random conv/pool chain with per-dimension kernels, strides, paddings, dilations."""
    layers, channels = [], 1
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "max", "avg"]))
        k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        if kind == "conv":
            d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            out = draw(st.integers(1, 2))
            layers += [nn.Conv2d(channels, out, k, s, p, d), nn.ReLU()]
            channels = out
        elif kind == "max":
            d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
            layers.append(nn.MaxPool2d(k, s, p, d, ceil_mode=draw(st.booleans())))
        else:
            p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
            layers.append(nn.AvgPool2d(k, s, p, ceil_mode=draw(st.booleans())))
    return nn.Sequential(*layers)


@settings(max_examples=25, deadline=None)
@given(net=chains())
def test_random_chains_analytic_equals_gradient_support(net):
    # 120 pixels hold the field of any chain drawn above (at most 4 layers of extent <= 7 with
    # jumps <= 27), so the central unit is not clipped
    try:
        rf = receptive_field(net, (1, 1, 120, 100))
    except ValueError as exc:  # a chain whose strides shrink 120 pixels to nothing
        assert "too small" in str(exc) or "no spatial feature map" in str(exc)
        return
    assert rf.agrees, rf
    if not rf.clipped:
        assert rf.size == rf.analytic_size


class Skip(nn.Module):
    """A residual stage: 3x3 conv path plus a strided 1x1 shortcut, then a 5x5 branch cat."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1)
        )
        self.short = nn.Conv2d(1, 2, 1, stride=2)
        self.wide = nn.Conv2d(1, 2, 7, stride=2, padding=3, dilation=1)

    def forward(self, x):
        return torch.cat([self.body(x) + self.short(x), self.wide(x)], dim=1)


def test_branches_and_skips_take_the_largest_path():
    s = summary(Skip(), (1, 1, 32, 32))
    # body: 3x3 s2 -> rf 3, jump 2; 3x3 -> 3 + 2*2 = 7. shortcut: 1. wide: 7. largest: 7
    assert s.calls[0].rf == (7, 7)
    rf = receptive_field(Skip(), (1, 1, 32, 32))
    assert rf.size == (7, 7) and rf.agrees


def test_transposed_convolution_after_conv_agrees():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.ConvTranspose2d(2, 1, 4, stride=1, padding=1)
    )
    rf = receptive_field(net, (1, 1, 40, 40))
    # conv: rf 3, jump 2; deconv k4 s1: inputs i = o + 1 - t, t = 0..3 -> span 3: 3 + 3*2 = 9
    assert rf.analytic_size == (9, 9)
    assert rf.size == (9, 9) and rf.agrees


def test_layer_argument_and_errors():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.Flatten())
    assert receptive_field(net, (1, 1, 16, 16), layer="0").size == (3, 3)
    with pytest.raises(ValueError, match="layer='9'"):
        receptive_field(net, (1, 1, 16, 16), layer="9")
    with pytest.raises(ValueError, match="not on a spatial path"):
        receptive_field(net, (1, 1, 16, 16), layer="2")
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(net, (16, 16))


def test_user_model_is_left_untouched():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    receptive_field(net, (1, 1, 12, 12))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())


class ChannelsLast(nn.Module):
    """ConvNeXt-style: conv, then LayerNorm and Linear over channels in (N, H, W, C), then conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.mix = nn.Linear(4, 4)
        self.conv2 = nn.Conv2d(4, 2, 3, stride=2)

    def forward(self, x):
        x = self.conv1(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        x = self.mix(self.norm(x)).permute(0, 3, 1, 2)  # (N, C, H, W)
        return self.conv2(x)


def test_receptive_field_follows_permuted_dimensions():
    s = summary(ChannelsLast(), (1, 1, 20, 20))
    # conv 3 -> rf 3; LayerNorm/Linear act per pixel; conv 3 s2 -> 3 + 2 = 5, jump 2
    assert s.calls[0].rf == (5, 5) and s.calls[0].jump == (2, 2)
    rf = receptive_field(ChannelsLast(), (1, 1, 20, 20))
    assert rf.size == (5, 5) and rf.agrees


def test_tied_weights_in_the_stand_in():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), conv)
    rf = receptive_field(net, (1, 1, 15, 15))
    assert rf.size == (5, 5) and rf.agrees


class Gate(nn.Module):
    """Squeeze-and-excitation: a global-average gate (N, C, 1, 1) multiplies the feature map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


def test_broadcast_gate_widens_every_unit_to_the_whole_map():
    s = summary(Gate(), (1, 1, 12, 12))
    row = s.calls[0]
    # the gate sees the whole 12-pixel map (+1 pixel of field on each side): rf >= 14, a bound
    assert row.rf[0] >= 14 and not row.rf_exact and row.jump == (1, 1)
    assert "≤" in str(s)
    rf = receptive_field(Gate(), (1, 1, 12, 12))
    assert rf.box == ((0, 11), (0, 11)) and rf.agrees
