"""Training methods of the CIFAR-10 speed run that any ``cnnlab train`` run can use.

- :func:`whiten_stem` (``--whiten-init``): fit a model's patch-whitening stem to training images
  before the first step (Page 2018 "How to train your ResNet"; Jordan 2024, airbench,
  arXiv 2404.00498). The model provides ``init_whitening(images)``
  (:class:`cnnlab.models.speednet.SpeedNet` does); the data comes from the run's own training
  split, normalized as training normalizes it.
- :class:`AlternatingFlip` (``--flip alternating``): derandomized horizontal flips (airbench).
- :class:`Lookahead` (``--lookahead K,ALPHA``): slow/fast weights (Zhang et al. 2019; airbench).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

WHITEN_IMAGES = 5000  # airbench fits its whitening on 5,000 training images


def whiten_stem(
    model: nn.Module, images: torch.Tensor, normalizer: Any, seed: int = 0,
    n: int = WHITEN_IMAGES,
) -> str:
    """Fit ``model.init_whitening`` on ``n`` training images drawn with ``seed``; a log line.

    Args:
        model: a model with an ``init_whitening(float_images)`` method.
        images: the training split's uint8 images (N, C, H, W).
        normalizer: the run's :class:`cnnlab.data.Normalizer` (device, mean/std, layout).
        seed: picks the images (its own generator: the run's shuffling stream is untouched).
        n: at most this many images.

    Raises:
        ValueError: the model has no whitening stem.

    Example:
        >>> from cnnlab.data import Normalizer
        >>> from cnnlab.models import create
        >>> norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
        >>> whiten_stem(create("speednet"), torch.zeros(8, 3, 16, 16, dtype=torch.uint8), norm)
        'whitening stem fitted to 2x2 patches of 8 training images'
    """
    init = getattr(model, "init_whitening", None)
    if not callable(init):
        raise ValueError(
            f"whiten_init needs a model with a patch-whitening stem (e.g. --model speednet); "
            f"{type(model).__name__} has none"
        )
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(images), generator=g)[:n].sort().values
    with torch.no_grad():
        x = normalizer(images[pick])  # (n, C, H, W) float, normalized
        init(x.contiguous())
    return f"whitening stem fitted to 2x2 patches of {len(pick)} training images"



class AlternatingFlip:
    """Derandomized horizontal flips (``--flip alternating``; Jordan 2024, airbench §3.6).

    Epoch 1 sees a seeded random half of the training images mirrored; every later epoch
    mirrors each image relative to the epoch before, so over any two consecutive epochs every
    image is seen once as it is and once mirrored (random flips repeat a view with probability
    1/2). The flipped copies are built once (two uint8 tensors of the split's size), so an
    epoch costs nothing extra; the state follows from the epoch number, so resuming is exact.

    Args:
        images: the training split's uint8 images (N, C, H, W), in memory.
        seed: draws which images start mirrored.

    Example:
        >>> x = torch.arange(4.0).view(1, 1, 1, 4)
        >>> flips = AlternatingFlip(x, seed=0)
        >>> torch.equal(flips.images(1).flip(3), flips.images(2))
        True
    """

    def __init__(self, images: torch.Tensor, seed: int = 0) -> None:
        if getattr(images, "is_stored", False) or not isinstance(images, torch.Tensor):
            raise ValueError(
                "flip 'alternating' needs the training images in memory; use --cache ram "
                "(the disk store is read-only)"
            )
        g = torch.Generator().manual_seed(seed)
        self.start_flipped = torch.rand(len(images), generator=g) < 0.5  # (N,) bool
        mask = self.start_flipped.view(-1, 1, 1, 1).to(images.device)
        self._odd = torch.where(mask, images.flip(3), images)  # epochs 1, 3, 5, ...
        self._even: torch.Tensor | None = None  # epochs 2, 4, ...: built on first use

    def images(self, epoch: int) -> torch.Tensor:
        """The training images of ``epoch`` (1-based), each mirrored or not as the rule says."""
        if epoch % 2 == 1:
            return self._odd
        if self._even is None:
            self._even = self._odd.flip(3)
        return self._even


def alternating_flip(cfg: Any, images: torch.Tensor, augment: Any) -> AlternatingFlip | None:
    """The run's :class:`AlternatingFlip` for ``cfg.flip == "alternating"``, else None.

    Raises:
        ValueError: ``--augment`` flips at random as well (the two would undo each other).

    Example:
        >>> from cnnlab.train.config import TrainConfig
        >>> alternating_flip(TrainConfig(), torch.zeros(2, 3, 4, 4), None) is None
        True
    """
    if cfg.flip != "alternating":
        return None
    base = getattr(augment, "base", augment)  # PolicyAugment wraps the crop/flip Augment
    if getattr(base, "flip", False):
        raise ValueError(
            f"flip 'alternating' replaces the random flip of --augment {cfg.augment!r}; "
            "drop 'flip' from --augment (e.g. 'crop=2,reflect') or use --flip random"
        )
    return AlternatingFlip(images, cfg.seed)


def parse_lookahead(spec: str | None) -> tuple[int, float] | None:
    """``"K,ALPHA"`` -> ``(K, ALPHA)`` (None stays None); ValueError names what is valid.

    Example:
        >>> parse_lookahead("5,0.5")
        (5, 0.5)
    """
    if spec is None:
        return None
    k_text, _, alpha_text = str(spec).partition(",")
    try:
        k, alpha = int(k_text), float(alpha_text)
    except ValueError:
        k, alpha = 0, -1.0
    if k < 1 or not 0.0 < alpha <= 1.0:
        raise ValueError(
            f"lookahead must be 'K,ALPHA' with an integer K >= 1 and 0 < ALPHA <= 1 "
            f"(e.g. '5,0.5'), got {spec!r}"
        )
    return k, alpha


class Lookahead:
    """Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back").

    Every ``k`` optimizer steps the slow weights move ``alpha`` of the way to the fast ones,
    ``slow <- slow + alpha * (fast - slow)``, and the fast weights restart from them. It wraps
    no optimizer: :meth:`attach` registers a post-step hook (``Optimizer.
    register_step_post_hook``), so schedulers, gradient clipping and checkpoints see the
    optimizer they always see. torch has no Lookahead of its own (timm's wraps the optimizer
    class, which would hide it from ``LambdaLR``); airbench uses the same rule with ``k = 5``.

    Args:
        model: the trained model; its trainable parameters are followed.
        k: fast steps between synchronisations.
        alpha: slow-weight step size in (0, 1].

    Example:
        >>> net = nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> la = Lookahead(net, k=2, alpha=0.5).attach(opt)
    """

    def __init__(self, model: nn.Module, k: int, alpha: float) -> None:
        parse_lookahead(f"{k},{alpha}")  # validates
        self.k, self.alpha, self.steps = int(k), float(alpha), 0
        # Trainable parameters as they are now (frozen ones, e.g. a fitted whitening stem,
        # never change, so they are left alone; layers unfrozen later are not followed).
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.slow = [p.detach().clone() for p in self.params]

    def attach(self, optimizer: torch.optim.Optimizer) -> Lookahead:
        """Call :meth:`step` after every ``optimizer.step()``; returns self."""
        optimizer.register_step_post_hook(lambda *_: self.step())
        return self

    @torch.no_grad()
    def step(self) -> None:
        """Count a fast step; every ``k``-th one synchronises slow and fast weights."""
        self.steps += 1
        if self.steps % self.k:
            return
        for p, s in zip(self.params, self.slow):
            s.lerp_(p, self.alpha)
            p.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        """The step count and slow weights, for ``train_state.pt``."""
        return {"steps": self.steps, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.steps = int(state["steps"])
        for s, saved in zip(self.slow, state["slow"]):
            s.copy_(saved)
