"""cnnlab.data batches, batched augmentation and normalization."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import (
    PRESETS,
    Augment,
    Split,
    batches,
    build_augment,
    default_augment_name,
    to_float,
    to_float_normalized,
)
from cnnlab.data.augment import affine_matrices, apply_affine


def _images(b=16, c=3, h=12, w=10, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


# --- batches -------------------------------------------------------------------------------------


def _split(n=23):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 2, 3, 3).contiguous()
    return Split(x, torch.arange(n))


def test_batches_cover_each_sample_once_per_epoch():
    s = _split()
    g = torch.Generator().manual_seed(0)
    seen = []
    for x, y in batches(s, 5, shuffle=True, generator=g):
        assert x.dtype == torch.uint8 and x.shape[1:] == (2, 3, 3)
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images stay paired with labels
        seen += y.tolist()
    assert sorted(seen) == list(range(23)) and seen != list(range(23))


def test_batches_deterministic_order_and_drop_last():
    s = _split()
    a = [y for _, y in batches(s, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    b = [y for _, y in batches(s, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    plain = [y.tolist() for _, y in batches(s, 10, shuffle=False, drop_last=True)]
    assert plain == [list(range(10)), list(range(10, 20))]
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(s, 0, shuffle=False))


# --- normalization -------------------------------------------------------------------------------


def test_to_float_normalized_matches_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = to_float_normalized(x, mean, std)
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-5)
    cl = to_float_normalized(x, mean, std, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.allclose(cl, ref, atol=1e-5)
    assert torch.allclose(to_float_normalized(to_float(x), mean, std), ref, atol=1e-5)  # [0, 1]
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        to_float_normalized(x, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std > 0"):
        to_float_normalized(x[:, :1], (0.5,), (0.0,))


# --- augmentation --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*PRESETS, "crop=2,flip,rotate=20,rrc=0.5,jitter=0.2,cutout=3,reflect"])
def test_presets_shape_dtype_range(name):
    aug = build_augment(name, 12)
    x = _images()
    y = aug(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    if name != "none":
        assert not torch.equal(y, x)


@pytest.mark.parametrize("spec", ["crop-flip", "crop=2,reflect", "crop=3,flip,cutout=4,reflect"])
def test_uint8_batches_for_pixel_moving_ops(spec):
    aug = build_augment(spec, 32)
    assert aug.uint8_ok
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    y = aug(x, torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    # the same draws give the same pixels on uint8 and float input
    yf = aug(to_float(x), torch.Generator().manual_seed(0))
    assert torch.equal((yf * 255).round().to(torch.uint8), y)
    with pytest.raises(ValueError, match="float images"):
        build_augment("strong", 32)(x)


def test_seeded_determinism():
    aug = build_augment("strong", 12)
    x = _images()
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    held = Augment(flip=True, crop_padding=1, generator=torch.Generator().manual_seed(7))
    ref = Augment(flip=True, crop_padding=1)(x, torch.Generator().manual_seed(7))
    assert torch.equal(held(x), ref)


def test_flip_is_exact_mirror():
    x = _images(b=64)
    y = Augment(flip=True)(x, torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 10 < int(mirrored.sum()) < 54  # about half


def test_crop_with_padding_equals_reference():
    x, p = _images(b=20), 3
    for flip, mode in ((False, "constant"), (True, "constant"), (True, "reflect")):
        y = Augment(crop_padding=p, flip=flip, padding_mode=mode)(x, torch.Generator().manual_seed(5))
        # the same draws, in the order Augment makes them: oy, ox, then the flips
        g = torch.Generator().manual_seed(5)
        oy = torch.randint(0, 2 * p + 1, (20,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (20,), generator=g)
        flips = torch.rand(20, generator=g) < 0.5 if flip else torch.zeros(20, dtype=torch.bool)
        u8 = Augment(crop_padding=p, flip=flip, padding_mode=mode)(
            (x * 255).round().to(torch.uint8), torch.Generator().manual_seed(5))
        assert torch.equal(u8, (y * 255).round().to(torch.uint8))  # same pixels as uint8
        for i in range(20):
            padded = F.pad(x[i : i + 1], (p, p, p, p), mode=mode)[0]
            ref = padded[:, oy[i] : oy[i] + 12, ox[i] : ox[i] + 10]
            if flips[i]:
                ref = ref.flip(2)
            assert torch.equal(y[i], ref), (i, flip, mode)


def test_affine_matrices_rotate_and_crop():
    x = _images(b=1, c=1, h=8, w=8)
    one, zero = torch.ones(1), torch.zeros(1)
    rot = apply_affine(x, affine_matrices(one, one, zero, zero, torch.tensor([90.0]), (8, 8)))
    assert torch.allclose(rot, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5) or torch.allclose(
        rot, torch.rot90(x, -1, dims=(2, 3)), atol=1e-5
    )
    # crop the top-left quadrant (half width/height, centre at -0.5, -0.5) of a 2x2-block image
    blocks = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(4, 0).repeat_interleave(4, 1)
    half = torch.full((1,), 0.5)
    quad = apply_affine(blocks.view(1, 1, 8, 8),
                        affine_matrices(half, half, -half, -half, zero, (8, 8)))
    # 2x upsampling: output pixels 1..6 sample input coords 0.25..2.75, all inside block "1"
    assert torch.allclose(quad[..., 1:7, 1:7], torch.ones(1, 1, 6, 6), atol=1e-5)
    assert float(quad[..., 7, 7]) > 1.0  # the last pixel blends with the neighbouring blocks


def test_rotation_keeps_content_near_centre():
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a centred square survives a small rotation
    y = Augment(rotate=10)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y[:, :, 7:9, 7:9], torch.ones(4, 1, 2, 2), atol=1e-4)
    assert float(y[:, :, :3].abs().max()) == 0.0


def test_jitter_keeps_gray_gray_and_cutout_area():
    g = torch.rand(8, 1, 6, 6).expand(8, 3, 6, 6).contiguous()
    y = Augment(jitter=0.4)(g, torch.Generator().manual_seed(0))
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6) and torch.allclose(y[:, 1], y[:, 2], atol=1e-6)
    z = Augment(cutout=4, cutout_fill=1.0)(torch.zeros(32, 1, 10, 10), torch.Generator().manual_seed(0))
    area = z.flatten(1).sum(1)
    assert float(area.max()) == 16.0 and float(area.min()) >= 4.0  # clipped at the border


def test_eval_mode_is_identity():
    aug = build_augment("strong", 12).eval()
    x = _images()
    assert aug(x) is x


def test_build_augment_errors_and_defaults():
    with pytest.raises(ValueError, match="crop-flip"):
        build_augment("mixup", 32)
    with pytest.raises(ValueError, match="needs a number"):
        build_augment("crop=big", 32)
    with pytest.raises(ValueError, match="resized_crop"):
        Augment(resized_crop=(0.0, 1.0))
    with pytest.raises(ValueError, match="crop_padding"):
        Augment(crop_padding=-1)
    assert build_augment(None, 32).is_identity
    assert build_augment("crop-flip", 64).crop_padding == 8
    assert default_augment_name("mnist") == "crop" and default_augment_name("cifar10") == "crop-flip"


def test_bench_runs_and_prints_every_row(capsys):
    from cnnlab.data import bench

    bench.main(["--reps", "1", "--batch-sizes", "4", "--clock", "wall"])
    out = capsys.readouterr().out
    for row in ("batches() index_select", "crop-flip, per-sample loop", "strong preset",
                "data/compute"):
        assert row in out


def test_reflect_padding_wider_than_the_image_is_a_clear_error():
    aug = Augment(crop_padding=4, padding_mode="reflect")
    for x in (torch.zeros(2, 3, 4, 6, dtype=torch.uint8), torch.zeros(2, 3, 4, 6)):
        with pytest.raises(ValueError, match="reflect padding 4 needs images larger than 4"):
            aug(x, torch.Generator().manual_seed(0))
