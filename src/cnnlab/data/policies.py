"""Augmentation policies with per-image random parameters: RandAugment, TrivialAugmentWide,
AutoAugment, random erasing with a probability, vertical flip (``--augment ...,ra,erase=0.25``).

The policies are torchvision's (Cubuk et al. 2019 RandAugment, Müller & Hutter 2021
TrivialAugment, Cubuk et al. 2018 AutoAugment, Zhong et al. 2017 random erasing): the same
operations, magnitude bins, signs, learned sub-policies and erasing boxes. Called on a batch,
torchvision's transforms draw ONE operation and magnitude for the whole batch; the papers and
timm draw them per image. So the policies here (:mod:`cnnlab.data.auto_augment`) draw per image
and run batched: the batch is grouped by the operation each image drew, and each operation runs
once on its sub-batch with a per-image magnitude tensor (:mod:`cnnlab.data.policy_ops`: colour
operations as tensor maths broadcast over (n, 1, 1, 1), rotate/shear/translate as one grid of
per-image affine matrices and one ``grid_sample``). They work on uint8 (the policies' native
type) or [0, 1] floats, on the batch's device.

Measured (``benchmarks/policies.py``: a batch of 128 uint8 3x32x32 images, 2 AMD EPYC Zen 4
cores, torch 2.14.1; torchvision's transform called per image / these batched policies):
RandAugment N=2, M=9 42.3 / 7.9 ms, TrivialAugmentWide 22.1 / 3.7 ms, AutoAugment CIFAR-10
25.4 / 6.3 ms, random erasing 6.2 / 1.2 ms (4-6x), against ~50-80 ms for simple_cnn's training
step on that batch. kornia's ``augmentation.auto`` was measured too (TrivialAugment 57 ms,
RandAugment 9 ms, AutoAugment 8 ms per batch), but its operations and magnitude ranges are not
torchvision's, and its AutoAugment applies one sub-policy to the whole batch (3 distinct results
among 128 copies of one image), so it is not used.

Randomness: every draw comes from the caller's generator (the training loop's), so a seed
reproduces the augmentation and a resumed run continues it exactly; torch's global generator
is left alone.

Vertical flip is one batched ``torch.where`` with a per-image coin, like the horizontal flip of
:class:`cnnlab.data.Augment`.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data.auto_augment import AutoAugment, RandAugment, RandomErasing, TrivialAugmentWide

# Spec items handled here; the rest of a spec goes to cnnlab.data.Augment (presets.py).
POLICY_KEYS = ("ra", "ta", "aa", "erase", "vflip")
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")


class PolicyAugment(nn.Module):
    """``base`` augmentation, then a per-image policy, random erasing and vertical flip.

    Args:
        base: the crop/flip/colour :class:`cnnlab.data.Augment` applied first (or None).
        policy: a batched per-image policy of :mod:`cnnlab.data.auto_augment` (or None).
        erase: probability that an image gets one random rectangle erased (torchvision's
            RandomErasing drawn per image: area 2-33%, filled with 0).
        vflip: flip each image upside down with probability 1/2.

    Example:
        >>> from cnnlab.data.auto_augment import TrivialAugmentWide
        >>> aug = PolicyAugment(policy=TrivialAugmentWide())
        >>> aug(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.Generator()).shape
        torch.Size([4, 3, 8, 8])
    """

    def __init__(
        self,
        base: nn.Module | None = None,
        policy: nn.Module | None = None,
        erase: float = 0.0,
        vflip: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= erase <= 1.0:
            raise ValueError(f"augment: erase must be a probability in [0, 1], got {erase}")
        self.base = base
        self.policy = policy
        self.erase = float(erase)
        self.vflip = bool(vflip)
        self.eraser = RandomErasing(p=self.erase) if self.erase else None

    @property
    def is_identity(self) -> bool:
        """True when nothing is enabled."""
        base_identity = self.base is None or getattr(self.base, "is_identity", False)
        return base_identity and self.policy is None and not self.erase and not self.vflip

    @property
    def uint8_ok(self) -> bool:
        """The policies run on uint8 (their native type); the base decides for the batch."""
        return self.base is None or bool(getattr(self.base, "uint8_ok", True))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch (B, C, H, W), uint8 or float in [0, 1]; identity in ``eval()``."""
        if x.ndim != 4:
            raise ValueError(f"augment expects images of shape (B, C, H, W), got {tuple(x.shape)}")
        if not self.training or len(x) == 0:
            return x
        if self.base is not None:
            x = self.base(x, generator)
        for t in (self.policy, self.eraser):
            if t is not None:
                x = t(x, generator)  # every image on its own draws, the batch at once
        if self.vflip:
            flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(2), x)
        return x

    def __repr__(self) -> str:  # one line, for the training log
        parts = [] if self.base is None else [f"base={self.base!r}"]
        if self.policy is not None:
            parts.append(f"policy={type(self.policy).__name__}({_policy_args(self.policy)})")
        if self.erase:
            parts.append(f"erase={self.erase:g}")
        if self.vflip:
            parts.append("vflip=True")
        return f"PolicyAugment({', '.join(parts)})"


def _policy_args(policy: nn.Module) -> str:
    return policy.extra_repr()


def has_policy_items(spec: str) -> bool:
    """Whether a spec string names a policy item (``ra``, ``ta``, ``aa``, ``erase``, ``vflip``).

    Example:
        >>> has_policy_items("crop-flip,ta"), has_policy_items("crop=4,flip")
        (True, False)
    """
    return any(item.strip().partition("=")[0] in POLICY_KEYS for item in spec.split(","))


def build_policy(spec: str, base: nn.Module | None) -> PolicyAugment:
    """Build the policy part of a spec; ``base`` is the Augment built from the other items.

    Items: ``ra`` or ``ra=N:M`` (RandAugment, N operations of magnitude M of 31 bins; default
    2:9), ``ta`` (TrivialAugmentWide), ``aa`` or ``aa=imagenet|cifar10|svhn`` (AutoAugment's
    learned policies; default imagenet), ``erase=P`` (random erasing with probability P; default
    0.25), ``vflip``.

    Example:
        >>> build_policy("ra=2:9,erase=0.5", None)
        PolicyAugment(policy=RandAugment(num_ops=2, magnitude=9), erase=0.5)
    """
    policy, erase, vflip = None, 0.0, False
    for item in spec.split(","):
        key, _, value = item.strip().partition("=")
        if key not in POLICY_KEYS:
            continue
        if key in ("ra", "ta", "aa") and policy is not None:
            raise ValueError(f"augment: give one of ra, ta, aa, not several, in {spec!r}")
        try:
            if key == "ra":
                n, _, m = (value or "2:9").partition(":")
                policy = RandAugment(num_ops=int(n), magnitude=int(m or 9))
            elif key == "ta":
                policy = TrivialAugmentWide()
            elif key == "aa":
                name = value or "imagenet"
                if name not in AUTOAUGMENT_POLICIES:
                    raise ValueError(
                        f"augment: aa={name!r} is not an AutoAugment policy; use one of "
                        f"{', '.join(AUTOAUGMENT_POLICIES)}"
                    )
                policy = AutoAugment(name)
            elif key == "erase":
                erase = float(value or 0.25)
            else:
                vflip = True
        except ValueError as exc:
            if str(exc).startswith("augment:"):
                raise
            raise ValueError(
                f"augment: {key!r} got {value!r} in {spec!r}; expected ra=N:M (integers), "
                "erase=P (a probability), aa=imagenet|cifar10|svhn"
            ) from None
    return PolicyAugment(base, policy, erase, vflip)
