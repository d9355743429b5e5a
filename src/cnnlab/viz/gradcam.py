"""Grad-CAM: where the network looked, for the predicted class or a chosen class.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017. For class ``c`` with score ``y_c`` (the logit) and feature maps
``A_k`` (k = 1..K) of a convolutional layer:

    alpha_k = mean over (i, j) of d y_c / d A_k[i, j]       (global-average-pooled gradients)
    L_c     = ReLU( sum_k alpha_k * A_k )                   (positive evidence only)

``L_c`` has the layer's resolution and is upsampled bilinearly to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from cnnlab.viz._common import get_layer, new_figure, show_image, to_display
from cnnlab.viz.features import _batch


@dataclass
class GradCAM:
    """A Grad-CAM result: ``heatmap`` (H, W) in [0, 1] at input resolution, and what it explains."""

    heatmap: torch.Tensor
    class_index: int
    probability: float
    layer: str

    def peak(self) -> tuple[int, int]:
        """(row, column) of the heatmap's maximum."""
        flat = int(self.heatmap.argmax())
        return divmod(flat, self.heatmap.shape[1])


def last_feature_layer(model: torch.nn.Module, image: torch.Tensor) -> str:
    """Name of the last learned module (in execution order) with a (N, C, H, W) output, H*W > 1.

    That is the usual Grad-CAM layer: the end of the convolutional part (ResNet's ``layer4``,
    VGG's ``features``), before global pooling. Modules without parameters (an activation, an
    adaptive pool that only resamples) are passed over unless no learned module qualifies.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
        >>> last_feature_layer(net, torch.rand(1, 1, 8, 8))
        '0'
    """
    order: list[tuple[str, bool]] = []  # (name, has parameters), in the order outputs appear

    def hook(name: str, learned: bool):
        def record(mod, inputs, out):
            if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
                order.append((name, learned))

        return record

    handles = [
        m.register_forward_hook(hook(name, any(True for _ in m.parameters())))
        for name, m in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(_batch(image).to(next(model.parameters(), image).device))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError("no layer of this model outputs a spatial (N, C, H, W) map; pass layer=")
    learned = [name for name, has_params in order if has_params]
    return (learned or [name for name, _ in order])[-1]


def grad_cam(
    model: torch.nn.Module,
    image: torch.Tensor,
    class_index: int | None = None,
    layer: str | None = None,
) -> GradCAM:
    """Grad-CAM heatmap of ``image`` (one (C, H, W) input, normalized as the model expects).

    Args:
        model: a classifier returning (1, num_classes) logits.
        image: (C, H, W) or (1, C, H, W).
        class_index: the class to explain; default the predicted one.
        layer: a module name from ``model.named_modules()``; default :func:`last_feature_layer`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        ...                           torch.nn.Linear(4, 2))
        >>> grad_cam(net, torch.rand(1, 8, 8)).heatmap.shape
        torch.Size([8, 8])
    """
    was_training = model.training
    model.eval()
    try:
        name = layer or last_feature_layer(model, image)
        module = get_layer(model, name)
        device = next(model.parameters(), image).device
        x = _batch(image).to(device).requires_grad_(True)
        captured: list[torch.Tensor] = []

        def hook(mod, inputs, out):
            captured.append(out)
            return out.clone()  # later in-place ops (ReLU(inplace=True)) must not alter `out`

        handle = module.register_forward_hook(hook)
        try:
            logits = model(x)
        finally:
            handle.remove()
        if logits.ndim != 2 or logits.shape[0] != 1:
            raise ValueError(
                f"model must return (1, num_classes) logits, got {tuple(logits.shape)}"
            )
        num_classes = logits.shape[1]
        probs = logits.detach().softmax(1)[0]
        c = int(probs.argmax()) if class_index is None else int(class_index)
        if not 0 <= c < num_classes:
            raise ValueError(f"class_index must be in [0, {num_classes - 1}], got {class_index}")
        acts = captured[0]
        if not isinstance(acts, torch.Tensor) or acts.ndim != 4:
            raise ValueError(f"layer {name!r} does not output a (1, C, H, W) feature map")
        (grads,) = torch.autograd.grad(logits[0, c], acts)  # (1, K, h, w)
        alpha = grads.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
        cam = F.relu((alpha * acts).sum(1, keepdim=True))  # (1, 1, h, w)
        cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
        cam = cam.detach().cpu()
        top = float(cam.max())
        cam = cam / top if top > 0 else cam
        return GradCAM(cam, c, float(probs[c]), name)
    finally:
        model.train(was_training)


def plot_grad_cam(
    model: torch.nn.Module,
    image: torch.Tensor,
    class_index: int | None = None,
    layer: str | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """Three panels: the image, the Grad-CAM heatmap and the heatmap over the image.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> fig = plot_grad_cam(net, torch.rand(3, 16, 16), class_names=["cat", "dog"])
    """
    cam = grad_cam(model, image, class_index, layer)
    shown = to_display(_batch(image)[0], mean, std)
    fig = new_figure(7.5, 2.9)
    axes = fig.subplots(1, 3)
    show_image(axes[0], shown, "input")
    axes[1].imshow(cam.heatmap.numpy(), cmap="jet", vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM at {cam.layer!r}", fontsize=8)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    show_image(axes[2], shown)
    axes[2].imshow(cam.heatmap.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    r, c = cam.peak()
    axes[2].plot([c], [r], marker="x", color="white", markersize=8, mew=2)
    name = class_names[cam.class_index] if class_names else str(cam.class_index)
    which = "predicted" if class_index is None else "chosen"
    axes[2].set_title(f"{which} class {name!r} (p={cam.probability:.2f})", fontsize=8)
    return fig


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet colours) over a display image; returns (H, W, 3) in [0, 1]."""
    from matplotlib import colormaps

    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return (1 - alpha) * rgb + alpha * colormaps["jet"](heatmap)[..., :3]
