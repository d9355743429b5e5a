"""TrivialAugmentWide, RandAugment and AutoAugment drawn per image and applied batched.

The operation sets, magnitude bins, signs and AutoAugment's learned sub-policies are
torchvision's (``transforms.v2``: Müller & Hutter 2021, Cubuk et al. 2019 and 2018; copied as
data below, checked against torchvision's tables by ``tests/test_policy_ops.py``). What differs
is how they run: torchvision draws one operation and magnitude per call, so a batch gets one
operation for all its images, or one call per image. Here every image draws its own operation,
magnitude bin and sign (and, for AutoAugment, sub-policy and the coins of its two steps) from
the caller's generator, the batch is grouped by operation, and each operation runs once on its
sub-batch with a magnitude tensor (:func:`cnnlab.data.policy_ops.apply_grouped`).

Example:
    >>> x = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    >>> TrivialAugmentWide()(x, torch.Generator().manual_seed(0)).shape
    torch.Size([8, 3, 16, 16])
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from cnnlab.data.policy_ops import apply_grouped

# name -> (magnitude bins as a function of (num_bins, height, width), or None; signed)
Space = dict[str, tuple[object, bool]]


def _lin(top: float):
    return lambda n, h, w: torch.linspace(0.0, top, n)


def _posterize(low: int):  # 8 bits down to ``low`` over the bins
    return lambda n, h, w: (8 - (torch.arange(n) / ((n - 1) / (8 - low)))).round().int()


_SOLARIZE = (lambda n, h, w: torch.linspace(1.0, 0.0, n), False)
_NONE = (lambda n, h, w: None, False)

TRIVIAL_WIDE_SPACE: Space = {
    "Identity": _NONE,
    "ShearX": (_lin(0.99), True),
    "ShearY": (_lin(0.99), True),
    "TranslateX": (_lin(32.0), True),
    "TranslateY": (_lin(32.0), True),
    "Rotate": (_lin(135.0), True),
    "Brightness": (_lin(0.99), True),
    "Color": (_lin(0.99), True),
    "Contrast": (_lin(0.99), True),
    "Sharpness": (_lin(0.99), True),
    "Posterize": (_posterize(2), False),
    "Solarize": _SOLARIZE,
    "AutoContrast": _NONE,
    "Equalize": _NONE,
}
RAND_SPACE: Space = {
    "Identity": _NONE,
    "ShearX": (_lin(0.3), True),
    "ShearY": (_lin(0.3), True),
    "TranslateX": (lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, n), True),
    "TranslateY": (lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, n), True),
    "Rotate": (_lin(30.0), True),
    "Brightness": (_lin(0.9), True),
    "Color": (_lin(0.9), True),
    "Contrast": (_lin(0.9), True),
    "Sharpness": (_lin(0.9), True),
    "Posterize": (_posterize(4), False),
    "Solarize": _SOLARIZE,
    "AutoContrast": _NONE,
    "Equalize": _NONE,
}
AUTO_SPACE: Space = {k: v for k, v in RAND_SPACE.items() if k != "Identity"} | {"Invert": _NONE}

SPACES = {"trivial_wide": TRIVIAL_WIDE_SPACE, "rand": RAND_SPACE, "auto": AUTO_SPACE}

AUTO_POLICIES: dict[str, tuple] = {  # (op, probability, magnitude bin of 10) x 2 per sub-policy
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)), (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)), (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)), (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)), (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)), (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}


@functools.lru_cache(maxsize=64)
def _bins(space_name: str, num_bins: int, h: int, w: int) -> tuple[list[str], torch.Tensor,
                                                                    torch.Tensor]:
    """Names, (ops, bins) float64 magnitudes (0 where none) and (ops,) signed flags; cached
    per image size (the tables are read, never written)."""
    space = SPACES[space_name]
    names = list(space)
    table = torch.zeros(len(names), num_bins, dtype=torch.float64)
    signed = torch.zeros(len(names), dtype=torch.bool)
    for i, name in enumerate(names):
        fn, sign = space[name]
        values = fn(num_bins, h, w)
        if values is not None:
            table[i] = values.to(torch.float64)  # the float32 bin values, as torchvision reads
        signed[i] = sign
    return names, table, signed


def _signs(op: torch.Tensor, signed: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """-1 for a signed operation with probability 1/2 (torchvision: ``rand() <= 0.5``), else 1."""
    flip = signed[op.clamp(min=0)] & (torch.rand(len(op), generator=g) <= 0.5)
    return 1.0 - 2.0 * flip.to(torch.float64)


class TrivialAugmentWide(nn.Module):
    """One of 14 operations per image, at one of 31 magnitude bins, uniformly.

    Example:
        >>> TrivialAugmentWide()
        TrivialAugmentWide()
    """

    def __init__(self, num_magnitude_bins: int = 31) -> None:
        super().__init__()
        self.num_magnitude_bins = int(num_magnitude_bins)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment (n, C, H, W) uint8 or [0, 1] float images, each on its own draw."""
        n, (h, w) = len(x), x.shape[-2:]
        names, table, signed = _bins("trivial_wide", self.num_magnitude_bins, h, w)
        op = torch.randint(len(names), (n,), generator=generator)
        level = torch.randint(self.num_magnitude_bins, (n,), generator=generator)
        m = table[op, level] * _signs(op, signed, generator)
        return apply_grouped(x, names, op, m)

    def extra_repr(self) -> str:
        bins = self.num_magnitude_bins
        return "" if bins == 31 else f"num_magnitude_bins={bins}"


class RandAugment(nn.Module):
    """``num_ops`` operations per image, each uniform of 14, at magnitude bin ``magnitude``.

    Example:
        >>> RandAugment(2, 9)
        RandAugment(num_ops=2, magnitude=9)
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31) -> None:
        super().__init__()
        if num_ops < 0 or not 0 <= magnitude < num_magnitude_bins:
            top = num_magnitude_bins - 1
            raise ValueError(f"augment: ra=N:M needs N >= 0 and a magnitude M in 0..{top}, "
                             f"got ra={num_ops}:{magnitude}")
        self.num_ops, self.magnitude = int(num_ops), int(magnitude)
        self.num_magnitude_bins = int(num_magnitude_bins)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment (n, C, H, W) uint8 or [0, 1] float images, each on its own draws."""
        n, (h, w) = len(x), x.shape[-2:]
        names, table, signed = _bins("rand", self.num_magnitude_bins, h, w)
        for _ in range(self.num_ops):
            op = torch.randint(len(names), (n,), generator=generator)
            m = table[op, self.magnitude] * _signs(op, signed, generator)
            x = apply_grouped(x, names, op, m)
        return x

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}"


class AutoAugment(nn.Module):
    """One of 25 learned sub-policies per image; each of its two steps on its own coin.

    Args:
        policy: ``imagenet``, ``cifar10`` or ``svhn``.

    Example:
        >>> AutoAugment("cifar10")
        AutoAugment(policy=cifar10)
    """

    def __init__(self, policy: str = "imagenet") -> None:
        super().__init__()
        if policy not in AUTO_POLICIES:
            raise ValueError(f"augment: aa={policy!r} is not an AutoAugment policy; use one of "
                             f"{', '.join(AUTO_POLICIES)}")
        self.policy = policy
        subs = AUTO_POLICIES[policy]
        names = list(AUTO_SPACE)
        # per step (2) and sub-policy (25): operation index, probability, magnitude bin
        self._ops = [torch.tensor([names.index(s[i][0]) for s in subs]) for i in (0, 1)]
        self._prob = [torch.tensor([s[i][1] for s in subs], dtype=torch.float64) for i in (0, 1)]
        self._level = [torch.tensor([s[i][2] or 0 for s in subs]) for i in (0, 1)]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment (n, C, H, W) uint8 or [0, 1] float images, each on its own draws."""
        n, (h, w) = len(x), x.shape[-2:]
        names, table, signed = _bins("auto", 10, h, w)
        sub = torch.randint(len(AUTO_POLICIES[self.policy]), (n,), generator=generator)
        for step in (0, 1):
            ops, prob, level = self._ops[step], self._prob[step], self._level[step]
            on = torch.rand(n, generator=generator, dtype=torch.float64) <= prob[sub]
            op = torch.where(on, ops[sub], -1)  # -1: this image skips the step
            m = table[ops[sub], level[sub]] * _signs(op, signed, generator)
            x = apply_grouped(x, names, op, m)
        return x

    def extra_repr(self) -> str:
        return f"policy={self.policy}"


class RandomErasing(nn.Module):
    """Erase one random rectangle per image with probability ``p`` (v2.RandomErasing, batched).

    Each image draws, as torchvision's, up to 10 candidate rectangles of area ``scale`` of the
    image and aspect ratio log-uniform in ``ratio``, keeps the first that fits and fills it
    with 0; an image with no candidate that fits is left as it is.

    Example:
        >>> x = torch.ones(4, 1, 8, 8)
        >>> bool((RandomErasing(1.0)(x, torch.Generator().manual_seed(0)) == 0).any())
        True
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.33),
                 ratio: tuple[float, float] = (0.3, 3.3)) -> None:
        super().__init__()
        self.p, self.scale, self.ratio = float(p), scale, ratio

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Erase (n, C, H, W) images; returns a new batch."""
        n, (h, w) = len(x), x.shape[-2:]
        g = generator
        apply = torch.rand(n, generator=g) < self.p
        lo, hi = self.scale
        area = h * w * (lo + (hi - lo) * torch.rand(n, 10, generator=g, dtype=torch.float64))
        log_lo, log_hi = torch.log(torch.tensor(self.ratio, dtype=torch.float64))
        aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, 10, generator=g,
                                                                     dtype=torch.float64))
        eh = torch.sqrt(area * aspect).round().long()  # (n, 10) candidate heights
        ew = torch.sqrt(area / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.long().argmax(1, keepdim=True)  # the first candidate that fits
        apply &= fits.any(1)
        eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)  # (n,)
        top = (torch.rand(n, generator=g, dtype=torch.float64) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=g, dtype=torch.float64) * (w - ew + 1)).long()
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        box = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
               & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
        box &= apply.view(-1, 1, 1)  # (n, H, W)
        return x.masked_fill(box.unsqueeze(1).to(x.device), 0)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
