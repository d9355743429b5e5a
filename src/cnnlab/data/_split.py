"""Deterministic stratified train/val/test splits."""

from __future__ import annotations

import torch


def check_fraction(name: str, value: float, *, allow_zero: bool) -> float:
    """Raise unless ``value`` is a fraction in (0, 1) (or [0, 1) when ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def stratified_split(
    labels: torch.Tensor, fractions: tuple[float, ...], seed: int
) -> list[torch.Tensor]:
    """Split sample indices class by class into parts of the given fractions, plus the rest.

    Each class's indices are shuffled with a generator seeded by ``seed`` (the same seed always
    gives the same split), then part ``i`` takes ``round(n_class * fractions[i])`` of them and
    the rest go to the last part (typically train). A class with few samples keeps at least one
    sample in the last part. Indices within each part are sorted.

    Args:
        labels: int64 class labels (N,).
        fractions: fraction of each class for each held-out part, e.g. ``(val, test)``.
        seed: random seed.

    Returns:
        ``len(fractions) + 1`` index tensors: the held-out parts in order, then the rest.

    Example:
        >>> val, train = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), (0.25,), 0)
        >>> len(val), len(train)
        (2, 6)
    """
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    if len(labels) == 0:
        return [torch.zeros(0, dtype=torch.int64) for _ in range(len(fractions) + 1)]
    # One stable sort groups the indices by class, each group in increasing index order.
    order = torch.argsort(labels, stable=True)
    for idx in torch.split(order, torch.bincount(labels).tolist()):
        if len(idx) == 0:
            continue
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for i, frac in enumerate(fractions):
            take = min(int(round(len(idx) * frac)), max(len(idx) - 1 - start, 0))
            parts[i].append(idx[start : start + take])
            start += take
        parts[-1].append(idx[start:])
    return [torch.sort(torch.cat(p))[0] if p else torch.zeros(0, dtype=torch.int64) for p in parts]
