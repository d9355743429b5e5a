"""Feature maps of one input image at any named layer, the top-N channels by activation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.viz._common import get_layer, mosaic, to_display


def _batch(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"image must be a (C, H, W) or (1, C, H, W) tensor, got {shape}")
    x = image if image.ndim == 4 else image[None]
    if x.shape[0] != 1:
        raise ValueError(f"pass one image, got a batch of {x.shape[0]}")
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def feature_maps(model: torch.nn.Module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """Output of the sub-module ``layer`` for one image: a (C, H, W) tensor (eval mode, no grad).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))
        >>> feature_maps(net, torch.rand(1, 8, 8), "0").shape
        torch.Size([4, 6, 6])
    """
    module = get_layer(model, layer)
    x = _batch(image)
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: captured.append(o))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x.to(next(model.parameters(), x).device))
    finally:
        handle.remove()
        model.train(was_training)
    out = captured[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"layer {layer!r} outputs {shape}, not a (1, C, H, W) feature map; pick a conv/pool/"
            "activation layer"
        )
    return out[0].detach().cpu()


def top_channels(maps: torch.Tensor, n: int) -> list[int]:
    """Indices of the ``n`` channels with the largest mean activation, strongest first."""
    return maps.flatten(1).mean(1).argsort(descending=True)[:n].tolist()


def plot_feature_maps(
    model: torch.nn.Module,
    image: torch.Tensor,
    layer: str,
    top_n: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """The input image, then the ``top_n`` most active channels of ``layer`` (own scale each).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
        >>> fig = plot_feature_maps(net, torch.rand(1, 8, 8), "1", top_n=4)
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    maps = feature_maps(model, image, layer)
    channels = top_channels(maps, top_n)
    shown = to_display(_batch(image)[0], mean, std)
    if shown.ndim == 2:  # gray as RGB, so the channel colour map does not tint the input
        shown = np.repeat(shown[..., None], 3, axis=2)
    cells, titles = [shown], ["input"]
    for c in channels:
        m = maps[c]
        lo, hi = float(m.min()), float(m.max())
        cells.append(((m - lo) / (hi - lo if hi > lo else 1.0)).numpy())  # own scale per channel
        titles.append(f"ch {c}\n[{lo:.2g}, {hi:.2g}]")
    c, h, w = maps.shape
    return mosaic(
        cells,
        titles,
        cell=1.5,
        cmap="viridis",
        suptitle=f"layer {layer!r}: {c} channels of {h}x{w}, top {len(channels)} by mean",
    )
