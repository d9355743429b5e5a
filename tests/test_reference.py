"""The NumPy reference ops agree with torch (float64, max abs diff <= 1e-10) on random settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import reference as ref

TOL = 1e-10
FAST = settings(max_examples=25, deadline=None)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def close(ours: np.ndarray, theirs: torch.Tensor) -> None:
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape
    with np.errstate(invalid="ignore"):  # -inf - -inf
        diff = np.where(ours == theirs, 0.0, np.abs(ours - theirs))  # equal infinities match
    assert diff.max(initial=0.0) <= TOL


def rng_arrays(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@FAST
@given(h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_corr2d_matches_torch(h, w, kh, kw, seed):
    assume(kh <= h and kw <= w)
    X, K = rng_arrays(seed, (h, w), (kh, kw))
    close(ref.corr2d(X, K), F.conv2d(t(X)[None, None], t(K)[None, None])[0, 0])


@FAST
@given(c_in=st.integers(1, 3), c_out=st.integers(1, 3), size=st.integers(2, 6),
       k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_multi_channel_and_1x1_match_torch(c_in, c_out, size, k, seed):
    assume(k <= size)
    X, K, K1 = rng_arrays(seed, (c_in, size, size), (c_out, c_in, k, k), (c_out, c_in, 1, 1))
    close(ref.corr2d_multi_in(X, K[0]), F.conv2d(t(X)[None], t(K[:1]))[0, 0])
    close(ref.corr2d_multi_in_out(X, K), F.conv2d(t(X)[None], t(K))[0])
    close(ref.corr2d_1x1(X, K1), F.conv2d(t(X)[None], t(K1))[0])


@st.composite
def conv_settings(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k, s, d = draw(pairs), draw(pairs), draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    p = draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    size = draw(st.tuples(st.integers(1, 8), st.integers(1, 8)))
    # the dilated kernel must fit the padded input
    assume(all(di * (ki - 1) + 1 <= n + 2 * pi for di, ki, n, pi in zip(d, k, size, p)))
    return dict(groups=groups, c_in=c_in, c_out=c_out, k=k, s=s, d=d, p=p, size=size)


@FAST
@given(cfg=conv_settings(), batch=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_padding_stride_dilation_groups_match_torch(cfg, batch, bias, seed):
    X, K, b = rng_arrays(seed, (batch, cfg["c_in"], *cfg["size"]),
                         (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["k"]), (cfg["c_out"],))
    b = b if bias else None
    ours = ref.conv2d(X, K, b, cfg["s"], cfg["p"], cfg["d"], cfg["groups"])
    theirs = F.conv2d(t(X), t(K), None if b is None else t(b), cfg["s"], cfg["p"], cfg["d"],
                      cfg["groups"])
    close(ours, theirs)


@st.composite
def pool_settings(draw, dilation: bool):
    k = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    s = draw(pairs)
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    d = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if dilation else (1, 1)
    size = draw(st.tuples(st.integers(1, 8), st.integers(1, 8)))
    assume(all(di * (ki - 1) + 1 <= n + 2 * pi for di, ki, n, pi in zip(d, k, size, p)))
    return dict(k=k, s=s, p=p, d=d, size=size, ceil=draw(st.booleans()))


@settings(max_examples=20, deadline=None)  # five nested Python loops per example
@given(cfg=pool_settings(dilation=True), seed=st.integers(0, 2**16))
def test_max_pool_with_indices_and_unpool_match_torch(cfg, seed):
    (X,) = rng_arrays(seed, (1, 2, *cfg["size"]))
    Y, idx = ref.max_pool2d(X, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil"],
                            return_indices=True)
    Yt, idx_t = F.max_pool2d(t(X), cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil"],
                             return_indices=True)
    close(Y, Yt)
    # a dilated window can fall entirely on padding: the max is -inf and torch's index then
    # points outside the input, so indices are compared where a real pixel won
    real = np.isfinite(Y)
    assert np.array_equal(idx[real], idx_t.numpy()[real])
    if cfg["d"] == (1, 1) and real.all():  # torch's max_unpool2d has no dilation argument
        close(ref.max_unpool2d(Y, idx, cfg["size"]),
              F.max_unpool2d(Yt, idx_t, cfg["k"], cfg["s"], cfg["p"], output_size=cfg["size"]))


@FAST
@given(cfg=pool_settings(dilation=False), include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool_ceil_mode_and_count_include_pad_match_torch(cfg, include_pad, seed):
    (X,) = rng_arrays(seed, (2, 2, *cfg["size"]))
    ours = ref.avg_pool2d(X, cfg["k"], cfg["s"], cfg["p"], cfg["ceil"], include_pad)
    close(ours, F.avg_pool2d(t(X), cfg["k"], cfg["s"], cfg["p"], cfg["ceil"], include_pad))


def test_simple_pool2d_and_global_average_pool():
    (X,) = rng_arrays(0, (5, 6))
    close(ref.pool2d(X, (2, 3), "max"), F.max_pool2d(t(X)[None], (2, 3), stride=1)[0])
    close(ref.pool2d(X, (2, 3), "avg"), F.avg_pool2d(t(X)[None], (2, 3), stride=1)[0])
    close(ref.global_avg_pool2d(X[None]), F.adaptive_avg_pool2d(t(X)[None], 1))


@st.composite
def deconv_settings(draw):
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k, s = draw(pairs), draw(pairs)
    d = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    size = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    p = draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    out = [(n - 1) * si - 2 * pi + di * (ki - 1) + o + 1
           for n, si, pi, di, ki, o in zip(size, s, p, d, k, op)]
    assume(min(out) >= 1)
    return dict(groups=groups, c_in=c_in, c_out=c_out, k=k, s=s, d=d, p=p, op=op, size=size)


@FAST
@given(cfg=deconv_settings(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv_transpose_by_scattering_matches_torch(cfg, bias, seed):
    X, K, b = rng_arrays(seed, (2, cfg["c_in"], *cfg["size"]),
                         (cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["k"]), (cfg["c_out"],))
    b = b if bias else None
    ours = ref.conv_transpose2d(X, K, b, cfg["s"], cfg["p"], cfg["op"], cfg["d"], cfg["groups"])
    theirs = F.conv_transpose2d(t(X), t(K), None if b is None else t(b), cfg["s"], cfg["p"],
                                cfg["op"], cfg["groups"], cfg["d"])
    close(ours, theirs)


@FAST
@given(cfg=conv_settings(), seed=st.integers(0, 2**16))
def test_conv_is_a_matrix_and_its_transpose_is_the_transposed_conv(cfg, seed):
    assume(cfg["groups"] == 1)
    X, K = rng_arrays(seed, (cfg["c_in"], *cfg["size"]), (cfg["c_out"], cfg["c_in"], *cfg["k"]))
    M = ref.conv_matrix(K, cfg["size"], cfg["s"], cfg["p"], cfg["d"])
    conv = F.conv2d(t(X)[None], t(K), None, cfg["s"], cfg["p"], cfg["d"])[0]
    close((M @ X.ravel()).reshape(conv.shape), conv)
    # M.T maps the conv's output shape back to its input shape: that is the transposed conv
    (Y,) = rng_arrays(seed + 1, tuple(conv.shape))
    ours = ref.conv_transpose2d_matrix(Y, K, cfg["size"], cfg["s"], cfg["p"], cfg["d"])
    # torch picks the output size through output_padding; the matrix picks it through its shape
    theirs_sized = torch.nn.ConvTranspose2d(cfg["c_out"], cfg["c_in"], cfg["k"], cfg["s"],
                                            cfg["p"], dilation=cfg["d"], bias=False).double()
    with torch.no_grad():
        theirs_sized.weight.copy_(t(K))
        theirs = theirs_sized(t(Y)[None], output_size=list(cfg["size"]))[0]
    close(ours, theirs)


def test_learn_edge_kernel_converges_to_one_minus_one():
    result = ref.learn_edge_kernel(num_epochs=30, seed=3)
    assert np.abs(result.kernel - np.array([[1.0, -1.0]])).max() < 0.01
    assert result.losses[-1] < 1e-3 * result.losses[0]
    # works on another image and its edge map too
    X = np.random.default_rng(1).random((5, 9))
    Y = ref.corr2d(X, np.array([[1.0, -1.0]]))
    assert np.allclose(ref.learn_edge_kernel(X, Y, lr=0.01, num_epochs=300).kernel,
                       [[1.0, -1.0]], atol=0.01)
    with pytest.raises(ValueError, match="diverged"):
        ref.learn_edge_kernel(X, Y, lr=0.5, num_epochs=300)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: ref.corr2d(np.ones((2, 2)), np.ones((3, 3))), "larger than"),
        (lambda: ref.corr2d(np.ones((2, 2, 2)), np.ones((1, 1))), "2-D array"),
        (lambda: ref.conv2d(np.ones((3, 4, 4)), np.ones((2, 1, 1, 1)), groups=2), "groups=2"),
        (lambda: ref.conv2d(np.ones((2, 4, 4)), np.ones((2, 2, 1, 1)), padding=-1), "padding"),
        (lambda: ref.max_pool2d(np.ones((1, 4, 4)), 2, padding=2), "at most half"),
        (lambda: ref.conv_transpose2d_matrix(np.ones((1, 2, 2)), np.ones((1, 1, 2, 2)), (5, 5)),
         "output_size"),
        (lambda: ref.learn_edge_kernel(np.ones((3, 3)), np.ones((3, 3))), "(H, W - 1)"),
    ],
)
def test_reference_bad_input_raises_clear_value_error(call, words):
    with pytest.raises(ValueError, match=None) as info:
        call()
    assert words in str(info.value)
