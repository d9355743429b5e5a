"""Memory: bytes of tensors, parameters and activations, and their human-readable form.

Activation memory counts the bytes of every tensor an op *allocates* during the forward pass:
outputs of convolutions, activations, sums, concatenations... Views (``x.view``, ``flatten`` of a
contiguous tensor) and in-place ops (``relu(inplace=True)``, ``x += y``) allocate nothing and add
nothing. This is the memory a training step keeps for the backward pass, roughly (autograd may
keep fewer tensors when ops fuse, more when they save extra buffers).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's elements: ``numel * element_size``.

    Example:
        >>> tensor_bytes(torch.zeros(2, 3))
        24
    """
    return t.numel() * t.element_size()


def unique_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of distinct tensors (a tensor listed twice, e.g. a tied weight, counts once).

    Example:
        >>> w = torch.zeros(4)
        >>> unique_bytes([w, w])
        16
    """
    seen: dict[int, torch.Tensor] = {}
    for t in tensors:
        seen.setdefault(id(t), t)
    return sum(tensor_bytes(t) for t in seen.values())


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.50 KiB"`` (binary units, as ``nvidia-smi`` and torch report).

    Example:
        >>> human_bytes(3 * 2**20)
        '3.00 MiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
