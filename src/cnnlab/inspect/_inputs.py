"""What ``summary`` and ``trace`` accept as input: sizes, tensors, several inputs; meta copies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def _as_inputs(
    inputs: Any, device: torch.device, dtype: torch.dtype
) -> tuple[tuple, dict]:
    """Positional and keyword inputs from a size, several sizes, a tensor or tensors."""

    def is_size(v: Any) -> bool:
        return isinstance(v, (tuple, list, torch.Size)) and len(v) > 0 and all(
            isinstance(n, int) and not isinstance(n, bool) for n in v
        )

    def make(size: Sequence[int]) -> torch.Tensor:
        if any(n < 1 for n in size):
            raise ValueError(
                f"input_size must contain positive ints (batch, channels, *spatial), "
                f"got {tuple(size)}"
            )
        return torch.zeros(tuple(size), device=device, dtype=dtype)

    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if is_size(inputs):
        return (make(inputs),), {}
    if isinstance(inputs, Mapping) and all(
        is_size(v) or isinstance(v, torch.Tensor) for v in inputs.values()
    ):
        return (), {k: make(v) if is_size(v) else v for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)) and inputs:
        if all(is_size(v) or isinstance(v, torch.Tensor) for v in inputs):
            return tuple(make(v) if is_size(v) else v for v in inputs), {}
    raise ValueError(
        "input_size must be a shape including the batch dimension like (1, 3, 224, 224), a list "
        "of shapes (several inputs), a tensor, a tuple of tensors or a dict of them; "
        f"got {inputs!r}"
    )


def _module_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _has_lazy(model: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Shape-only copies of the parameters and buffers (tied tensors once: they stay tied)."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return {name: torch.empty_like(t, device="meta") for name, t in named}


def _to_meta(obj: Any) -> Any:
    """The same nesting of tuples/lists/dicts with every tensor replaced by a meta tensor."""
    if isinstance(obj, torch.Tensor):
        return torch.empty_like(obj, device="meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj
