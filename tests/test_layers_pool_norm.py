"""Pooling, upsampling and normalization layers agree with the reference and hand formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import reference as ref
from cnnlab.layers import (
    AvgPool2d,
    Denormalize,
    GlobalAvgPool2d,
    MaxPool2d,
    MaxUnpool2d,
    Normalize,
    Upsample,
    norm_factory,
    norm_layer,
)

TOL = 1e-10
FAST = settings(max_examples=25, deadline=None)


def close(ours: torch.Tensor, theirs) -> None:
    theirs = torch.as_tensor(np.asarray(theirs)) if not isinstance(theirs, torch.Tensor) else theirs
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert (ours.detach().double() - theirs.double()).abs().max().item() <= TOL


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@st.composite
def pool_cfg(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    cfg = dict(k=k, s=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
               p=tuple(draw(st.integers(0, ki // 2)) for ki in k),
               size=(draw(st.integers(1, 7)), draw(st.integers(1, 7))), ceil=draw(st.booleans()))
    assume(all(ki <= n + 2 * pi for ki, n, pi in zip(k, cfg["size"], cfg["p"])))
    return cfg


@FAST
@given(cfg=pool_cfg(), seed=st.integers(0, 2**16))
def test_max_pool_indices_and_unpool_match_reference(cfg, seed):
    pool = MaxPool2d(cfg["k"], cfg["s"], cfg["p"], return_indices=True, ceil_mode=cfg["ceil"])
    x = randn(seed, 1, 2, *cfg["size"])
    y, idx = pool(x)
    y_ref, idx_ref = ref.max_pool2d(x.numpy(), cfg["k"], cfg["s"], cfg["p"], 1, cfg["ceil"],
                                    return_indices=True)
    close(y, y_ref)
    assert np.array_equal(idx.numpy(), idx_ref)
    restored = pool.unpool()(y, idx, output_size=cfg["size"])
    close(restored, ref.max_unpool2d(y_ref, idx_ref, cfg["size"]))


def test_max_unpool_puts_each_maximum_back_and_zeros_elsewhere():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 9.0, 8.0]]]])
    y, idx = MaxPool2d(2, return_indices=True)(x)
    assert y.flatten().tolist() == [5.0, 9.0]
    assert MaxUnpool2d(2)(y, idx).tolist() == [[[[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 9.0, 0.0]]]]
    with pytest.raises(ValueError, match=r"output_size=\(7, 7\).*valid: 1..3"):
        MaxUnpool2d(2)(y, idx, output_size=(7, 7))
    with pytest.raises(ValueError, match="indices must be"):
        MaxUnpool2d(2)(y, idx[..., :1])


@FAST
@given(cfg=pool_cfg(), include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool_ceil_mode_count_include_pad_match_reference(cfg, include_pad, seed):
    pool = AvgPool2d(cfg["k"], cfg["s"], cfg["p"], cfg["ceil"], include_pad)
    x = randn(seed, 2, 2, *cfg["size"])
    close(pool(x), ref.avg_pool2d(x.numpy(), cfg["k"], cfg["s"], cfg["p"], cfg["ceil"],
                                  include_pad))


def test_global_average_pool_and_upsampling():
    x = randn(0, 2, 3, 5, 4)
    close(GlobalAvgPool2d()(x), ref.global_avg_pool2d(x.numpy()))
    assert GlobalAvgPool2d(flatten=True)(x).shape == (2, 3)
    # nearest x2 repeats every pixel into a 2x2 block
    close(Upsample(scale_factor=2)(x), x.numpy().repeat(2, axis=2).repeat(2, axis=3))
    # bilinear (align_corners=False) between two pixels a, b gives a, .75a+.25b, .25a+.75b, b
    row = torch.tensor([[[[0.0, 4.0]]]], dtype=torch.float64)
    up = Upsample(size=(1, 4), mode="bilinear")(row)
    assert up.flatten().tolist() == [0.0, 1.0, 3.0, 4.0]


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_norm_layers_normalize_over_the_documented_axes(kind):
    x = randn(1, 4, 6, 5, 3) * 3 + 2
    layer = norm_layer(kind, 6, groups=3).double().train()
    axes = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}
    if kind == "group":  # groups of 2 channels: (N, 3, 2, H, W), over (2, H, W)
        g = x.view(4, 3, 2, 5, 3)
        expected = ((g - g.mean((2, 3, 4), keepdim=True))
                    / torch.sqrt(g.var((2, 3, 4), unbiased=False, keepdim=True) + 1e-5)).view_as(x)
    else:
        mean, var = x.mean(axes[kind], keepdim=True), x.var(axes[kind], unbiased=False,
                                                            keepdim=True)
        expected = (x - mean) / torch.sqrt(var + 1e-5)
    close(layer(x), expected)  # affine starts at scale 1, shift 0


def test_norm_layer_names_defaults_and_errors():
    assert isinstance(norm_layer("none", 8), torch.nn.Identity)
    assert isinstance(norm_layer(None, 8), torch.nn.Identity)
    assert isinstance(norm_layer("BN", 8), torch.nn.BatchNorm2d)
    assert isinstance(norm_layer("batch", 8, dims=3), torch.nn.BatchNorm3d)
    assert norm_layer("group", 48).num_groups == 24  # largest divisor of 48 up to 32
    with pytest.raises(ValueError, match="name must be one of 'batch'.*got 'batchy'"):
        norm_layer("batchy", 8)
    with pytest.raises(ValueError, match=r"groups=5 must divide channels=8; valid groups values"):
        norm_layer("group", 8, groups=5)
    with pytest.raises(ValueError, match="channels must be >= 1, got 0"):
        norm_layer("batch", 0)


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_norm_layers_check_their_input_and_keep_torch_types(kind):
    layer = norm_layer(kind, 8, groups=4)
    torch_type = {"batch": torch.nn.BatchNorm2d, "instance": torch.nn.InstanceNorm2d}.get(
        kind, torch.nn.GroupNorm)
    assert isinstance(layer, torch_type)
    plain = torch_type(8, affine=True) if kind in ("batch", "instance") else torch_type(4, 8)
    assert layer.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(ValueError, match="input has 3 channels.*expects 8"):
        layer(torch.zeros(2, 3, 4, 4))
    if kind in ("batch", "instance"):
        with pytest.raises(ValueError, match=r"\(N, C, H, W\).*got \(2, 8\)"):
            layer(torch.zeros(2, 8))


def test_norm_factory_builds_layers_for_blocks_later():
    make = norm_factory("group", groups=4)
    assert make(16).num_groups == 4 and make(8).num_channels == 8
    assert isinstance(norm_factory("bn")(3), torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="name must be one of"):
        norm_factory("gruop")
    with pytest.raises(ValueError, match="groups=3 must divide channels=8"):
        norm_factory("group", groups=3)(8)


def test_normalize_and_its_inverse_round_trip():
    norm = Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    y = norm(x)
    close(y[:, 0], (x[:, 0] - 0.485) / 0.229)
    close(norm.inverse()(y), x)
    close(Denormalize([0.5] * 3, [0.2] * 3).inverse()(torch.full((3, 1, 1), 0.7, dtype=torch.float64)),
          torch.full((3, 1, 1), 1.0))
    assert norm(x[0]).shape == (3, 4, 4)  # a single (C, H, W) image works too
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match="one value per channel"):
        Normalize([0.5, 0.5], [0.2])
    with pytest.raises(ValueError, match="input has 1 channels.*valid: 3 channels"):
        norm(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="floating-point"):
        norm(torch.zeros(3, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: MaxPool2d(3, padding=2), ["padding=2", "kernel_size=3", "0..1"]),
        (lambda: MaxPool2d(2, stride=0), ["stride", ">= 1", "0"]),
        (lambda: MaxPool2d(3)(torch.zeros(1, 1, 2, 2)), ["kernel_size=3", "padded input 2"]),
        (lambda: MaxPool2d(2)(torch.zeros(4, 4)), ["4-D", "(4, 4)"]),
        (lambda: MaxPool2d(2, dilation=2).unpool(), ["dilation", "valid: 1"]),
        (lambda: AvgPool2d(2, ceil_mode=1), ["ceil_mode", "True or False", "1"]),
        (lambda: AvgPool2d(2, padding=-1), ["padding", ">= 0", "-1"]),
        (lambda: Upsample(scale_factor=2, mode="bicubic"), ["mode", "'nearest'", "'bicubic'"]),
        (lambda: Upsample(), ["exactly one of size and scale_factor"]),
        (lambda: Upsample(scale_factor=-1), ["scale_factor", "positive", "-1"]),
        (lambda: GlobalAvgPool2d()(torch.zeros(2, 3)), ["4-D", "(2, 3)"]),
    ],
)
def test_bad_pooling_arguments_raise_clear_value_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_pool_layers_match_torch_functional_in_float32():
    x = torch.rand(2, 3, 9, 9)
    assert torch.equal(MaxPool2d(3, 2, 1, ceil_mode=True)(x), F.max_pool2d(x, 3, 2, 1, 1, True))
    assert torch.equal(AvgPool2d(3, 2, 1, True, False)(x), F.avg_pool2d(x, 3, 2, 1, True, False))
