"""Read pretrained weights from torchvision's cache/download or from a local file or run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# ImageNet channel statistics (RGB, images scaled to [0, 1]); torchvision's weights expect them.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IMAGENET_SIZE = 224  # the crop size torchvision's ImageNet classifiers were trained at


def torchvision_weights(arch: str, variant: str | None = None) -> Any:
    """Return torchvision's weights enum member for architecture ``arch`` (default variant)."""
    from torchvision.models import get_model_weights, list_models

    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError):
        valid = ", ".join(m for m in list_models() if not m.startswith("quantized_"))
        raise ValueError(
            f"pretrained 'torchvision': torchvision has no ImageNet weights for model {arch!r}; "
            f"models with torchvision weights: {valid}"
        ) from None
    if variant is None:
        return enum.DEFAULT
    try:
        return enum[variant]
    except KeyError:
        raise ValueError(
            f"pretrained 'torchvision:{variant}': {arch} weights are one of "
            f"{', '.join(w.name for w in enum)}"
        ) from None


def torchvision_cache_file(weights: Any) -> Path:
    """Where torchvision (``torch.hub``) keeps the downloaded file of ``weights``."""
    filename = os.path.basename(weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_torchvision_state(weights: Any) -> dict[str, torch.Tensor]:
    """Load ``weights`` through torchvision's own cache/download; a clear error when offline.

    torch.hub verifies the SHA-256 prefix in the file name (``resnet18-f37072fd.pth``) when it
    downloads; a file already in the cache is loaded as is. Loading uses ``weights_only=True``.
    """
    cached = torchvision_cache_file(weights)
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; hash mismatch RuntimeError
        if cached.exists():
            raise ValueError(
                f"torchvision weights file {str(cached)!r} could not be loaded ({exc}); "
                "delete it and download again"
            ) from None
        raise FileNotFoundError(
            f"could not download torchvision's {weights} weights ({type(exc).__name__}: {exc}). "
            f"Offline, place the file {cached.name} in {cached.parent}/ (torch.hub's cache; "
            f"set TORCH_HOME to move it) - it is {weights.url}, or pass a local "
            "state dict with --pretrained PATH"
        ) from None


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    # Training scripts often save {"state_dict": ...} or {"model": ...} instead of the bare dict.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ValueError(
            f"pretrained file {str(path)!r} does not hold a state dict (a mapping of parameter "
            "names to tensors); save one with torch.save(model.state_dict(), path)"
        )
    return dict(obj)


def load_local_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a local source: a run directory, a cnnlab/plain ``.safetensors``, or a ``.pth``.

    Returns ``(state_dict, meta)``; ``meta`` is the cnnlab checkpoint metadata, or ``{}``.
    """
    from cnnlab.checkpoint import read_checkpoint, resolve_checkpoint

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"pretrained source {str(path)!r} does not exist; pass 'torchvision', a run "
            "directory, a .safetensors checkpoint or a .pth state dict"
        )
    if path.is_dir():
        return read_checkpoint(resolve_checkpoint(path))
    if path.suffix == ".safetensors":
        from cnnlab.checkpoint import read_metadata

        if read_metadata(path) is not None:
            return read_checkpoint(path)
        from safetensors.torch import load_file

        return load_file(str(path)), {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"pretrained file {str(path)!r} is not a loadable state dict, or holds objects "
            f"that are not allowed to be unpickled ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    return _unwrap(obj, path), {}


def is_torchvision(source: str | os.PathLike) -> bool:
    """True for ``"torchvision"`` and ``"torchvision:VARIANT"``."""
    text = os.fspath(source)
    return text == "torchvision" or text.startswith("torchvision:")


@dataclass(frozen=True)
class PretrainedInfo:
    """What a pretrained source's weights expect, read once (the tensors are not loaded).

    Attributes:
        source: the source as given.
        input_size: ``(C, H, W)`` the weights were trained at, or None when unknown.
        mean, std: the per-channel input normalization they were trained with, or None.
        class_names: the classes of their head (a cnnlab checkpoint, or ImageNet's), or None.
        imagenet: True for ImageNet weights (torchvision's, or a bare state dict).
    """

    source: str
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    imagenet: bool = False

    @property
    def image_size(self) -> int | None:
        """The side of the square input the weights expect (None: unknown or not square)."""
        if self.input_size is None or self.input_size[1] != self.input_size[2]:
            return None
        return int(self.input_size[1])

    @property
    def normalization(self) -> dict[str, list[float]] | None:
        """``{"mean": [...], "std": [...]}``, or None when unknown."""
        if self.mean is None or self.std is None:
            return None
        return {"mean": list(self.mean), "std": list(self.std)}


def imagenet_info(source: str, class_names: list[str] | None = None) -> PretrainedInfo:
    """The one rule for ImageNet weights: 3 x 224 x 224 inputs with ImageNet's mean/std.

    torchvision's weights follow it, and so does a bare state dict (a ``.pth`` or a
    ``.safetensors`` without cnnlab metadata), which is taken for one of torchvision's files.

    Example:
        >>> imagenet_info("resnet18.pth").input_size
        (3, 224, 224)
    """
    return PretrainedInfo(
        source=source, input_size=(3, IMAGENET_SIZE, IMAGENET_SIZE), mean=IMAGENET_MEAN,
        std=IMAGENET_STD, class_names=tuple(class_names) if class_names else None, imagenet=True,
    )


def pretrained_info(source: str | os.PathLike, arch: str | None = None) -> PretrainedInfo:
    """Read what the weights in ``source`` expect: input size, normalization, class names.

    Only metadata is read (a safetensors header; nothing for torchvision but its weights enum):
    :func:`cnnlab.transfer.load_pretrained` loads the tensors. A cnnlab run or checkpoint gives
    its metadata; torchvision's weights and bare state dicts follow :func:`imagenet_info`,
    except for a ``torchvision:NAME`` / ``timm:NAME`` ``arch``, whose library weights' own
    metadata (``Weights.transforms()``, timm's ``pretrained_cfg``) is used.

    Args:
        source: ``"torchvision"[:VARIANT]``, ``"timm"``, a run directory, a ``.safetensors``
            or ``.pth``.
        arch: the architecture (for torchvision's class names and variant check; optional).

    Raises:
        FileNotFoundError: a path that does not exist, or a run without a checkpoint.
        ValueError: an unreadable checkpoint, or torchvision weights that do not exist.

    Example:
        >>> pretrained_info("torchvision").image_size
        224
    """
    from cnnlab.checkpoint import read_metadata, resolve_checkpoint
    from cnnlab.transfer._libraries import library_info, library_meta

    text = os.fspath(source)
    library = library_info(text, arch)  # torchvision:/timm: models: their weights' metadata
    if library is not None:
        return library
    if is_torchvision(text):
        names = None
        if arch is not None:
            weights = torchvision_weights(arch, text.partition(":")[2] or None)
            names = list(weights.meta.get("categories") or []) or None
        return imagenet_info(text, names)
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(
            f"pretrained source {text!r} does not exist; pass 'torchvision', a run "
            "directory, a .safetensors checkpoint or a .pth state dict"
        )
    file = resolve_checkpoint(path) if path.is_dir() else path
    meta = read_metadata(file) if file.suffix == ".safetensors" else None
    if meta is None:  # a bare state dict (of the library of a torchvision:/timm: model)
        lib = library_meta(arch) if arch and ":" in arch else None
        if lib is not None:
            return PretrainedInfo(
                source=text, input_size=(3, lib.size, lib.size), mean=lib.mean, std=lib.std,
                imagenet=True,
            )  # fmt: skip
        return imagenet_info(text)
    size = meta.get("input_size")
    norm = meta.get("normalization") or {}
    names = meta.get("class_names")
    return PretrainedInfo(
        source=text,
        input_size=tuple(int(v) for v in size) if isinstance(size, list) and len(size) == 3
        else None,
        mean=tuple(norm["mean"]) if norm.get("mean") else None,
        std=tuple(norm["std"]) if norm.get("std") else None,
        class_names=tuple(str(n) for n in names) if names else None,
    )


def pretrained_image_size(source: str | os.PathLike, model: str | None = None) -> int | None:
    """Side of the square input the weights in ``source`` expect, read without loading them.

    :attr:`PretrainedInfo.image_size` of :func:`pretrained_info`; None when it cannot be told:
    a missing or unreadable source (which ``load_pretrained`` then reports), or a run trained
    on non-square images. For a ``torchvision:NAME`` / ``timm:NAME`` ``model`` the library's
    weights and bare state dicts expect the size in the weights' own metadata (240 for
    EfficientNet-B1, 176 for timm's resnet10t).

    Example:
        >>> pretrained_image_size("torchvision")
        224
        >>> pretrained_image_size("no/such/run") is None
        True
    """
    try:
        return pretrained_info(source, model).image_size
    except Exception:  # unreadable: load_pretrained raises the clear error for it
        return None
