"""The receptive field of one output unit, drawn on the input image.

Two views of the same question, "which input pixels can change this unit?":

* the *theoretical* receptive field, a box given by the layers' kernels, strides, paddings and
  dilations (``cnnlab.inspect``'s receptive-field arithmetic), for any unit, not only the centre;
* the *effective* receptive field (Luo et al., "Understanding the Effective Receptive Field in
  Deep Convolutional Neural Networks", NeurIPS 2016): ``|d unit / d input|``, which is usually
  concentrated in the middle of the box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnlab.viz._common import get_layer, new_figure, show_image, to_display
from cnnlab.viz.features import _batch
from cnnlab.viz.gradcam import last_feature_layer


@dataclass
class ReceptiveField:
    """Where unit ``unit`` of ``layer`` looks: box rows ``top..bottom``, columns ``left..right``.

    Bounds are inclusive and clipped to the image; ``gradient`` is ``|d unit / d input|`` summed
    over channels, (H, W).
    """

    layer: str
    unit: tuple[int, int]
    top: int
    left: int
    bottom: int
    right: int
    gradient: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the box inside the image."""
        return self.bottom - self.top + 1, self.right - self.left + 1


def _unit_gradient(model, x, layer: str, unit: tuple[int, int] | None):
    """|d out[0, :, r, c].sum() / d x| for the layer output ``out``; returns (grad (H, W), unit)."""
    module = get_layer(model, layer)
    captured: list[torch.Tensor] = []

    def hook(mod, inputs, out):
        captured.append(out)
        return out.clone()  # keep `out` intact if a later op works in place

    handle = module.register_forward_hook(hook)
    x = x.clone().requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    out = captured[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ValueError(f"layer {layer!r} does not output a (1, C, H, W) feature map")
    h, w = out.shape[2:]
    r, c = (h // 2, w // 2) if unit is None else (int(unit[0]), int(unit[1]))
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(
            f"unit must be (row, col) within the {h}x{w} output of {layer!r}, got {unit}"
        )
    (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), x)
    return grad[0].abs().sum(0).detach().cpu(), (r, c)


def _analytic_box(model, x, layer: str, unit: tuple[int, int]) -> tuple[int, int, int, int]:
    """Box of ``unit`` from ``cnnlab.inspect``'s receptive-field arithmetic, clipped to the image.

    The inspector gives, per dimension, the field ``rf``, the effective stride ``jump`` and the
    centre ``start`` of unit 0's field; unit ``u`` is centred at ``start + u * jump`` and covers
    ``rf`` pixels around it: ``[centre - (rf - 1) / 2, centre + (rf - 1) / 2]``.
    """
    from cnnlab.inspect import summary

    rows = [r for r in summary(model, tuple(x.shape), depth=10**6).calls if r.name == layer]
    if not rows or rows[0].rf is None or len(rows[0].rf) != 2:
        raise ValueError(f"cnnlab.inspect finds no 2-D receptive field for layer {layer!r}")
    row = rows[0]
    box = []
    for rf, jump, start, u, n in zip(row.rf, row.jump, row.start, unit, x.shape[2:]):
        centre = start + u * jump
        lo, hi = centre - (rf - 1) / 2, centre + (rf - 1) / 2
        box.append((max(0, math.floor(lo)), min(n - 1, math.ceil(hi))))
    (top, bottom), (left, right) = box
    return top, left, bottom, right


def receptive_field(
    model: torch.nn.Module,
    image: torch.Tensor,
    layer: str | None = None,
    unit: tuple[int, int] | None = None,
) -> ReceptiveField:
    """Receptive field of unit ``(row, col)`` (default: the centre) of ``layer``'s output.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Conv2d(2, 2, 3))
        >>> receptive_field(net, torch.rand(1, 16, 16), layer="1", unit=(0, 0)).size
        (5, 5)
    """
    was_training = model.training
    model.eval()
    try:
        name = layer or last_feature_layer(model, image)
        x = _batch(image).to(next(model.parameters(), image).device)
        grad, unit = _unit_gradient(model, x, name, unit)
        box = _analytic_box(model, x, name, unit)
    finally:
        model.train(was_training)
    return ReceptiveField(name, unit, *box, grad)


def plot_receptive_field(
    model: torch.nn.Module,
    image: torch.Tensor,
    layer: str | None = None,
    unit: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """The image with the unit's receptive-field box, and the effective receptive field beside it.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(2))
        >>> fig = plot_receptive_field(net, torch.rand(3, 16, 16))
    """
    rf = receptive_field(model, image, layer, unit)
    fig = new_figure(6.5, 3.4)
    axes = fig.subplots(1, 2)
    show_image(axes[0], to_display(_batch(image)[0], mean, std))
    h, w = rf.size
    for ax in axes:
        ax.add_patch(
            Rectangle((rf.left - 0.5, rf.top - 0.5), w, h, fill=False, edgecolor="red", linewidth=2)
        )
    axes[0].set_title(f"{rf.layer!r} unit {rf.unit}: {h}x{w} pixels", fontsize=9)
    axes[1].imshow(rf.gradient.numpy(), cmap="magma", interpolation="nearest")
    axes[1].set_title("effective RF: |d unit / d input|", fontsize=9)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    return fig
