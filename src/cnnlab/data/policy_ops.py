"""Batched image operations with one magnitude per image: the kernels of the policies.

Every function takes a batch ``x`` (n, C, H, W), uint8 or float in [0, 1], and magnitudes ``m``
(n,) (float64, the values of torchvision's magnitude bins), and returns a new batch of the same
shape and dtype in which image i had the operation applied with magnitude ``m[i]``.

They are torchvision's ``transforms.v2.functional`` kernels (the ones its AutoAugment,
RandAugment and TrivialAugmentWide call, with the same factor for the same magnitude:
``1 + m`` for brightness/colour/contrast/sharpness, ``int(m)`` bits and pixels for posterize and
translate, ``atan(m)`` shear, ``255 m`` solarize threshold) rewritten so that the magnitude is a
tensor broadcast over (n, 1, 1, 1), or, for the geometric ones, one affine matrix per image in
one ``affine_grid``-style grid and one ``grid_sample`` (nearest, zeros outside: the policies'
defaults). Why our own: torchvision's kernels take one Python number per call, so per-image
magnitudes mean one call per image (the loop this replaces: 22-42 ms per batch of 128 32x32
images on 2 cores, against 4-8 ms batched, ``benchmarks/policies.py``); kornia's
``augmentation.auto`` has other operations and magnitude ranges than torchvision's and measured
slower here (TrivialAugment 57 ms per batch) or per batch, not per image (AutoAugment: 3
distinct results in 128).
``tests/test_policy_ops.py`` compares every operation with torchvision's own at several
magnitudes: equal, up to one grey level where torchvision fuses a multiply-add that we broadcast.

Autocontrast, equalize and invert have no magnitude and are per-image in torchvision already;
they are called on the batch as they are.

Example:
    >>> x = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
    >>> brightness(x, torch.tensor([0.5, -0.5], dtype=torch.float64))[:, 0, 0, 0].tolist()
    [150, 50]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Op = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bound(x: torch.Tensor) -> float:
    return 1.0 if x.is_floating_point() else float(torch.iinfo(x.dtype).max)


def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n,) -> (n, 1, 1, 1) in the dtype the kernels compute in (float32 for uint8 input)."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return v.to(device=x.device, dtype=dtype).view(-1, 1, 1, 1)


def _cast(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out if x.is_floating_point() else out.to(x.dtype)  # truncation, as torchvision


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    # torchvision's _blend: x * r + other * (1 - r), clamped; r and 1 - r from float64 as there.
    r, rest = _col(ratio, x), _col(1.0 - ratio, x)  # (n, 1, 1, 1)
    return _cast(x.mul(r).add_(other * rest).clamp_(0, _bound(x)), x)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) -> (n, 1, H, W) float luma (ITU-R 601-2), floored for integer images."""
    r, g, b = x.unbind(dim=-3)
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)
    return gray if x.is_floating_point() else gray.floor_()


def brightness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Multiply by ``1 + m`` (v2 ``adjust_brightness``)."""
    return _cast(x.mul(_col(1.0 + m, x)).clamp_(0, _bound(x)), x)


def color(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image by ``1 + m`` (v2 ``adjust_saturation``)."""
    if x.shape[-3] == 1:
        return x.clone()
    return _blend(x, _grayscale(x), 1.0 + m)


def contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with each image's mean grey by ``1 + m`` (v2 ``adjust_contrast``)."""
    gray = _grayscale(x) if x.shape[-3] == 3 else x.to(_col(m, x).dtype)
    return _blend(x, gray.mean(dim=(-3, -2, -1), keepdim=True), 1.0 + m)


def sharpness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend the interior with a 3x3 smoothing by ``1 + m`` (v2 ``adjust_sharpness``)."""
    c, h, w = x.shape[-3:]
    if h <= 2 or w <= 2:
        return x.clone()
    dtype = x.dtype if x.is_floating_point() else torch.float32
    a, b = 1.0 / 13.0, 5.0 / 13.0  # 1s around a 5, normalised
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=dtype, device=x.device)
    out = x.to(dtype=dtype, copy=True)  # (n, C, H, W)
    blurred = F.conv2d(out, kernel.expand(c, 1, 3, 3), groups=c)  # (n, C, H-2, W-2)
    if not x.is_floating_point():
        blurred = blurred.round_()
    inner = out[..., 1:-1, 1:-1]  # the border keeps its pixels
    inner.add_(blurred.sub_(inner).mul_(_col(1.0 - (1.0 + m), x)))
    return _cast(out.clamp_(0, _bound(x)), x)


def posterize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Keep the top ``int(m)`` bits of each channel value (v2 ``posterize``)."""
    bits = m.to(torch.int64).to(x.device)
    if x.is_floating_point():
        levels = (2.0 ** bits).to(x.dtype).view(-1, 1, 1, 1)
        return torch.minimum(x.mul(levels).floor_(), levels - 1).clamp_(min=0).mul_(1.0 / levels)
    mask = torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits) & 255  # top bits
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def solarize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Invert values >= ``max * m`` (v2 ``solarize``)."""
    return torch.where(x >= _col(_bound(x) * m, x), invert(x, m), x)


def invert(x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    """``max - x`` (v2 ``invert``); no magnitude."""
    return 1.0 - x if x.is_floating_point() else x.bitwise_not()


def autocontrast(x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    """Stretch each image's channels to the full range (v2 ``autocontrast``, per image)."""
    from torchvision.transforms.v2 import functional as TF

    return TF.autocontrast(x)


def equalize(x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    """Histogram equalisation of each image's channels (v2 ``equalize``, per image)."""
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(x)


def identity(x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    """The image as it is."""
    return x


# --- geometry: one inverse affine matrix per image, one grid_sample -----------------------------


def inverse_affine(
    angle: torch.Tensor,
    translate: tuple[torch.Tensor, torch.Tensor],
    shear: tuple[torch.Tensor, torch.Tensor],
    center: tuple[float | torch.Tensor, float | torch.Tensor],
) -> torch.Tensor:
    """(n, 2, 3) float64 output->input matrices, torchvision's ``_get_inverse_affine_matrix``.

    Angles and shears in degrees (n,); translation in pixels (n,); ``center`` relative to the
    image centre; scale 1. With R the rotation, S the shear, C the centre, T the translation,
    the forward map is ``T C R S C^-1``; its inverse is ``C (R S)^-1 C^-1 T^-1`` where
    ``(R S)^-1 = [[d, -b], [-c, a]]`` because det(R S) = 1.

    Example:
        >>> z = torch.zeros(1, dtype=torch.float64)
        >>> inverse_affine(z, (z + 2, z), (z, z), (0.0, 0.0))[0].tolist()
        [[1.0, 0.0, -2.0], [-0.0, 1.0, 0.0]]
    """
    rot, sx, sy = (torch.deg2rad(v) for v in (angle, shear[0], shear[1]))
    cx, cy = center
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m0, m1, m3, m4 = d, -b, -c, a
    tx, ty = cx + translate[0], cy + translate[1]
    m2 = cx - m0 * tx - m1 * ty
    m5 = cy - m3 * tx - m4 * ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1).view(-1, 2, 3)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image i through its matrix ``theta[i]`` (n, 2, 3): nearest, zeros outside.

    The grid is torchvision's ``_affine_grid`` (pixel-centred coordinates, normalised after the
    matrix) for a batch of matrices; the sampling is one ``grid_sample`` over the batch.
    """
    n, _, h, w = x.shape
    dtype = x.dtype if x.is_floating_point() else torch.float32
    theta = theta.to(device=x.device, dtype=dtype)
    base = torch.empty(1, h, w, 3, dtype=dtype, device=x.device)  # (x, y, 1) per output pixel
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h,
                                      device=x.device).unsqueeze(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=dtype, device=x.device)
    rescaled = theta.transpose(1, 2).div(scale)  # (n, 3, 2): to grid_sample's [-1, 1]
    # (x, y, 1) @ rescaled for every pixel, as a broadcast multiply-add (a batched matmul of
    # (n, HW, 3) by (n, 3, 2) measured 10x slower on CPU for these tiny inner sizes)
    r = rescaled.view(n, 1, 1, 3, 2)
    b = base.unsqueeze(-1)  # (1, H, W, 3, 1)
    grid = b[..., 0, :] * r[..., 0, :] + b[..., 1, :] * r[..., 1, :] + r[..., 2, :]  # (n,H,W,2)
    out = F.grid_sample(x.to(dtype), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out if x.is_floating_point() else out.round_().to(x.dtype)


def _no_shift(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    zero = torch.zeros_like(m)
    return zero, zero


def shear_x_matrix(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3): shear x' = x + m y about the top-left corner (torchvision: shear
    ``degrees(atan(m))``, centre (0, 0))."""
    zero, _ = _no_shift(m)
    deg = torch.rad2deg(torch.atan(m))
    return inverse_affine(zero, _no_shift(m), (deg, zero), (-0.5 * w, -0.5 * h))


def shear_y_matrix(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3): shear y' = y + m x about the top-left corner."""
    zero, _ = _no_shift(m)
    deg = torch.rad2deg(torch.atan(m))
    return inverse_affine(zero, _no_shift(m), (zero, deg), (-0.5 * w, -0.5 * h))


def translate_x_matrix(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3): shift right by ``int(m)`` pixels (left when negative)."""
    zero, _ = _no_shift(m)
    return inverse_affine(zero, (torch.trunc(m), zero), _no_shift(m), (0.0, 0.0))


def translate_y_matrix(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3): shift down by ``int(m)`` pixels (up when negative)."""
    zero, _ = _no_shift(m)
    return inverse_affine(zero, (zero, torch.trunc(m)), _no_shift(m), (0.0, 0.0))


def rotate_matrix(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3): rotate by ``m`` degrees counter-clockwise about the centre."""
    angle = torch.remainder(m, 360.0)  # [0, 360), as torchvision
    return inverse_affine(-angle, _no_shift(m), _no_shift(m), (0.0, 0.0))


def _exact_rotations(
    x: torch.Tensor, m: torch.Tensor, out: torch.Tensor, among: torch.Tensor | None = None
) -> torch.Tensor:
    """Write torchvision's exact transposes into ``out`` where ``m`` is a multiple of 90 degrees
    (0 and 180 for any image, 90 and 270 for square ones), as its ``rotate`` does; ``among``:
    only these rows (a bool mask) are rotations."""
    h, w = x.shape[-2:]
    angle = torch.remainder(m, 360.0)
    for k in (0, 1, 2, 3):
        if k % 2 and h != w:
            continue
        hit = angle == 90.0 * k
        sel = (hit if among is None else hit & among).nonzero().squeeze(1)
        if len(sel):
            idx = sel.to(x.device)
            out[idx] = torch.rot90(x[idx], k=k, dims=(-2, -1))
    return out


def merged_matrices(names: list[str], op: torch.Tensor, m: torch.Tensor, h: int,
                    w: int) -> torch.Tensor:
    """(n, 2, 3) matrices for images that each drew one geometric operation ``names[op[i]]``.

    The same matrices as :data:`GEOMETRY`'s, built in one :func:`inverse_affine` call: each
    image's rotation, shears, translation and centre are its own operation's, zero otherwise.
    """
    zero = torch.zeros_like(m)

    def drew(name: str) -> torch.Tensor:
        return op == names.index(name) if name in names else torch.zeros_like(op, dtype=torch.bool)

    rot, shx, shy, tx, ty = (drew(k) for k in ("Rotate", "ShearX", "ShearY", "TranslateX",
                                               "TranslateY"))
    deg, t = torch.rad2deg(torch.atan(m)), torch.trunc(m)
    sheared = (shx | shy).to(m.dtype)  # shears turn about the top-left corner
    return inverse_affine(
        torch.where(rot, -torch.remainder(m, 360.0), zero),
        (torch.where(tx, t, zero), torch.where(ty, t, zero)),
        (torch.where(shx, deg, zero), torch.where(shy, deg, zero)),
        (sheared * (-0.5 * w), sheared * (-0.5 * h)),
    )


def _geometric(name: str) -> Op:
    def op(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        out = warp(x, GEOMETRY[name](m, *x.shape[-2:]))
        return _exact_rotations(x, m, out) if name == "Rotate" else out

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{name} of each image by its magnitude: one grid, one ``grid_sample``."
    return op


GEOMETRY: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "ShearX": shear_x_matrix,
    "ShearY": shear_y_matrix,
    "TranslateX": translate_x_matrix,
    "TranslateY": translate_y_matrix,
    "Rotate": rotate_matrix,
}
shear_x, shear_y = _geometric("ShearX"), _geometric("ShearY")
translate_x, translate_y = _geometric("TranslateX"), _geometric("TranslateY")
rotate = _geometric("Rotate")


OPS: dict[str, Op] = {  # torchvision's operation names -> the batched kernel
    "Identity": identity,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "Brightness": brightness,
    "Color": color,
    "Contrast": contrast,
    "Sharpness": sharpness,
    "Posterize": posterize,
    "Solarize": solarize,
    "AutoContrast": autocontrast,
    "Equalize": equalize,
    "Invert": invert,
}


def apply_grouped(
    x: torch.Tensor, names: list[str], op: torch.Tensor, m: torch.Tensor
) -> torch.Tensor:
    """Apply operation ``names[op[i]]`` with magnitude ``m[i]`` to image i; ``op[i] < 0``: none.

    The batch is sorted by operation (one gather); each colour operation runs once on its
    contiguous slice, the images of all geometric operations (each with its own matrix) share
    one resampling, and the results go back in order (one more gather).

    Example:
        >>> x = torch.full((3, 1, 2, 2), 10, dtype=torch.uint8)
        >>> op = torch.tensor([0, 1, -1])
        >>> m = torch.zeros(3, dtype=torch.float64)
        >>> apply_grouped(x, ["Invert", "Identity"], op, m)[:, 0, 0, 0].tolist()
        [245, 10, 10]
    """
    h, w = x.shape[-2:]
    geo = len(names)  # the key of the one geometric group
    kind = torch.tensor([-1 if k == "Identity" else geo if k in GEOMETRY else i
                         for i, k in enumerate(names)])
    key = torch.where(op < 0, -1, kind[op.clamp(min=0)])  # (n,) group of each image
    if bool((key < 0).all()):
        return x
    order = torch.argsort(key, stable=True)
    groups, counts = torch.unique_consecutive(key[order], return_counts=True)
    xs, ms, ops = x[order.to(x.device)], m[order], op[order]  # sorted by group
    parts, start = [], 0
    for k, c in zip(groups.tolist(), counts.tolist()):
        rows = slice(start, start + c)
        start += c
        if k < 0:
            parts.append(xs[rows])
        elif k == geo:
            out = warp(xs[rows], merged_matrices(names, ops[rows], ms[rows], h, w))
            if "Rotate" in names:
                rot = ops[rows] == names.index("Rotate")
                out = _exact_rotations(xs[rows], ms[rows], out, among=rot)
            parts.append(out)
        else:
            parts.append(OPS[names[k]](xs[rows], ms[rows]))
    return torch.cat(parts)[torch.argsort(order).to(x.device)]  # back in the batch's order
