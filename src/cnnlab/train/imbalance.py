"""Imbalanced classes: loss weights by inverse class frequency, and a class-balanced epoch order.

- ``--class-weights auto``: scikit-learn's ``compute_class_weight("balanced")``,
  ``w_k = n / (K * n_k)`` (n images, K classes, n_k images of class k), given to the
  cross-entropy so every class carries the same total weight in the loss.
- ``--sampler balanced``: each epoch has as many images as the training split, drawn so that
  every class appears equally often (``n / K`` times, the remainder spread over randomly chosen
  classes). A class is read in the order of a fresh random permutation of its images, repeated
  as often as needed: a minority class is oversampled by cycling through all its images (never
  one image twice before every image once), a majority class is undersampled without
  repetition. torch's ``WeightedRandomSampler`` draws the same class proportions with
  replacement; we use our own because its counts per epoch are random and it cannot draw from
  the training loop's generator, which is saved in ``train_state.pt`` so that a resumed run
  samples exactly as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Balanced loss weights ``n / (K * n_k)`` (float32, (K,)); a class absent from ``labels``: 0.

    Example:
        >>> class_weights(torch.tensor([0, 0, 0, 1]), 2).tolist()
        [0.6666666865348816, 2.0]
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = labels.cpu().numpy()
    present = np.unique(y)
    out = torch.zeros(num_classes, dtype=torch.float32)
    if len(present):
        # sklearn uses the K classes present: w = n / (K_present * n_k).
        w = compute_class_weight("balanced", classes=present, y=y)
        out[torch.as_tensor(present, dtype=torch.int64)] = torch.as_tensor(w, dtype=torch.float32)
    return out


class BalancedSampler:
    """One epoch's indices into the training split, every class equally often.

    Args:
        labels: (N,) int64 class of each training image.
        num_classes: K (classes without images are skipped).

    Example:
        >>> s = BalancedSampler(torch.tensor([0, 0, 0, 0, 0, 1]), 2)
        >>> order = s.epoch_order(torch.Generator().manual_seed(0))
        >>> torch.bincount(torch.tensor([0, 0, 0, 0, 0, 1])[order]).tolist()
        [3, 3]
    """

    def __init__(self, labels: torch.Tensor, num_classes: int) -> None:
        labels = labels.cpu()
        self.n = len(labels)
        self.members = [
            torch.nonzero(labels == k).flatten() for k in range(num_classes)
        ]
        self.members = [m for m in self.members if len(m)]
        if not self.members:
            raise ValueError("sampler 'balanced' needs training images; the split is empty")

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """(N,) int64 indices: ``N // K`` per class plus one for ``N % K`` random classes."""
        k = len(self.members)
        base, extra = divmod(self.n, k)
        counts = torch.full((k,), base, dtype=torch.int64)
        counts[torch.randperm(k, generator=generator)[:extra]] += 1
        parts = []
        for members, count in zip(self.members, counts.tolist()):
            reps = -(-count // len(members))  # ceil: whole permutations, then cut
            perms = [members[torch.randperm(len(members), generator=generator)]
                     for _ in range(reps)]
            parts.append(torch.cat(perms)[:count])
        order = torch.cat(parts)
        return order[torch.randperm(len(order), generator=generator)]

    def batches(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """The epoch's batches, dropping a last batch of a single image (as shuffling does)."""
        out = list(self.epoch_order(generator).split(batch_size))
        if len(out) > 1 and len(out[-1]) == 1:
            out.pop()
        return out
