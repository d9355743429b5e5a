"""Augmentation policies with per-image random parameters: RandAugment, TrivialAugmentWide,
AutoAugment, random erasing with a probability, vertical flip (``--augment ...,ra,erase=0.25``).

The operations are torchvision's own ``transforms.v2`` classes (Cubuk et al. 2019 RandAugment,
Müller & Hutter 2021 TrivialAugment, Cubuk et al. 2018 AutoAugment, Zhong et al. 2017 random
erasing). Called on a batch, each of them draws ONE operation and magnitude for the whole batch;
the papers and timm draw them per image. So :class:`PolicyAugment` calls the transform once per
image of the batch, on the batch's own device and dtype (uint8 works and is what the policies are
defined on). We chose this over writing batched versions of the 14 operations ourselves, and over
kornia's batched ``kornia.augmentation.auto`` (not a dependency of cnnlab), after measuring the
loop: on a batch of 128 uint8 32x32 RGB images on 2 AMD EPYC Zen 4 cores it costs 31 ms
(RandAugment N=2, M=9), 18 ms (TrivialAugmentWide), 21 ms (AutoAugment CIFAR-10) and 3 ms
(RandomErasing), i.e. 0.03-0.25 ms per image, against 52 ms for simple_cnn's training step
on the same batch; batch-level calls cost 0.05-1.7 ms but give every image the same operation.
``benchmarks/recipe.py`` reports the whole run's wall time with each policy on.

Randomness: torchvision draws from torch's global generator; each call draws one seed from the
caller's generator and runs the loop under it (``torch.random.fork_rng``), so a seed reproduces
the augmentation and a resumed run continues it exactly.

Vertical flip is one batched ``torch.where`` with a per-image coin, like the horizontal flip of
:class:`cnnlab.data.Augment`.
"""

from __future__ import annotations

import torch
from torch import nn

# Spec items handled here; the rest of a spec goes to cnnlab.data.Augment (presets.py).
POLICY_KEYS = ("ra", "ta", "aa", "erase", "vflip")
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")


class PolicyAugment(nn.Module):
    """``base`` augmentation, then a per-image policy, random erasing and vertical flip.

    Args:
        base: the crop/flip/colour :class:`cnnlab.data.Augment` applied first (or None).
        policy: a torchvision v2 transform applied to each image on its own (or None).
        erase: probability that an image gets one random rectangle erased (v2.RandomErasing,
            area 2-33%, filled with 0).
        vflip: flip each image upside down with probability 1/2.

    Example:
        >>> from torchvision.transforms import v2
        >>> aug = PolicyAugment(policy=v2.TrivialAugmentWide())
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
        from torchvision.transforms import v2

        super().__init__()
        if not 0.0 <= erase <= 1.0:
            raise ValueError(f"augment: erase must be a probability in [0, 1], got {erase}")
        self.base = base
        self.policy = policy
        self.erase = float(erase)
        self.vflip = bool(vflip)
        self.eraser = v2.RandomErasing(p=self.erase) if self.erase else None

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
        per_image = [t for t in (self.policy, self.eraser) if t is not None]
        if per_image:
            seed = int(torch.randint(2**62, (), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = []
                for image in x:  # (C, H, W): one operation and magnitude drawn per image
                    for t in per_image:
                        image = t(image)
                    out.append(image)
                x = torch.stack(out)
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
    if hasattr(policy, "num_ops"):
        return f"num_ops={policy.num_ops}, magnitude={policy.magnitude}"
    if hasattr(policy, "policy"):
        return f"policy={policy.policy.value}"
    return ""


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
    from torchvision.transforms import v2

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
                policy = v2.RandAugment(num_ops=int(n), magnitude=int(m or 9))
            elif key == "ta":
                policy = v2.TrivialAugmentWide()
            elif key == "aa":
                name = value or "imagenet"
                if name not in AUTOAUGMENT_POLICIES:
                    raise ValueError(
                        f"augment: aa={name!r} is not an AutoAugment policy; use one of "
                        f"{', '.join(AUTOAUGMENT_POLICIES)}"
                    )
                policy = v2.AutoAugment(v2.AutoAugmentPolicy(name))
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
    if policy is not None and hasattr(policy, "num_ops") and not 0 <= policy.magnitude < 31:
        raise ValueError(f"augment: ra magnitude must be in 0..30, got {policy.magnitude}")
    return PolicyAugment(base, policy, erase, vflip)
