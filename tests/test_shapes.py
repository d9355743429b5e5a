"""Output-size formulas agree with the sizes torch actually produces, and explain themselves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.layers.shapes import (
    conv_output_size,
    conv_transpose_output_size,
    get_padding,
    pool_output_size,
    same_padding,
)

FAST = settings(max_examples=40, deadline=None)
ints = st.integers


@FAST
@given(n=ints(1, 12), k=ints(1, 5), s=ints(1, 4), p=ints(0, 3), d=ints(1, 3))
def test_conv_output_size_matches_torch(n, k, s, p, d):
    x, w = torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1)
    if d * (k - 1) + 1 > n + 2 * p:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv_output_size(n, k, s, p, d)
        return
    actual = F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1)).shape[2]
    assert conv_output_size(n, k, s, p, d).size == actual


@FAST
@given(n=ints(1, 8), k=ints(1, 4), s=ints(1, 3), p=ints(0, 2), d=ints(1, 2), op=ints(0, 2))
def test_conv_transpose_output_size_matches_torch(n, k, s, p, d, op):
    expected_out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if op >= max(s, d) or expected_out < 1:
        with pytest.raises(ValueError):
            conv_transpose_output_size(n, k, s, p, op, d)
        return
    x, w = torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1)
    actual = F.conv_transpose2d(x, w, stride=(s, 1), padding=(p, 0), output_padding=(op, 0),
                                dilation=(d, 1)).shape[2]
    assert conv_transpose_output_size(n, k, s, p, op, d).size == actual


@FAST
@given(n=ints(1, 12), k=ints(1, 5), s=ints(1, 4), d=ints(1, 3), ceil=st.booleans(), data=st.data())
def test_pool_output_size_matches_torch_including_ceil_mode_and_dilation(n, k, s, d, ceil, data):
    p = data.draw(ints(0, k // 2))
    if d * (k - 1) + 1 > n + 2 * p:
        with pytest.raises(ValueError):
            pool_output_size(n, k, s, p, d, ceil)
        return
    actual = F.max_pool2d(torch.zeros(1, 1, n, 1), (k, 1), (s, 1), (p, 0), (d, 1), ceil).shape[2]
    assert pool_output_size(n, k, s, p, d, ceil).size == actual


@FAST
@given(n=ints(1, 20), k=ints(1, 6), s=ints(1, 4), d=ints(1, 3))
def test_same_padding_gives_ceil_n_over_s_and_puts_the_odd_pixel_after(n, k, s, d):
    same = same_padding(n, k, s, d)
    before, after = same.padding
    assert same.size == math.ceil(n / s) and after - before in (0, 1)
    # a plain convolution on the padded input indeed has ceil(n / s) outputs
    x = F.pad(torch.zeros(1, 1, 1, n), (before, after))
    assert F.conv2d(x, torch.zeros(1, 1, 1, k), stride=s, dilation=d).shape[3] == same.size
    assert conv_output_size(n, k, s, "same", d).size == same.size


def test_same_padding_examples_worked_by_hand():
    # k=4, stride 1: total 3 -> (1, 2), the extra pixel after, as TensorFlow does
    assert same_padding(kernel_size=4).padding == (1, 2)
    # n=7, k=3, s=2: out=4, total=(4-1)*2+3-7=2 -> (1, 1)
    assert same_padding(7, 3, 2).padding == (1, 1)
    # n=8, k=3, s=2: out=4, total=(4-1)*2+3-8=1 -> (0, 1)
    assert same_padding(8, 3, 2).padding == (0, 1)
    # per dimension, and in F.pad order (last dimension first)
    both = same_padding((8, 7), 3, 2)
    assert both.padding == ((0, 1), (1, 1)) and both.f_pad == (1, 1, 0, 1)
    assert get_padding(3) == 1 and get_padding(7) == 3 and get_padding(3, dilation=2) == 2


def test_results_explain_the_formula_with_numbers_filled_in():
    text = conv_output_size(28, 3, 2, 1).explain()
    assert "floor((n + 2*p - d*(k - 1) - 1) / s) + 1" in text
    assert "floor((28 + 2*1 - 1*(3 - 1) - 1) / 2) + 1 = floor(27 / 2) + 1 = 14" in text
    two_d = conv_output_size((28, 20), (3, 5)).explain()
    assert "dim 0:" in two_d and "dim 1:" in two_d and "= 16" in two_d
    assert "(14 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 28" in conv_transpose_output_size(
        14, 3, 2, 1, 1).explain()
    # n=5, k=2, s=2, p=1: ceil(5/2)+1 = 4, but window 4 would start at 6 >= n+p = 6: dropped
    ceil_text = pool_output_size(5, 2, 2, 1, ceil_mode=True).explain()
    assert "ceil(5 / 2) + 1 = 4" in ceil_text and "last window starts at 6 >= n + p = 6" in ceil_text
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True).size == 3
    assert "-> (1, 2)" in same_padding(7, 4, 2).explain()


def test_sizes_keep_the_form_they_were_given_in():
    assert conv_output_size(10, 3).size == 8
    assert conv_output_size((10, 9), 3).size == (8, 7)
    assert conv_output_size((10, 9, 8), (3, 1, 2), stride=(1, 2, 1)).size == (8, 5, 7)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: conv_output_size(3, 5), ["kernel_size=5", "padded input 3", "valid"]),
        (lambda: conv_output_size(8, 3, stride=0), ["stride", ">= 1", "0"]),
        (lambda: conv_output_size(8, 3, padding=-1), ["padding", ">= 0", "-1"]),
        (lambda: conv_output_size(0, 3), ["size", ">= 1", "0"]),
        (lambda: conv_output_size(8, 3, padding="full"), ["padding", "'same'", "'full'"]),
        (lambda: conv_output_size((8, 8), (3, 3, 3)), ["kernel_size", "tuple of 2"]),
        (lambda: pool_output_size(8, 3, padding=2), ["padding=2", "kernel_size=3", "0..1"]),
        (lambda: conv_transpose_output_size(4, 3, 2, output_padding=2),
         ["output_padding=2", "stride=2", "0..1"]),
        (lambda: conv_transpose_output_size(1, 1, 1, padding=1), ["padding=1", "crops"]),
        (lambda: same_padding(None, 3, 2), ["stride=2", "size"]),
    ],
)
def test_bad_arguments_name_argument_value_and_valid(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
