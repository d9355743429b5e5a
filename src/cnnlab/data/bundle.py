"""The in-memory dataset: uint8 image tensors per split, class names and channel statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

_STATS_CHUNK = 8192  # images per chunk when measuring mean/std, bounds the temporaries


@dataclass
class Split:
    """One split of a dataset, decoded once and kept resident.

    Attributes:
        images: uint8 tensor of shape (N, C, H, W), contiguous.
        labels: int64 tensor of shape (N,).

    Example:
        >>> s = Split(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
        >>> len(s), s.images.shape[1:]
        (4, torch.Size([1, 8, 8]))
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        stored = getattr(self.images, "is_stored", False)  # rows of a disk store (StoredImages)
        if not stored and (
            not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8
        ):
            raise ValueError(
                "Split.images must be a uint8 torch.Tensor of shape (N, C, H, W), got "
                f"{getattr(self.images, 'dtype', type(self.images).__name__)}"
            )
        if self.images.ndim != 4:
            raise ValueError(
                f"Split.images must have shape (N, C, H, W), got {tuple(self.images.shape)}"
            )
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise ValueError(
                f"Split.labels must have shape ({len(self.images)},) to match the images, got "
                f"{tuple(self.labels.shape)}"
            )
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        """Return this split moved to ``device`` (e.g. kept resident on the GPU for training).

        Example:
            >>> Split(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])).to("cpu")
            Split(n=2, shape=(1, 4, 4), device=cpu)
        """
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        """Return the samples at ``index`` (a 1-D int64 tensor) as a new split.

        Example:
            >>> s = Split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4))
            >>> s.subset(torch.tensor([3, 1])).labels.tolist()
            [3, 1]
        """
        index = index.to(self.images.device)
        if getattr(self.images, "is_stored", False):  # a view of other rows, nothing is read
            return Split(self.images.take_rows(index), self.labels.index_select(0, index))
        return Split(self.images.index_select(0, index), self.labels.index_select(0, index))

    def class_counts(self, num_classes: int) -> list[int]:
        """Number of samples of each class.

        Example:
            >>> s = Split(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1]))
            >>> s.class_counts(2)
            [1, 2]
        """
        return torch.bincount(self.labels.cpu(), minlength=num_classes).tolist()

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return f"Split(n={len(self)}, shape={shape}, device={self.images.device})"


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Exact and fast: a 256-bin histogram h of each channel (``np.bincount``), then with n = sum h,
    mean = sum_v v h_v / n and var = sum_v (v - mean)^2 h_v / n, divided by 255 (255^2).

    Args:
        images: uint8 tensor (N, C, H, W).

    Returns:
        (mean, std), each a tuple of C floats.

    Example:
        >>> x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
        >>> channel_stats(x)
        ((0.5,), (0.5,))
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "channel_stats needs a non-empty uint8 tensor (N, C, H, W), got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    x = images.cpu().numpy()
    c = x.shape[1]
    hist = np.zeros((c, 256), dtype=np.int64)
    for start in range(0, len(x), _STATS_CHUNK):
        chunk = x[start : start + _STATS_CHUNK]  # (B, C, H, W)
        for ch in range(c):
            hist[ch] += np.bincount(chunk[:, ch].ravel(), minlength=256)
    v = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum(axis=1)
    mean = (hist * v).sum(axis=1) / n
    var = (hist * (v[None, :] - mean[:, None]) ** 2).sum(axis=1) / n
    std = np.maximum(np.sqrt(var), 1e-6)  # a constant channel must not divide by zero later
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def to_model_classes(
    labels: torch.Tensor, data_names: list[str], model_names: list[str]
) -> torch.Tensor:
    """Re-index ``labels`` from the data's class order to a model's, matching by class name.

    Evaluation and the int8 export's check both score a model on data whose folders may list the
    classes in another order (or only some of them); a class the model never saw is an error.

    Example:
        >>> to_model_classes(torch.tensor([0, 1]), ["cat", "dog"], ["dog", "cat"]).tolist()
        [1, 0]
    """
    if data_names == model_names:
        return labels.cpu()
    missing = [n for n in data_names if n not in model_names]
    if missing:
        raise ValueError(
            f"the data has classes the model was not trained on: {missing[:10]}; the model "
            f"knows {model_names[:20]}"
        )
    table = torch.tensor([model_names.index(n) for n in data_names], dtype=torch.int64)
    return table[labels.cpu()]


@dataclass
class DataBundle:
    """A dataset ready for training: train/val(/test) splits, class names and normalization.

    Attributes:
        name: the source spec, e.g. ``"digits"``, ``"cifar10"``, ``"folder:/path"``.
        class_names: one name per class index.
        train, val, test: the splits (``test`` may be None when the source has none).
        mean, std: per-channel statistics in [0, 1] units, measured on the training split.
        info: how the bundle was made (seed, split fractions, skipped files ...), saved in
            ``data.json``.
        crop_size: (H, W) the model sees when the images are stored larger (full-resolution
            storage: random-resized-crop for training, centre crop for evaluation); None when
            the model sees the stored size.

    Example:
        >>> from cnnlab.data import load_data
        >>> b = load_data("digits")
        >>> b.num_classes, b.in_channels, b.image_size
        (10, 1, (32, 32))
    """

    name: str
    class_names: list[str]
    train: Split
    val: Split
    test: Split | None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    crop_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        shape = tuple(self.train.images.shape[1:])
        for split_name, split in self.splits().items():
            if tuple(split.images.shape[1:]) != shape:
                raise ValueError(
                    f"split {split_name!r} has images of shape {tuple(split.images.shape[1:])}, "
                    f"but train has {shape}; all splits must share (C, H, W)"
                )
        if not self.mean or not self.std:
            if getattr(self.train.images, "is_stored", False):  # exact, from the stored sums
                self.mean, self.std = self.train.images.channel_stats()
            else:
                self.mean, self.std = channel_stats(self.train.images)
        if self.crop_size is not None:
            self.crop_size = (int(self.crop_size[0]), int(self.crop_size[1]))
            h, w = self.image_size
            if self.crop_size == (h, w):
                self.crop_size = None
            elif self.crop_size[0] > h or self.crop_size[1] > w:
                raise ValueError(
                    f"crop_size {self.crop_size} must not exceed the stored image size {(h, w)}"
                )

    @property
    def in_channels(self) -> int:
        """Number of image channels C."""
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model sees: ``crop_size`` when set, else ``image_size``."""
        return self.crop_size or self.image_size

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def splits(self) -> dict[str, Split]:
        """The splits that exist, by name (``train``, ``val`` and ``test`` when present)."""
        out = {"train": self.train, "val": self.val}
        if self.test is not None:
            out["test"] = self.test
        return out

    def split(self, name: str) -> Split:
        """Return the split called ``name`` (``train``, ``val`` or ``test``), with a clear error.

        Example:
            >>> from cnnlab.data import load_data
            >>> len(load_data("digits").split("test")) > 0
            True
        """
        splits = self.splits()
        if name not in splits:
            raise ValueError(
                f"split must be one of {', '.join(repr(s) for s in splits)} for dataset "
                f"{self.name!r}; got {name!r}"
            )
        return splits[name]

    def to_json(self) -> dict[str, Any]:
        """Describe the bundle for ``runs/<name>/data.json``.

        Example:
            >>> from cnnlab.data import load_data
            >>> load_data("digits").to_json()["split_sizes"]
            {'train': 1439, 'val': 179, 'test': 179}
        """
        return {
            "source": self.name,
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "split_sizes": {k: len(v) for k, v in self.splits().items()},
            "class_counts": {k: v.class_counts(self.num_classes) for k, v in self.splits().items()},
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            **({"crop_size": list(self.crop_size)} if self.crop_size else {}),
            "mean": list(self.mean),
            "std": list(self.std),
            **self.info,
        }

    def summary(self) -> str:
        """One human-readable line: source, sizes, shape and normalization.

        Example:
            >>> from cnnlab.data import load_data
            >>> load_data("digits").summary().startswith("digits:")
            True
        """
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits().items())
        h, w = self.image_size
        mean = ", ".join(f"{m:.4f}" for m in self.mean)
        std = ", ".join(f"{s:.4f}" for s in self.std)
        crop = ""
        if self.crop_size:
            crop = f" (model sees {self.crop_size[0]}x{self.crop_size[1]} crops)"
        where, why = "resident", self.info.get("cache_why")
        if self.info.get("cache") == "disk":
            where = "memory-mapped disk"
        where = f"; {where} store ({why})" if why else ""
        return (
            f"{self.name}: {self.num_classes} classes, {sizes}; images {self.in_channels}x{h}x{w}"
            f"{crop}; mean ({mean}) std ({std}){where}"
        )
