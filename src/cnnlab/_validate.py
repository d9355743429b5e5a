"""Argument checks shared by every layer of the package.

Each check raises ``ValueError`` whose message names the argument, the value given and what
would be valid, so that a user's mistake never surfaces as a bare traceback from deep in torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch


def check_int(name: str, value: Any, *, min_value: int | None = None) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``min_value``.

    Example:
        >>> check_int("stride", 2, min_value=1)
        2
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    return value


def check_tuple(name: str, value: Any, n: int, *, min_value: int | None = None) -> tuple[int, ...]:
    """Expand an int to an ``n``-tuple (or check a sequence of length ``n``) of checked ints.

    Example:
        >>> check_tuple("kernel_size", 3, 2, min_value=1)
        (3, 3)
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints, got {tuple(value)!r} "
                f"(length {len(value)})"
            )
        return tuple(check_int(name, v, min_value=min_value) for v in value)
    return (check_int(name, value, min_value=min_value),) * n


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise unless ``value`` is one of ``choices``.

    Example:
        >>> check_choice("mode", "max", ("max", "avg"))
        'max'
    """
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def check_divisible(name: str, value: int, by_name: str, by: int) -> None:
    """Raise unless ``by`` divides ``value`` (e.g. ``groups`` must divide the channels).

    Example:
        >>> check_divisible("in_channels", 8, "groups", 4)
    """
    if value % by != 0:
        divisors = [d for d in range(1, value + 1) if value % d == 0]
        raise ValueError(
            f"{by_name}={by} must divide {name}={value}; valid {by_name} values are {divisors}"
        )


def check_input(
    x: Any,
    *,
    ndim: int,
    channels: int | None = None,
    name: str = "input",
    layout: str = "(N, C, H, W)",
) -> None:
    """Check a tensor's rank and channel count before a forward pass.

    Example:
        >>> check_input(torch.zeros(1, 3, 8, 8), ndim=4, channels=3)
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D tensor of shape {layout}, got shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} has {x.shape[1]} channels (shape {tuple(x.shape)}) but this layer expects "
            f"{channels} channels in dimension 1 of {layout}"
        )
