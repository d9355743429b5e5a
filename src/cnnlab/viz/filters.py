"""The first convolution layer's filters drawn as small images."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from cnnlab.viz._common import default_conv_layer, get_layer, mosaic


def first_conv_weight(model: torch.nn.Module, layer: str | None = None) -> torch.Tensor:
    """The (out, in, kh, kw) weight of ``layer`` (default: the model's first ``Conv2d``).

    Example:
        >>> first_conv_weight(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5))).shape
        torch.Size([8, 3, 5, 5])
    """
    name = layer or default_conv_layer(model, last=False)
    weight = getattr(get_layer(model, name), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError(f"layer {name!r} has no 4-D convolution weight; pass a Conv2d layer name")
    return weight.detach().cpu().float()


def plot_filters(
    model_or_weight: torch.nn.Module | torch.Tensor, layer: str | None = None, max_filters: int = 64
) -> Figure:
    """Draw each filter of the first conv layer: RGB for 3 input channels, else a diverging map.

    Three-channel filters are shown as colour images, each rescaled so that 0 is mid-gray
    (``0.5 + w / (2 max|w|)``). Other filters show the mean over input channels in a blue-white-red
    map centred on zero, so positive and negative weights read at a glance.

    Example:
        >>> fig = plot_filters(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)))
    """
    if isinstance(model_or_weight, torch.Tensor):
        weight = model_or_weight.detach().cpu().float()
        if weight.ndim != 4:
            raise ValueError(f"weight must be (out, in, kh, kw), got {tuple(weight.shape)}")
    else:
        weight = first_conv_weight(model_or_weight, layer)
    weight = weight[:max_filters]
    cells = []
    for w in weight:
        scale = float(w.abs().max()) or 1.0
        # 0.5 + w / (2 max|w|) maps [-max, max] to [0, 1] with zero at mid-gray (or white in bwr)
        if w.shape[0] == 3:
            cells.append((0.5 + w.permute(1, 2, 0).numpy() / (2 * scale)).clip(0, 1))
        else:
            cells.append(0.5 + w.mean(0).numpy() / (2 * scale))
    k = tuple(weight.shape[2:])
    title = f"{weight.shape[0]} filters, {weight.shape[1]} in-channel(s), {k[0]}x{k[1]}"
    return mosaic(cells, cell=0.8, cmap="bwr", suptitle=title)
