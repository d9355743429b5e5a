"""Normalization layers by name, and per-channel image normalization with its inverse.

``norm_layer("batch" | "layer" | "instance" | "group" | "none", channels)`` builds the layer a
block asks for by name. What each one averages over, for an input of shape ``(N, C, H, W)``:

- batch: over ``(N, H, W)`` per channel, running statistics for evaluation (Ioffe & Szegedy 2015);
- layer: over ``(C, H, W)`` per sample (Ba et al. 2016) — built as ``GroupNorm(1, C)``, which is
  exactly that, with a per-channel scale and shift, and works for any ``H, W``;
- instance: over ``(H, W)`` per sample and channel (Ulyanov et al. 2016);
- group: over ``(C/G, H, W)`` per sample and group of channels (Wu & He 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab._validate import check_choice, check_divisible, check_input, check_int

_ALIASES = {
    "batch": "batch", "bn": "batch", "batchnorm": "batch",
    "layer": "layer", "ln": "layer", "layernorm": "layer",
    "instance": "instance", "in": "instance", "instancenorm": "instance",
    "group": "group", "gn": "group", "groupnorm": "group",
    "none": "none", "identity": "none",
}
NORM_NAMES = ("batch", "layer", "instance", "group", "none")


def _default_groups(channels: int, at_most: int = 32) -> int:
    """The largest divisor of ``channels`` that is at most ``at_most`` (32, as in Wu & He)."""
    return max(g for g in range(1, min(channels, at_most) + 1) if channels % g == 0)


class _CheckedNorm:
    """Checks the input's rank and channel count before torch's normalization runs.

    Mixed into torch's classes, so type names, parameters and state dicts stay torch's.
    """

    _ranks: tuple[int, ...]  # accepted input ranks
    _layout: str

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = getattr(self, "num_features", None) or self.num_channels
        if not isinstance(x, torch.Tensor) or x.ndim not in self._ranks:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"input must have shape {self._layout} for {type(self).__name__}, "
                             f"got {got}")
        check_input(x, ndim=x.ndim, channels=channels, layout=self._layout)
        return super().forward(x)  # same shape as x


class BatchNorm1d(_CheckedNorm, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` with input checks.

    Example:
        >>> BatchNorm1d(8)(torch.zeros(2, 8)).shape
        torch.Size([2, 8])
    """

    _ranks, _layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_CheckedNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with input checks; same parameters and state dict as torch's.

    Example:
        >>> BatchNorm2d(8)(torch.zeros(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    _ranks, _layout = (4,), "(N, C, H, W)"


class BatchNorm3d(_CheckedNorm, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` with input checks."""

    _ranks, _layout = (5,), "(N, C, D, H, W)"


class InstanceNorm1d(_CheckedNorm, nn.InstanceNorm1d):
    """``nn.InstanceNorm1d`` with input checks."""

    _ranks, _layout = (3,), "(N, C, L)"


class InstanceNorm2d(_CheckedNorm, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` with input checks."""

    _ranks, _layout = (4,), "(N, C, H, W)"


class InstanceNorm3d(_CheckedNorm, nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` with input checks."""

    _ranks, _layout = (5,), "(N, C, D, H, W)"


class GroupNorm(_CheckedNorm, nn.GroupNorm):
    """``nn.GroupNorm`` with input checks; ``GroupNorm(1, C)`` is layer norm over (C, H, W).

    Example:
        >>> GroupNorm(2, 8)(torch.rand(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    _ranks, _layout = (2, 3, 4, 5), "(N, C, *)"


def norm_layer(
    name: str | None,
    channels: int,
    groups: int | None = None,
    *,
    eps: float = 1e-5,
    affine: bool = True,
    dims: int = 2,
) -> nn.Module:
    """Build a normalization layer by name for ``channels`` feature maps.

    Args:
        name: ``"batch"``, ``"layer"`` (over C, H, W), ``"instance"``, ``"group"`` or
            ``"none"``/``None`` (identity); short forms ``bn``, ``ln``, ``in``, ``gn`` work too.
        channels: number of channels ``C`` of the input.
        groups: groups for ``"group"``; default: the largest divisor of ``C`` up to 32.
        eps: added to the variance for numerical stability.
        affine: learn a per-channel scale and shift.
        dims: spatial dimensions (1, 2 or 3) for batch and instance norm.

    Example:
        >>> layer = norm_layer("group", 64, groups=8)
        >>> type(layer).__name__, layer.num_groups
        ('GroupNorm', 8)
    """
    key = "none" if name is None else name
    if not isinstance(key, str) or key.lower() not in _ALIASES:
        check_choice("name", name, (*NORM_NAMES, None))
    kind = _ALIASES[key.lower()]
    check_int("channels", channels, min_value=1)
    check_choice("dims", dims, (1, 2, 3))
    if not isinstance(eps, int | float) or eps <= 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if kind == "batch":
        return (BatchNorm1d, BatchNorm2d, BatchNorm3d)[dims - 1](
            channels, eps=eps, affine=affine)
    if kind == "instance":
        return (InstanceNorm1d, InstanceNorm2d, InstanceNorm3d)[dims - 1](
            channels, eps=eps, affine=affine)
    if kind == "layer":
        return GroupNorm(1, channels, eps=eps, affine=affine)
    if kind == "group":
        groups = _default_groups(channels) if groups is None else groups
        check_int("groups", groups, min_value=1)
        check_divisible("channels", channels, "groups", groups)
        return GroupNorm(groups, channels, eps=eps, affine=affine)
    return nn.Identity()


def norm_factory(
    name: str | None, groups: int | None = None, *, eps: float = 1e-5, affine: bool = True,
    dims: int = 2,
) -> Callable[[int], nn.Module]:
    """A ``channels -> layer`` callable for blocks that take a ``norm_layer`` factory.

    The name is checked now, the channel count when the block builds its layers.

    Example:
        >>> make = norm_factory("group", groups=4)
        >>> make(16).num_groups
        4
    """
    norm_layer(name, 4 if groups is None else groups, groups, eps=eps, affine=affine, dims=dims)

    def make(channels: int) -> nn.Module:
        return norm_layer(name, channels, groups, eps=eps, affine=affine, dims=dims)

    make.__name__ = f"norm_factory({name!r})"
    return make


def _channel_stats(name: str, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if t.numel() == 0 or not torch.isfinite(t).all():
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}")
    return t


class Normalize(nn.Module):
    """Per-channel image normalization ``(x - mean) / std``, with :meth:`inverse` for display.

    Works on ``(C, H, W)`` and ``(N, C, H, W)`` tensors of any floating dtype.

    Example:
        >>> norm = Normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
        >>> norm.inverse()(norm(torch.ones(3, 2, 2))).mean().item()
        1.0
    """

    def __init__(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor):
        super().__init__()
        mean_t, std_t = _channel_stats("mean", mean), _channel_stats("std", std)
        if mean_t.numel() != std_t.numel():
            raise ValueError(f"mean and std must have one value per channel; got {mean_t.numel()}"
                             f" means and {std_t.numel()} stds")
        if (std_t <= 0).any():
            raise ValueError(f"std must be > 0 for every channel, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.view(-1, 1, 1))  # (C, 1, 1)
        self.register_buffer("std", std_t.view(-1, 1, 1))  # (C, 1, 1)

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"input must be a (C, H, W) or (N, C, H, W) tensor, got {got}")
        if x.shape[-3] != self.channels:
            raise ValueError(f"input has {x.shape[-3]} channels (shape {tuple(x.shape)}) but "
                             f"mean/std have {self.channels}; valid: {self.channels} channels")
        if not x.is_floating_point():
            raise ValueError(f"input must be a floating-point tensor (convert uint8 images with "
                             f".float() / 255), got dtype {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # same shape as x

    def inverse(self) -> Denormalize:
        """The layer that undoes this one: ``x * std + mean``."""
        return Denormalize(self.mean.flatten(), self.std.flatten())

    def extra_repr(self) -> str:
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        return f"mean={mean}, std={std}"


class Denormalize(Normalize):
    """The inverse of :class:`Normalize`: ``x * std + mean``, e.g. to display a normalized image.

    Example:
        >>> Denormalize([0.5], [0.5])(torch.zeros(1, 2, 2)).unique().item()
        0.5
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return x * self.std.to(x.dtype) + self.mean.to(x.dtype)  # same shape as x

    def inverse(self) -> Normalize:  # type: ignore[override]
        """The layer that undoes this one: ``(x - mean) / std``."""
        return Normalize(self.mean.flatten(), self.std.flatten())


__all__ = [
    "NORM_NAMES", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Denormalize", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "Normalize", "norm_factory",
    "norm_layer",
]
