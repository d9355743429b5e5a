"""The batched policy operations against torchvision's single-image ones, op by op."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cnnlab.data.auto_augment import (
    AUTO_POLICIES,
    AUTO_SPACE,
    RAND_SPACE,
    TRIVIAL_WIDE_SPACE,
    AutoAugment,
    RandAugment,
    RandomErasing,
    TrivialAugmentWide,
)
from cnnlab.data.policy_ops import OPS, apply_grouped


def _images(n=6, h=20, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    x[0] = x[0] // 3 + 40  # a low-contrast image for autocontrast / equalize
    return x


def _reference(x, name, magnitude):
    # torchvision's own single-image operation, as its AutoAugment classes call it
    t = v2.TrivialAugmentWide()
    return t._apply_image_or_video_transform(x, name, magnitude, interpolation=t.interpolation,
                                             fill=t._fill)


MAGNITUDES = {
    "ShearX": [0.0, 0.3, -0.5, 0.99], "ShearY": [0.1, -0.3, 0.99],
    "TranslateX": [0.0, 3.7, -9.0, 14.2], "TranslateY": [1.0, -5.3, 20.0],
    "Rotate": [0.0, 9.0, -30.0, 90.0, -90.0, 180.0, 135.0, 4.5],
    "Brightness": [-0.99, -0.3, 0.0, 0.5, 0.99], "Color": [-0.99, -0.2, 0.6, 0.99],
    "Contrast": [-0.99, -0.4, 0.3, 0.99], "Sharpness": [-0.99, -0.3, 0.5, 0.99],
    "Posterize": [8.0, 7.0, 4.0, 2.0, 1.0, 0.0], "Solarize": [1.0, 0.7, 0.3, 0.0],
    "AutoContrast": [0.0], "Equalize": [0.0], "Invert": [0.0], "Identity": [0.0],
}


@pytest.mark.parametrize("h,w", [(20, 20), (16, 24)])
@pytest.mark.parametrize("name", sorted(OPS))
def test_each_op_equals_torchvisions_at_each_magnitude(name, h, w):
    mags = MAGNITUDES[name]
    x = _images(len(mags), h, w)
    # one magnitude per image, float32 bin values as the tables hold them
    m = torch.tensor(mags, dtype=torch.float32).double()
    got = OPS[name](x, m)
    assert got.shape == x.shape and got.dtype == torch.uint8
    for i, mag in enumerate(mags):
        want = _reference(x[i], name, float(torch.tensor(mag, dtype=torch.float32)))
        diff = (got[i].int() - want.int()).abs()
        # exact, but for one grey level where torchvision's blend fuses its multiply-add (one
        # rounding) and ours, broadcast per image, rounds twice: where the exact result is a whole
        # number (a pixel equal to its grey value) the truncation to uint8 can go either way
        assert int(diff.max()) <= 1, (name, mag, int(diff.max()))
        assert float((diff > 0).float().mean()) < 0.03, (name, mag)
        if name not in ("Color", "Contrast", "Sharpness", "Brightness"):
            assert int(diff.max()) == 0, (name, mag)
    xf = x.float() / 255  # float images in [0, 1]: torchvision's float path
    gotf = OPS[name](xf, m)
    assert gotf.dtype == torch.float32
    for i, mag in enumerate(mags):
        want = _reference(xf[i], name, float(torch.tensor(mag, dtype=torch.float32)))
        if name == "Equalize":  # torchvision equalizes floats through uint8
            want = TF.equalize(xf[i])
        assert torch.allclose(gotf[i], want, atol=1e-5), (name, mag)


def test_spaces_and_sub_policies_are_torchvisions():
    for ours, theirs in ((TRIVIAL_WIDE_SPACE, v2.TrivialAugmentWide), (RAND_SPACE,
                         v2.RandAugment), (AUTO_SPACE, v2.AutoAugment)):
        space = theirs._AUGMENTATION_SPACE
        assert list(ours) == list(space)
        for name, (fn, signed) in space.items():
            a, b = ours[name][0](31, 24, 20), fn(31, 24, 20)
            assert ours[name][1] == signed
            assert (a is None and b is None) or torch.equal(a, b), name
    for name, subs in AUTO_POLICIES.items():
        assert list(subs) == v2.AutoAugment(v2.AutoAugmentPolicy(name))._policies


def test_grouped_apply_runs_each_image_its_own_op():
    x = _images(5)
    names = ["Invert", "Posterize", "Identity"]
    op = torch.tensor([0, 1, 2, -1, 0])
    m = torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    y = apply_grouped(x, names, op, m)
    assert torch.equal(y[0], TF.invert(x[0])) and torch.equal(y[4], TF.invert(x[4]))
    assert torch.equal(y[1], TF.posterize(x[1], 2))
    assert torch.equal(y[2], x[2]) and torch.equal(y[3], x[3])
    assert torch.equal(apply_grouped(x, names, torch.full((5,), -1), m), x)


def test_grouped_geometric_ops_share_one_resampling_and_equal_torchvisions():
    names = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness"]
    picks = [(0, 0.5), (1, -0.3), (2, 7.9), (3, -4.0), (4, 90.0), (4, -17.0), (5, 0.4),
             (0, -0.99), (4, 180.0), (2, -31.0)]
    x = _images(len(picks))
    op = torch.tensor([k for k, _ in picks])
    m = torch.tensor([v for _, v in picks], dtype=torch.float32).double()
    y = apply_grouped(x, names, op, m)
    for i, (k, v) in enumerate(picks):
        want = _reference(x[i], names[k], float(m[i]))
        assert int((y[i].int() - want.int()).abs().max()) <= (1 if k == 5 else 0), (names[k], v)


@pytest.mark.parametrize("policy", [TrivialAugmentWide(), RandAugment(2, 9),
                                    AutoAugment("imagenet"), AutoAugment("svhn")])
def test_policies_draw_from_their_op_sets_per_image(policy):
    # every output image equals torchvision's op applied to that image for SOME op/magnitude of
    # the policy's space would be costly to search; instead: a batch of one repeated image gives
    # many distinct results, and a zero-probability-free identity batch stays in range
    x = _images(1).expand(64, 3, 20, 20).contiguous()
    y = policy(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert len({bytes(im.flatten().tolist()) for im in y}) > 16


def test_trivial_augment_draws_op_bin_and_sign_per_image(monkeypatch):
    import cnnlab.data.policy_ops as ops

    calls = {}

    def recorder(name, fn):
        def op(x, m):
            calls.setdefault(name, []).append(m.clone())
            return fn(x, m)
        return op

    def geometric(names, op, m, h, w):  # all geometric images, each with its own operation
        for k in torch.unique(op).tolist():
            calls.setdefault(names[k], []).append(m[op == k].clone())
        return merged(names, op, m, h, w)

    merged = ops.merged_matrices
    monkeypatch.setattr(ops, "merged_matrices", geometric)
    for name, fn in list(ops.OPS.items()):
        monkeypatch.setitem(ops.OPS, name, recorder(name, fn))
    n = 2800
    TrivialAugmentWide()(torch.zeros(n, 3, 8, 8, dtype=torch.uint8),
                         torch.Generator().manual_seed(0))
    counts = {k: sum(len(m) for m in v) for k, v in calls.items()}
    assert set(counts) == set(TRIVIAL_WIDE_SPACE) - {"Identity"}  # identity is skipped
    for name, c in counts.items():  # 14 operations, uniformly: 200 each
        assert 140 < c < 260, (name, c)
    assert 140 < n - sum(counts.values()) < 260  # the identity's share
    rot = torch.cat(calls["Rotate"])
    bins = torch.linspace(0.0, 135.0, 31).double()
    assert bool(torch.isin(rot.abs(), bins).all())  # magnitudes are the bins' values
    assert len(torch.unique(rot.abs())) > 20 and bool((rot < 0).any() and (rot > 0).any())


def test_random_erasing_boxes_match_torchvisions_rule():
    x = torch.full((400, 3, 20, 20), 7, dtype=torch.uint8)
    y = RandomErasing(0.5)(x, torch.Generator().manual_seed(0))
    erased = (y == 0).all(1)  # (n, H, W)
    hit = erased.flatten(1).any(1)
    assert 150 < int(hit.sum()) < 250  # p = 0.5
    for box in erased[hit][:50]:
        rows, cols = box.any(1).nonzero().squeeze(1), box.any(0).nonzero().squeeze(1)
        h, w = len(rows), len(cols)
        assert int(box.sum()) == h * w  # one filled rectangle
        assert h < 20 and w < 20 and 0.3 * 0.5 < h / w < 3.3 * 2 and 4 <= h * w <= 0.4 * 400
    assert torch.equal(y[~hit], x[~hit])
