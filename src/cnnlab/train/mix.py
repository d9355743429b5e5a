"""Mixup and CutMix on a training batch, with soft targets (``--mixup``, ``--cutmix``).

The mixing itself is torchvision's ``transforms.v2.MixUp`` / ``v2.CutMix`` (Zhang et al. 2018;
Yun et al. 2019): one ``lam ~ Beta(alpha, alpha)`` per batch, image i mixed with image i-1 of
the (shuffled) batch, targets ``lam * onehot(y_i) + (1 - lam) * onehot(y_{i-1})``; CutMix
pastes a box and sets ``lam`` to the share of the image left unpasted. As in timm, a batch is
mixed with probability ``mix_prob``, and when both are on one of the two is chosen 50/50.

torchvision draws its random numbers from torch's global generator; :class:`BatchMixer` draws
one seed per batch from the training loop's generator and runs the transform under that seed
(``torch.random.fork_rng``), so a seed gives the same mixing on every run, and a resumed run
mixes exactly as an uninterrupted one.

The soft targets go to ``nn.CrossEntropyLoss``, which takes class probabilities and applies
``label_smoothing`` on top of them (``t * (1 - eps) + eps / K``). Training accuracy under
mixing is counted against each image's dominant label (the class of largest target weight,
``lam >= 0.5`` for the image's own label), so it stays comparable across epochs, though it is
not the accuracy on unmixed images.
"""

from __future__ import annotations

import torch


class BatchMixer:
    """Mix a batch (x, y) -> (x_mixed, soft targets (B, K)), or pass it through unmixed.

    Args:
        num_classes: K.
        mixup: Beta concentration of mixup (0: off).
        cutmix: Beta concentration of CutMix (0: off).
        prob: probability that a batch is mixed at all.

    Example:
        >>> mixer = BatchMixer(3, mixup=1.0)
        >>> x, t = mixer(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]),
        ...              torch.Generator().manual_seed(0))
        >>> t.shape, bool(torch.allclose(t.sum(1), torch.ones(4)))
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self, num_classes: int, *, mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0
    ) -> None:
        from torchvision.transforms import v2

        if mixup <= 0 and cutmix <= 0:
            raise ValueError("BatchMixer needs mixup > 0 or cutmix > 0")
        self.num_classes = int(num_classes)
        self.prob = float(prob)
        self.transforms = []
        if mixup > 0:
            self.transforms.append(v2.MixUp(alpha=float(mixup), num_classes=self.num_classes))
        if cutmix > 0:
            self.transforms.append(v2.CutMix(alpha=float(cutmix), num_classes=self.num_classes))

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix float images (B, C, H, W) with labels (B,).

        Returns the images and soft targets (B, K) summing to 1 per row, or ``(x, y)`` unchanged
        for a batch left unmixed (a ``prob`` draw, or a single image).
        """
        mix = bool(torch.rand((), generator=generator) < self.prob)
        pick = int(torch.randint(len(self.transforms), (), generator=generator))
        seed = int(torch.randint(2**62, (), generator=generator))
        if not mix or len(x) < 2:
            return x, y  # the loss takes class indices as they are
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x, soft = self.transforms[pick](x, y)
        return x, soft

    def describe(self) -> str:
        """One line for the training log."""
        names = ", ".join(f"{type(t).__name__}(alpha={t.alpha:g})" for t in self.transforms)
        return f"{names} on {self.prob:.0%} of the batches"


def dominant_label(targets: torch.Tensor) -> torch.Tensor:
    """The class each row of ``targets`` weighs most: (B, K) soft targets -> (B,); (B,) as is.

    Example:
        >>> dominant_label(torch.tensor([[0.3, 0.7], [0.6, 0.4]])).tolist()
        [1, 0]
    """
    return targets.argmax(1) if targets.ndim == 2 else targets
