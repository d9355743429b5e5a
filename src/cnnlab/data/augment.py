"""Batched data augmentation on image tensors, on whatever device the batch lives on.

Every operation draws its random parameters for the whole batch at once (from a CPU
``torch.Generator``, so a seed gives the same augmentation on CPU and GPU) and applies them with
a few tensor ops -- no per-sample Python loop:

* random crop with padding + horizontal flip: one ``gather`` with per-sample row/column indices;
* rotation + random resized crop: one ``affine_grid`` + ``grid_sample`` with per-sample matrices;
* colour jitter (brightness, contrast, saturation) and cutout: broadcast arithmetic and masks.

References: random crop + flip as in He et al. 2016 (ResNet, CIFAR recipe); random resized crop
as in Szegedy et al. 2015 (Inception); cutout as in DeVries & Taylor 2017.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _uniform(n: int, low: float, high: float, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


class Augment(nn.Module):
    """Random batch augmentation for images (B, C, H, W).

    Input is float in [0, 1]; a uint8 batch is accepted too when only crop, flip and cutout are
    enabled (those move pixels without arithmetic), which is 4x less memory traffic.
    In ``eval()`` mode the module returns its input unchanged.

    Args:
        crop_padding: pad each side by this many pixels, then crop back to (H, W) at a random
            offset (0 disables).
        padding_mode: ``"constant"`` (zeros) or ``"reflect"`` for the crop padding.
        flip: flip each image left-right with probability 1/2.
        rotate: maximum rotation in degrees (angle ~ U(-rotate, rotate); 0 disables).
        resized_crop: ``(min_scale, max_scale)`` of the image area kept by a random resized crop
            (aspect ratio ~ log-U(3/4, 4/3)), or None to disable.
        jitter: strength j of brightness/contrast/saturation jitter, factors ~ U(1-j, 1+j).
        cutout: side in pixels of a square erased at a random centre (0 disables).
        cutout_fill: value written into the erased square (0.5 = mid-grey).
        generator: default CPU generator for the random parameters (overridable per call).
        size: (H, W) of the output when the images are stored larger (full-resolution
            storage): the random resized crop (or rotation) samples straight to that size,
            otherwise a random crop of that size is taken first (torchvision's RandomCrop).
            None keeps the input size.

    Example:
        >>> aug = Augment(crop_padding=4, flip=True, generator=torch.Generator().manual_seed(0))
        >>> aug(torch.rand(8, 3, 32, 32)).shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        crop_padding: int = 0,
        padding_mode: str = "constant",
        flip: bool = False,
        rotate: float = 0.0,
        resized_crop: tuple[float, float] | None = None,
        jitter: float = 0.0,
        cutout: int = 0,
        cutout_fill: float = 0.5,
        generator: torch.Generator | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be an integer >= 0, got {crop_padding!r}")
        if padding_mode not in ("constant", "reflect"):
            raise ValueError(f"padding_mode must be 'constant' or 'reflect', got {padding_mode!r}")
        if not 0 <= rotate <= 180:
            raise ValueError(f"rotate must be a maximum angle in degrees in [0, 180], got {rotate}")
        if resized_crop is not None:
            lo, hi = resized_crop
            if not 0 < lo <= hi <= 1:
                raise ValueError(
                    f"resized_crop must be (min_scale, max_scale) with 0 < min <= max <= 1, "
                    f"got {resized_crop!r}"
                )
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if isinstance(cutout, bool) or not isinstance(cutout, int) or cutout < 0:
            raise ValueError(f"cutout must be a side length in pixels >= 0, got {cutout!r}")
        self.crop_padding = crop_padding
        self.padding_mode = padding_mode
        self.flip = bool(flip)
        self.rotate = float(rotate)
        self.resized_crop = None if resized_crop is None else tuple(map(float, resized_crop))
        self.jitter = float(jitter)
        self.cutout = cutout
        self.cutout_fill = float(cutout_fill)
        self.generator = generator
        self.size = None if size is None else (int(size[0]), int(size[1]))

    @property
    def is_identity(self) -> bool:
        """True when no augmentation is enabled."""
        return not (
            self.crop_padding
            or self.flip
            or self.rotate
            or self.resized_crop
            or self.jitter
            or self.cutout
        )

    @property
    def uint8_ok(self) -> bool:
        """True when the enabled operations can run on uint8 batches directly."""
        return not (self.rotate or self.resized_crop or self.jitter)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch; ``generator`` overrides the one given at construction."""
        if x.ndim != 4:
            raise ValueError(f"Augment expects images of shape (B, C, H, W), got {tuple(x.shape)}")
        if x.dtype == torch.uint8 and not self.uint8_ok:
            raise ValueError(
                "Augment with rotate/resized_crop/jitter needs float images in "
                "[0, 1]; convert uint8 batches first with cnnlab.data.to_float(x)"
            )
        if not x.is_floating_point() and x.dtype != torch.uint8:
            raise ValueError(f"Augment expects float or uint8 images, got {x.dtype}")
        if not self.training or self.is_identity or len(x) == 0:
            return x
        g = generator if generator is not None else self.generator
        if self.rotate or self.resized_crop:
            x = self._affine(x, g)
        elif self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = self._random_crop(x, g)
        if self.crop_padding:
            x = self._crop_flip(x, g, self.flip)
        elif self.flip:
            flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.jitter:
            x = self._jitter(x, g)
        if self.cutout:
            x = self._cutout(x, g)
        return x

    def _crop_flip(self, x: torch.Tensor, g: torch.Generator | None, flip: bool) -> torch.Tensor:
        # Pad once, then read each output pixel (i, j) of image b from padded position
        # (oy_b + i, ox_b + j) -- or (oy_b + i, ox_b + W-1-j) when b is flipped -- via one gather
        # on the flattened padded plane: flat index = row * W_padded + col.
        b, c, h, w = x.shape
        p = self.crop_padding
        if self.padding_mode == "reflect" and p >= min(h, w):
            raise ValueError(
                f"reflect padding {p} needs images larger than {p} pixels, got {h}x{w}"
            )
        xp = F.pad(x, (p, p, p, p), mode=self.padding_mode)  # (B, C, H+2p, W+2p), any dtype
        wp = w + 2 * p
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g)
        cols = torch.arange(w).expand(b, w)  # (B, W)
        if flip:
            flipped = torch.rand(b, generator=g) < 0.5
            cols = torch.where(flipped.view(-1, 1), w - 1 - cols, cols)
        rows = oy.view(-1, 1) + torch.arange(h)  # (B, H)
        cols = ox.view(-1, 1) + cols  # (B, W)
        index = (rows.view(b, h, 1) * wp + cols.view(b, 1, w)).view(b, 1, h * w)
        index = index.to(x.device).expand(b, c, h * w)
        return xp.flatten(2).gather(2, index).view(b, c, h, w)

    def _random_crop(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        # A window of the output size at a uniform offset per image: one gather, as above.
        b, c, h, w = x.shape
        oh, ow = self.size
        if oh > h or ow > w:
            raise ValueError(f"Augment size {self.size} is larger than the images {(h, w)}")
        oy = torch.randint(0, h - oh + 1, (b,), generator=g)
        ox = torch.randint(0, w - ow + 1, (b,), generator=g)
        rows = oy.view(-1, 1) + torch.arange(oh)  # (B, oh)
        cols = ox.view(-1, 1) + torch.arange(ow)  # (B, ow)
        index = (rows.view(b, oh, 1) * w + cols.view(b, 1, ow)).view(b, 1, oh * ow)
        index = index.to(x.device).expand(b, c, oh * ow)
        return x.flatten(2).gather(2, index).view(b, c, oh, ow)

    def _affine(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.resized_crop:
            scale = _uniform(b, *self.resized_crop, g)
            aspect = torch.exp(_uniform(b, math.log(3 / 4), math.log(4 / 3), g))
            fw = torch.sqrt(scale * aspect).clamp(max=1.0)
            fh = torch.sqrt(scale / aspect).clamp(max=1.0)
            cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - fw)
            cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - fh)
        else:
            fw = fh = torch.ones(b)
            cx = cy = torch.zeros(b)
        angle = _uniform(b, -self.rotate, self.rotate, g)
        theta = affine_matrices(fw, fh, cx, cy, angle, (h, w))
        return apply_affine(x, theta, self.size)

    def _jitter(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        # brightness: x * fb;  contrast: (x - m) * fc + m with m the image's mean grey level;
        # saturation: (x - y) * fs + y with y = 0.299 R + 0.587 G + 0.114 B per pixel.
        b, c = x.shape[:2]
        j = self.jitter
        fb, fc, fs = (
            _uniform(b, 1 - j, 1 + j, g).to(x.device, x.dtype).view(-1, 1, 1, 1) for _ in range(3)
        )
        x = (x * fb).clamp_(0, 1)  # a fresh tensor: the steps below may work in place
        # The mean grey level is linear in the pixels, so it is the luma of the channel means.
        m = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        if c == 3:
            m = _luma(m)  # (B, 1, 1, 1)
        else:
            m = m.mean(dim=1, keepdim=True)
        x.sub_(m).mul_(fc).add_(m).clamp_(0, 1)
        if c == 3:
            y = _luma(x)  # (B, 1, H, W)
            x.sub_(y).mul_(fs).add_(y).clamp_(0, 1)
        return x

    def _cutout(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        # Erase rows [cy - k//2, cy - k//2 + k) x cols [cx - k//2, ...) (clipped at the border).
        b, _, h, w = x.shape
        k = self.cutout
        cy = torch.randint(0, h, (b, 1), generator=g) - k // 2
        cx = torch.randint(0, w, (b, 1), generator=g) - k // 2
        ar_h, ar_w = torch.arange(h), torch.arange(w)
        rows = (ar_h >= cy) & (ar_h < cy + k)  # (B, H)
        cols = (ar_w >= cx) & (ar_w < cx + k)  # (B, W)
        mask = (rows.view(b, 1, h, 1) & cols.view(b, 1, 1, w)).to(x.device)
        fill = round(self.cutout_fill * 255) if x.dtype == torch.uint8 else self.cutout_fill
        return x.masked_fill(mask, fill)

    def extra_repr(self) -> str:
        parts = []
        if self.crop_padding:
            parts.append(f"crop_padding={self.crop_padding}, padding_mode={self.padding_mode!r}")
        if self.flip:
            parts.append("flip=True")
        if self.rotate:
            parts.append(f"rotate={self.rotate}")
        if self.resized_crop:
            parts.append(f"resized_crop={self.resized_crop}")
        if self.jitter:
            parts.append(f"jitter={self.jitter}")
        if self.cutout:
            parts.append(f"cutout={self.cutout}")
        if self.size is not None:
            parts.append(f"size={self.size}")
        return ", ".join(parts) or "identity"


def _luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of RGB images (B, 3, H, W) -> (B, 1, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def affine_matrices(
    fw: torch.Tensor,
    fh: torch.Tensor,
    cx: torch.Tensor,
    cy: torch.Tensor,
    angle: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Per-sample ``affine_grid`` matrices (B, 2, 3) for a crop then a rotation.

    The output pixel at normalized coords q = (u, v) in [-1, 1]^2 samples the input at
    ``D^-1 R(a) D S q + t``, where S = diag(fw, fh) shrinks to the crop (fractions of the
    width/height), D = diag(W/2, H/2) converts to pixels so that R(a) is a true rotation on
    non-square images, and t = (cx, cy) is the crop centre. Multiplied out:
    ``A = [[cos a * fw, -sin a * fh * H/W], [sin a * fw * W/H, cos a * fh]]``.

    Args:
        fw, fh: crop width/height as fractions of the image (B,).
        cx, cy: crop centre in normalized coordinates (B,).
        angle: rotation in degrees (B,), counter-clockwise in image coordinates (y down).
        size: (H, W).

    Example:
        >>> one, zero = torch.ones(1), torch.zeros(1)
        >>> theta = affine_matrices(one, one, zero, zero, zero, (8, 8))
        >>> theta[0].tolist() == [[1, 0, 0], [0, 1, 0]]
        True
    """
    h, w = size
    a = torch.deg2rad(angle)
    cos, sin = torch.cos(a), torch.sin(a)
    row0 = torch.stack([cos * fw, -sin * fh * (h / w), cx], dim=1)
    row1 = torch.stack([sin * fw * (w / h), cos * fh, cy], dim=1)
    return torch.stack([row0, row1], dim=1)  # (B, 2, 3)


def apply_affine(
    x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resample a float batch (B, C, H, W) with matrices (B, 2, 3): one bilinear grid_sample.

    Pixels that fall outside the input read as 0. ``size`` = (H', W') samples the output grid
    at another size (a resized crop straight from a larger stored picture).

    Example:
        >>> theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        >>> x = torch.rand(1, 1, 4, 4)
        >>> torch.allclose(apply_affine(x, theta), x, atol=1e-6)
        True
    """
    theta = theta.to(device=x.device, dtype=x.dtype)
    shape = list(x.shape) if size is None else [*x.shape[:2], *size]
    grid = F.affine_grid(theta, shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central (H', W') window of a batch (B, C, H, W) -- evaluation of a larger store.

    The offset is torchvision's ``CenterCrop``: ``round((H - H') / 2)``.

    Example:
        >>> center_crop(torch.arange(16.0).view(1, 1, 4, 4), (2, 2)).flatten().tolist()
        [5.0, 6.0, 9.0, 10.0]
    """
    h, w = x.shape[-2:]
    oh, ow = size
    if (oh, ow) == (h, w):
        return x
    if oh > h or ow > w:
        raise ValueError(f"center_crop size {tuple(size)} is larger than the images {(h, w)}")
    top, left = int(round((h - oh) / 2.0)), int(round((w - ow) / 2.0))
    return x[..., top : top + oh, left : left + ow]
