"""Image grids: predictions (wrong ones marked), highest losses, dataset/augmentation previews."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from cnnlab.viz._common import RIGHT, WRONG, mosaic, to_display


def _check_images(images) -> torch.Tensor:
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(i) for i in images])
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
    if images.shape[0] == 0:
        raise ValueError("images is empty: need at least one image to draw")
    return images


def _name(class_names: Sequence[str] | None, i: int) -> str:
    return str(class_names[i]) if class_names is not None and 0 <= i < len(class_names) else str(i)


def plot_predictions(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    preds: Sequence[int] | torch.Tensor,
    class_names: Sequence[str] | None = None,
    probs: Sequence[float] | torch.Tensor | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    ncols: int | None = None,
) -> Figure:
    """Images titled ``pred / true`` (and the predicted probability); wrong ones in red frames.

    Example:
        >>> fig = plot_predictions(torch.rand(4, 3, 8, 8), [0, 1, 1, 0], [0, 1, 0, 0], ["a", "b"])
    """
    images = _check_images(images)
    labels = torch.as_tensor(labels).view(-1).tolist()
    preds = torch.as_tensor(preds).view(-1).tolist()
    if not len(labels) == len(preds) == images.shape[0]:
        raise ValueError(
            f"images, labels and preds must have the same length, got {images.shape[0]}, "
            f"{len(labels)} and {len(preds)}"
        )
    p = None if probs is None else torch.as_tensor(probs).view(-1).tolist()
    titles, colors = [], []
    for i in range(len(labels)):
        title = f"{_name(class_names, preds[i])} / {_name(class_names, labels[i])}"
        titles.append(title + (f"\n{p[i]:.2f}" if p is not None else ""))
        colors.append(RIGHT if labels[i] == preds[i] else WRONG)
    n_wrong = sum(a != b for a, b in zip(labels, preds))
    return mosaic(
        [to_display(im, mean, std) for im in images],
        titles,
        colors,
        ncols,
        suptitle=f"predicted / true: {n_wrong} of {len(labels)} wrong (red)",
    )


def top_losses(logits: torch.Tensor, labels: Sequence[int] | torch.Tensor, k: int = 16):
    """Indices, losses, predictions and predicted probabilities of the ``k`` highest-loss samples.

    Example:
        >>> idx, loss, pred, prob = top_losses(torch.randn(10, 3), torch.zeros(10).long(), 4)
    """
    logits = torch.as_tensor(logits).float()
    labels = torch.as_tensor(labels).long().view(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"logits must be (N, K) with N = len(labels) = {labels.shape[0]}, "
            f"got {tuple(logits.shape)}"
        )
    losses = F.cross_entropy(logits, labels, reduction="none")
    k = max(1, min(int(k), logits.shape[0]))
    loss, idx = losses.topk(k)
    prob, pred = logits.softmax(1)[idx].max(1)
    return idx, loss, pred, prob


def plot_top_losses(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    logits: torch.Tensor,
    class_names: Sequence[str] | None = None,
    k: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """The ``k`` images the model got most wrong (highest cross-entropy), like fastai's top losses.

    Each title reads ``pred / true / loss / probability of pred``.

    Example:
        >>> fig = plot_top_losses(torch.rand(6, 1, 8, 8), [0] * 6, torch.randn(6, 2), k=4)
    """
    images = _check_images(images)
    idx, loss, pred, prob = top_losses(logits, labels, k)
    labels = torch.as_tensor(labels).view(-1)
    titles, colors = [], []
    for i, l, p, pr in zip(idx.tolist(), loss.tolist(), pred.tolist(), prob.tolist()):
        t = int(labels[i])
        titles.append(f"{_name(class_names, p)} / {_name(class_names, t)}\n{l:.2f} / {pr:.2f}")
        colors.append(RIGHT if p == t else WRONG)
    return mosaic(
        [to_display(images[i], mean, std) for i in idx.tolist()],
        titles,
        colors,
        suptitle="highest losses: predicted / true, loss / probability",
    )


def plot_dataset_preview(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    class_names: Sequence[str] | None = None,
    per_class: int = 6,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    max_classes: int = 20,
) -> Figure:
    """A row per class with its first ``per_class`` images, labelled with the class name.

    Example:
        >>> fig = plot_dataset_preview(torch.rand(8, 3, 8, 8), [0, 1] * 4, ["a", "b"], per_class=3)
    """
    images = _check_images(images)
    labels = torch.as_tensor(labels).view(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {labels.shape[0]} labels")
    classes = sorted(set(labels.tolist()))[:max_classes]
    rows = [(c, (labels == c).nonzero().view(-1)[:per_class].tolist()) for c in classes]
    ncols = max(len(r) for _, r in rows)
    cells = [
        to_display(images[idx[j]], mean, std) if j < len(idx) else None
        for _, idx in rows
        for j in range(ncols)
    ]
    return mosaic(
        cells,
        ncols=ncols,
        row_labels=[_name(class_names, c) for c, _ in rows],
        suptitle=f"dataset preview: {len(rows)} classes",
    )


def plot_augmentation_preview(
    images: torch.Tensor,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    augmented: Sequence[torch.Tensor] | torch.Tensor | None = None,
    n_views: int = 4,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """Each image beside ``n_views`` augmented versions of itself, to check augmentation is sane.

    Args:
        images: (N, C, H, W) images before augmentation.
        augment: a batched augmentation ``(N, C, H, W) -> (N, C, H', W')``, called ``n_views``
            times; or pass ``augmented``, a list of such batches, instead.
        mean, std: undo a normalization that ``augment`` applies (for display).

    Example:
        >>> fig = plot_augmentation_preview(torch.rand(2, 3, 8, 8), lambda x: x.flip(-1), n_views=2)
    """
    images = _check_images(images)
    if (augment is None) == (augmented is None):
        raise ValueError("pass exactly one of augment (a callable) or augmented (image batches)")
    if augment is not None:
        with torch.no_grad():
            views = [augment(images.clone()) for _ in range(n_views)]
    else:
        views = list(augmented) if not isinstance(augmented, torch.Tensor) else [augmented]
    for v in views:
        if v.ndim != 4 or v.shape[0] != images.shape[0]:
            raise ValueError(
                f"every augmented batch must be (N={images.shape[0]}, C, H, W), "
                f"got {tuple(v.shape)}"
            )
    cells, titles = [], []
    for i in range(images.shape[0]):
        # the original is shown as stored (uint8 or [0, 1]); the views may be normalized
        cells.append(to_display(images[i]))
        titles.append("original" if i == 0 else "")
        for j, v in enumerate(views, start=1):
            cells.append(to_display(v[i], mean, std))
            titles.append(f"view {j}" if i == 0 else "")
    return mosaic(
        cells,
        titles,
        ncols=len(views) + 1,
        suptitle="augmentation preview: original, then augmented views",
    )
