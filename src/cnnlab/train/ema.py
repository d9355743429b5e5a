"""An exponential moving average of the weights (``--ema DECAY``), validated beside the raw model.

``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn(decay)`` keeps the copy:
after every optimizer step ``w_ema <- decay * w_ema + (1 - decay) * w`` (the first update copies
the weights). ``use_buffers=True`` averages the batch-norm running mean/variance the same way,
so the EMA model carries statistics that belong to its own weights and needs no extra pass over
the data (``update_bn``) before it is evaluated; integer buffers (``num_batches_tracked``) are
not meaningful averages and are not used by cnnlab's models in eval mode.

The run saves the EMA weights at its best epoch as ``ema.safetensors`` (an ordinary cnnlab
checkpoint with ``"weights": "ema"`` in its metadata), and ``best.json`` names the better of
``best.safetensors`` (raw) and ``ema.safetensors`` on the monitored metric; ``best`` resolves
through it for ``evaluate``, ``predict`` and ``export`` (see ``cnnlab.checkpoint``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

EMA_CHECKPOINT = "ema.safetensors"


class WeightEMA:
    """The EMA of ``model``'s parameters and buffers; call :meth:`update` after each step.

    Args:
        model: the raw (not compiled, not DDP-wrapped) model being trained.
        decay: weight of the old average per step, in (0, 1); timm's default is 0.9998 for
            ImageNet-length runs, 0.99-0.999 suits a few thousand steps.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> ema = WeightEMA(net, 0.9)
        >>> ema.update()  # after optimizer.step()
        >>> ema.module.weight.shape
        torch.Size([1, 2])
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay!r}")
        self.source = model
        self.decay = float(decay)
        self.averaged = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
        )
        self.averaged.eval()

    @property
    def module(self) -> nn.Module:
        """The averaged model (same class and state-dict keys as the trained one)."""
        return self.averaged.module

    def update(self) -> None:
        """Fold the source model's current weights into the average."""
        self.averaged.update_parameters(self.source)

    def state_dict(self) -> dict[str, Any]:
        """What ``train_state.pt`` stores to resume the average exactly."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.averaged.load_state_dict(state)
