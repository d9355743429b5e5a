"""Convolution layers agree with the NumPy reference and torch (float64, max abs diff <= 1e-10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import reference as ref
from cnnlab.layers import (
    ChannelShuffle,
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    DepthwiseSeparableConv2d,
    DilatedConv2d,
    FlattenedConv2d,
    GroupedConv2d,
    ShuffledGroupedConv2d,
    SpatiallySeparableConv2d,
    channel_shuffle,
    factorize_rank1,
)

TOL = 1e-10
FAST = settings(max_examples=25, deadline=None)
small = st.integers(1, 3)


def close(ours: torch.Tensor, theirs) -> None:
    theirs = torch.as_tensor(np.asarray(theirs) if not isinstance(theirs, torch.Tensor) else theirs)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert (ours.detach().double() - theirs.double()).abs().max().item() <= TOL


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@st.composite
def conv_cfg(draw):
    g = draw(small)
    cfg = dict(c_in=g * draw(st.integers(1, 2)), c_out=g * draw(st.integers(1, 2)), groups=g,
               k=(draw(small), draw(small)), s=(draw(small), draw(small)),
               p=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
               d=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
               size=(draw(st.integers(1, 8)), draw(st.integers(1, 8))))
    assume(all(d * (k - 1) + 1 <= n + 2 * p
               for d, k, n, p in zip(cfg["d"], cfg["k"], cfg["size"], cfg["p"])))
    return cfg


@FAST
@given(cfg=conv_cfg(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_matches_reference(cfg, bias, seed):
    layer = Conv2d(cfg["c_in"], cfg["c_out"], cfg["k"], cfg["s"], cfg["p"], cfg["d"],
                   cfg["groups"], bias).double()
    x = randn(seed, 2, cfg["c_in"], *cfg["size"])
    b = None if layer.bias is None else layer.bias.detach().numpy()
    expected = ref.conv2d(x.numpy(), layer.weight.detach().numpy(), b, cfg["s"], cfg["p"],
                          cfg["d"], cfg["groups"])
    close(layer(x), expected)


def tf_same(x: torch.Tensor, weight: torch.Tensor, stride, dilation) -> torch.Tensor:
    """TensorFlow's 'SAME' written out by hand: pad so out = ceil(n / s), extra pixel at the end."""
    pads = []
    for n, k, s, d in zip(x.shape[2:], weight.shape[2:], stride, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, dilation)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@FAST
@given(k=st.tuples(st.integers(1, 4), st.integers(1, 4)), s=st.tuples(small, small),
       d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       size=st.tuples(st.integers(1, 9), st.integers(1, 9)), seed=st.integers(0, 2**16))
def test_same_padding_gives_ceil_size_and_tensorflow_values(k, s, d, size, seed):
    layer = Conv2d(2, 3, k, s, "same", d, bias=False).double()
    x = randn(seed, 1, 2, *size)
    y = layer(x)
    assert tuple(y.shape[2:]) == tuple(math.ceil(n / si) for n, si in zip(size, s))
    close(y, tf_same(x, layer.weight, s, d))
    if s == (1, 1):  # torch's own "same" (stride 1 only) agrees, even kernels included
        close(y, F.conv2d(x, layer.weight, None, 1, "same", d))


def test_same_padding_for_even_kernel_puts_the_extra_pixel_after():
    layer = Conv2d(1, 1, kernel_size=2, padding="same", bias=False).double()
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.arange(1.0, 5.0, dtype=torch.float64).view(1, 1, 1, 4)
    y = layer(x)  # padding (0 before, 1 after) in W; in H (0, 1) too, the padded row adds zeros
    assert y.flatten().tolist() == [3.0, 5.0, 7.0, 4.0]


@FAST
@given(k=st.integers(1, 3), s=small, p=st.sampled_from([0, 1, "same"]), seed=st.integers(0, 99))
def test_conv3d_matches_torch_and_same_keeps_ceil_size(k, s, p, seed):
    layer = Conv3d(2, 4, k, s, p).double()
    x = randn(seed, 1, 2, 4, 5, 3)
    y = layer(x)
    if p == "same":
        assert tuple(y.shape[2:]) == tuple(math.ceil(n / s) for n in (4, 5, 3))
    else:
        assume(k <= 3 + 2 * p)
        close(y, F.conv3d(x, layer.weight, layer.bias, s, p))


def test_dilated_conv_keeps_size_and_matches_reference():
    layer = DilatedConv2d(2, 3, kernel_size=3, dilation=2).double()
    x = randn(0, 1, 2, 9, 7)
    y = layer(x)
    assert y.shape == (1, 3, 9, 7)
    expected = ref.conv2d(x.numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                          padding=2, dilation=2)
    close(y, expected)


@st.composite
def deconv_cfg(draw):
    g = draw(st.integers(1, 2))
    s, d = (draw(small), draw(small)), (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    cfg = dict(c_in=g * draw(st.integers(1, 2)), c_out=g * draw(st.integers(1, 2)), groups=g,
               k=(draw(small), draw(small)), s=s, d=d,
               p=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
               op=tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d)),
               size=(draw(st.integers(1, 4)), draw(st.integers(1, 4))))
    assume(all((n - 1) * s - 2 * p + d * (k - 1) + o + 1 >= 1 for n, s, p, d, k, o in
               zip(cfg["size"], cfg["s"], cfg["p"], cfg["d"], cfg["k"], cfg["op"])))
    return cfg


@FAST
@given(cfg=deconv_cfg(), seed=st.integers(0, 2**16))
def test_conv_transpose_matches_reference_scatter(cfg, seed):
    layer = ConvTranspose2d(cfg["c_in"], cfg["c_out"], cfg["k"], cfg["s"], cfg["p"], cfg["op"],
                            cfg["groups"], True, cfg["d"]).double()
    x = randn(seed, 2, cfg["c_in"], *cfg["size"])
    expected = ref.conv_transpose2d(x.numpy(), layer.weight.detach().numpy(),
                                    layer.bias.detach().numpy(), cfg["s"], cfg["p"], cfg["op"],
                                    cfg["d"], cfg["groups"])
    close(layer(x), expected)


def test_conv_transpose_output_size_control_inverts_a_strided_conv():
    down = Conv2d(4, 8, kernel_size=3, stride=2, padding=1)
    up = ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1)
    for n in (27, 28):  # a stride-2 conv maps both 27 and 28 to 14
        x = torch.zeros(1, 4, n, n)
        assert up(down(x), output_size=x.shape[2:]).shape == x.shape
    fixed = ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1, output_size=(28, 27))
    assert fixed(torch.zeros(1, 8, 14, 14)).shape == (1, 4, 28, 27)
    assert fixed.allowed_output_sizes((14, 14)) == [range(27, 29), range(27, 29)]
    with pytest.raises(ValueError, match=r"output_size=\(30, 28\).*valid sizes there: 27..28"):
        up(torch.zeros(1, 8, 14, 14), output_size=(30, 28))


def test_layers_keep_torch_state_dicts():
    theirs = torch.nn.Conv2d(3, 8, 3, padding=1)
    ours = Conv2d(3, 8, 3, padding="same")
    ours.load_state_dict(theirs.state_dict())  # strict: same keys and shapes
    x = torch.rand(1, 3, 6, 6)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert isinstance(ours, torch.nn.Conv2d)


# ---------------------------------------------------------------- separable convolutions


@FAST
@given(kh=st.integers(1, 5), kw=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_factorize_rank1_recovers_an_outer_product(kh, kw, seed):
    rng = np.random.default_rng(seed)
    column, row = rng.standard_normal(kh), rng.standard_normal(kw)
    f = factorize_rank1(np.outer(column, row))
    assert np.abs(np.outer(f.column, f.row) - np.outer(column, row)).max() <= TOL
    assert f.residual <= TOL and (f.singular_values[1:] <= 1e-9 * f.singular_values[0]).all()


def test_factorize_rank1_reports_a_kernel_that_is_not_rank1():
    with pytest.raises(ValueError, match=r"not rank 1: singular values \[") as info:
        factorize_rank1(np.eye(3))
    assert "1." in str(info.value)  # the singular values are listed
    with pytest.raises(ValueError, match="2-D"):
        factorize_rank1(np.ones((1, 3, 3)))


@settings(max_examples=15, deadline=None)  # each example builds and checks up to 9 factorizations
@given(c_in=small, c_out=small, k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       s=st.tuples(small, small), p=st.sampled_from([0, 1, 2, "same"]),
       d=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16))
def test_spatially_separable_from_rank1_kernel_reproduces_the_full_conv(c_in, c_out, k, s, p, d,
                                                                         seed):
    rng = np.random.default_rng(seed)
    weight = torch.as_tensor(np.einsum("oci,ocj->ocij", rng.standard_normal((c_out, c_in, k[0])),
                                       rng.standard_normal((c_out, c_in, k[1]))))
    bias = torch.as_tensor(rng.standard_normal(c_out))
    x = torch.as_tensor(rng.standard_normal((2, c_in, 7, 6)))
    if p != "same":
        assume(all(di * (ki - 1) + 1 <= n + 2 * p for di, ki, n in zip(d, k, (7, 6))))
    layer = SpatiallySeparableConv2d.from_kernel(weight, bias, s, p, d).double()
    full = Conv2d(c_in, c_out, k, s, p, d).double()
    with torch.no_grad():
        full.weight.copy_(weight)
        full.bias.copy_(bias)
    close(layer(x), full(x))


def test_spatially_separable_refuses_a_kernel_that_is_not_rank1():
    weight = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    weight[1, 0] = torch.eye(3)
    with pytest.raises(ValueError, match=r"weight\[1, 0\]: kernel is not rank 1"):
        SpatiallySeparableConv2d.from_kernel(weight)


@FAST
@given(c_in=small, c_out=small, m=st.integers(1, 2), k=st.integers(1, 3), s=small,
       p=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_depthwise_separable_matches_reference(c_in, c_out, m, k, s, p, seed):
    layer = DepthwiseSeparableConv2d(c_in, c_out, k, s, p, depth_multiplier=m).double()
    x = randn(seed, 1, c_in, 6, 5)
    depthwise = ref.conv2d(x.numpy(), layer.depthwise.weight.detach().numpy(), None, s, p,
                           groups=c_in)
    expected = ref.conv2d(depthwise, layer.pointwise.weight.detach().numpy(),
                          layer.pointwise.bias.detach().numpy())
    close(layer(x), expected)


def test_flattened_conv_matches_reference():
    layer = FlattenedConv2d(3, 4, kernel_size=3, stride=2, padding=1).double()
    x = randn(1, 2, 3, 7, 6)
    y = ref.corr2d_1x1(x.numpy()[0], layer.lateral.weight.detach().numpy())[None]
    y = ref.conv2d(y, layer.vertical.weight.detach().numpy(), None, (2, 1), (1, 0), groups=4)
    y = ref.conv2d(y, layer.horizontal.weight.detach().numpy(),
                   layer.horizontal.bias.detach().numpy(), (1, 2), (0, 1), groups=4)
    close(layer(x[:1]), y)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Conv2d(8, 8, 3, bias=False), 576),  # 3*3*8*8
        (lambda: DepthwiseSeparableConv2d(8, 8, 3, bias=False), 72 + 64),  # 3*3*8 + 8*8
        (lambda: DepthwiseSeparableConv2d(8, 8, 3, depth_multiplier=2, bias=False), 144 + 128),
        (lambda: SpatiallySeparableConv2d(8, 8, 3, bias=False), 192 + 192),  # 3*8*8 twice
        (lambda: SpatiallySeparableConv2d(8, 8, 3, mid_channels=4, bias=False), 96 + 96),
        (lambda: FlattenedConv2d(8, 8, 3, bias=False), 64 + 24 + 24),  # 8*8 + 3*8 + 3*8
        (lambda: GroupedConv2d(8, 8, 3, groups=2, bias=False), 288),  # 3*3*4*8
        (lambda: GroupedConv2d(8, 8, 3, groups=4, bias=False), 144),
        (lambda: ShuffledGroupedConv2d(8, 8, 3, groups=4, bias=False), 144),  # shuffle: none
        (lambda: Conv2d(8, 8, 3), 576 + 8),
    ],
)
def test_parameter_counts_of_the_variants(make, expected):
    assert n_params(make()) == expected


# ---------------------------------------------------------------- grouped and shuffled


@FAST
@given(g=st.integers(1, 6), n=st.integers(1, 6))
def test_channel_shuffle_is_a_permutation_and_g_then_c_over_g_restores(g, n):
    c = g * n
    x = torch.arange(float(c)).view(1, c, 1, 1)
    y = channel_shuffle(x, g).flatten()
    assert sorted(y.tolist()) == x.flatten().tolist()
    # position i takes channel (i % g) * n + i // g: the (g, n) grid read column by column
    assert y.tolist() == [float((i % g) * n + i // g) for i in range(c)]
    assert torch.equal(ChannelShuffle(n)(channel_shuffle(x, g)), x)


def test_shuffled_grouped_conv_is_grouped_conv_then_shuffle():
    layer = ShuffledGroupedConv2d(6, 6, kernel_size=3, groups=3, padding=1).double()
    x = randn(0, 2, 6, 5, 5)
    expected = ref.conv2d(x.numpy(), layer.conv.weight.detach().numpy(),
                          layer.conv.bias.detach().numpy(), padding=1, groups=3)
    close(layer(x), channel_shuffle(torch.as_tensor(expected), 3))


# ---------------------------------------------------------------- bad arguments and inputs


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: Conv2d(6, 8, 3, groups=4), ["groups=4", "in_channels=6", "[1, 2, 3, 6]"]),
        (lambda: Conv2d(4, 6, 3, groups=4), ["groups=4", "out_channels=6"]),
        (lambda: Conv2d(3, 8, 3, padding=-1), ["padding", "-1", ">= 0"]),
        (lambda: Conv2d(3, 8, 3, stride=0), ["stride", "0", ">= 1"]),
        (lambda: Conv2d(3, 8, 3, stride=-2), ["stride", "-2"]),
        (lambda: Conv2d(3, 8, 3, padding="full"), ["padding", "'full'", "'same'", "'valid'"]),
        (lambda: Conv2d(3, 8, (3, 3, 3)), ["kernel_size", "(3, 3, 3)", "tuple of 2"]),
        (lambda: Conv2d(3, 8, 3)(torch.zeros(3, 8, 8)), ["4-D", "(N, C, H, W)", "(3, 8, 8)"]),
        (lambda: Conv2d(3, 8, 3)(torch.zeros(1, 4, 8, 8)), ["4 channels", "expects 3"]),
        (lambda: Conv2d(3, 8, 5)(torch.zeros(1, 3, 3, 3)), ["kernel_size=5", "padded input 3",
                                                           "valid"]),
        (lambda: Conv2d(3, 8, 3, dilation=3)(torch.zeros(1, 3, 6, 6)), ["effective 7"]),
        (lambda: Conv3d(1, 2, 3)(torch.zeros(1, 1, 8, 8)), ["5-D", "(N, C, D, H, W)"]),
        (lambda: ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), ["output_padding=2",
                                                                        "0..1"]),
        (lambda: ConvTranspose2d(4, 4, 3, padding="same"), ["padding", "'same'"]),
        (lambda: DepthwiseSeparableConv2d(4, 4, depth_multiplier=0), ["depth_multiplier", "0"]),
        (lambda: GroupedConv2d(6, 6, 3, groups=4), ["groups=4", "in_channels=6"]),
        (lambda: ShuffledGroupedConv2d(6, 6, 1, groups=3)(torch.zeros(1, 5, 4, 4)),
         ["5 channels", "expects 6"]),
        (lambda: channel_shuffle(torch.zeros(1, 6, 2, 2), 4), ["groups=4", "channels=6"]),
    ],
)
def test_bad_arguments_raise_value_errors_that_name_argument_value_and_valid(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
