"""Figures of a run directory by name: what ``cnnlab viz KIND RUN [IMAGE]`` draws."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from matplotlib.figure import Figure

from cnnlab.viz import _run

RUN_FIGURES = (
    "curves",
    "confusion",
    "grid",
    "losses",
    "dataset",
    "augment",
    "filters",
    "features",
    "gradcam",
    "rf",
)
IMAGE_FIGURES = ("features", "gradcam", "rf")


def _class_index(value: str | int | None, names: list[str]) -> int | None:
    if value is None:
        return None
    if str(value) in names:
        return names.index(str(value))
    try:
        index = int(value)
    except ValueError:
        index = -1
    if not 0 <= index < len(names):
        raise ValueError(
            f"class must be a class name or an index in [0, {len(names) - 1}]; got "
            f"{value!r}; classes: {', '.join(names[:20])}"
        )
    return index


def _one_image(run: _run.RunView, image: str | os.PathLike | None) -> tuple[torch.Tensor, str]:
    """(uint8 (C, H, W) image, where it came from): a file, or the split's first image."""
    meta = run.model()[1]
    if image is not None:
        return _run.load_image_file(image, meta), Path(image).name
    split = run.split()
    return run.bundle().split(split).images[0], f"first {split} image"


def augmentation_figure(run: _run.RunView, n_images: int = 6, n_views: int = 5):
    """(figure, caption): random training images before and after the run's augmentation."""
    from cnnlab.data import build_augment, resolve_augment_name, to_float
    from cnnlab.viz.grids import plot_augmentation_preview

    given = run.config.get("augment") or "none"
    bundle = run.bundle()
    name = resolve_augment_name(given, run.run.dataset)  # "auto": the preset training used
    aug = build_augment(name, bundle.image_size)
    aug.train()
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(bundle.train), generator=gen)[:n_images]
    fig = plot_augmentation_preview(
        bundle.train.images[pick], lambda x: aug(to_float(x), generator=gen), n_views=n_views
    )
    text = f"augmentation {given!r}" + (f" ({name!r} for {run.run.dataset})" if name != given
                                         else "") + f": {aug!r}"
    return fig, text + (" (none: the views equal the originals)" if name == "none" else "")


def run_figure(
    kind: str,
    run_dir: str | os.PathLike,
    image: str | os.PathLike | None = None,
    *,
    layer: str | None = None,
    class_: str | int | None = None,
    unit: tuple[int, int] | None = None,
    split: str | None = None,
    top_n: int = 16,
) -> Figure:
    """Draw figure ``kind`` (one of ``RUN_FIGURES``) of a run directory.

    Args:
        kind: curves, confusion, grid, losses, dataset, augment, filters, features, gradcam, rf.
        run_dir: a run directory made by ``cnnlab train``.
        image: an image file for features/gradcam/rf (default: the split's first image).
        layer: a layer name (``cnnlab summary`` lists them) for filters/features/gradcam/rf.
        class_: class name or index for gradcam (default: the predicted class).
        unit: (row, col) of the output unit for rf (default: the centre).
        split: evaluation split (default: the saved evaluation, else test, else val).
        top_n: images in grid/losses, channels in features.

    Example:
        >>> fig = run_figure("curves", "runs/digits-simple_cnn")  # doctest: +SKIP
    """
    from cnnlab._validate import check_choice, check_int

    check_choice("kind", kind, RUN_FIGURES)
    check_int("top_n", top_n, min_value=1)
    run = _run.RunView(_run.run_path(run_dir), split)
    if kind == "curves":
        from cnnlab.viz.curves import plot_curves

        return plot_curves(run.dir)
    if kind == "confusion":
        from cnnlab.viz.confusion import plot_confusion

        _, _, names, cm, _ = run.evaluation()
        if cm is None:
            raise ValueError(f"{str(run.dir)!r} has no confusion matrix; run 'cnnlab evaluate'")
        return plot_confusion(cm, names or None)
    if kind == "augment":
        return augmentation_figure(run)[0]
    model, meta = run.model()
    names = list(meta.get("class_names") or [])
    norm = meta.get("normalization") or {}
    mean, std = norm.get("mean"), norm.get("std")
    if kind in ("grid", "losses"):
        from cnnlab.viz.grids import plot_predictions, plot_top_losses

        images, labels, logits = run.scored()
        if kind == "losses":
            return plot_top_losses(images, labels, logits, names, k=top_n)
        n = min(top_n, len(images))
        return plot_predictions(
            images[:n], labels[:n], logits[:n].argmax(1), names, logits[:n].softmax(1).max(1).values
        )
    if kind == "dataset":
        from cnnlab.viz.grids import plot_dataset_preview

        train = run.bundle().train
        return plot_dataset_preview(train.images, train.labels, names)
    if kind == "filters":
        from cnnlab.viz.filters import plot_filters

        return plot_filters(model, layer)
    img, source = _one_image(run, image)
    x = _run.normalize(img[None], meta)[0]  # (C, H, W) model input
    if kind == "features":
        from cnnlab.viz._common import default_conv_layer
        from cnnlab.viz.features import plot_feature_maps

        return plot_feature_maps(
            model, x, layer or default_conv_layer(model, last=False), top_n, mean, std
        )
    if kind == "gradcam":
        from cnnlab.viz.gradcam import plot_grad_cam

        fig = plot_grad_cam(model, x, _class_index(class_, names), layer, names, mean, std)
    else:
        from cnnlab.viz.receptive import plot_receptive_field

        fig = plot_receptive_field(model, x, layer, unit, mean, std)
    fig.suptitle(source, fontsize=9)
    return fig
