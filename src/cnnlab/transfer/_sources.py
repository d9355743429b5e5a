"""Read pretrained weights from torchvision's cache/download or from a local file or run."""

from __future__ import annotations

import json
import os
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


def _cnnlab_header(path: Path) -> str | None:
    """The ``cnnlab`` metadata (JSON text) of a ``.safetensors`` file; None for a plain one."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return (f.metadata() or {}).get("cnnlab")


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
        if _cnnlab_header(path) is not None:
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


def pretrained_image_size(source: str | os.PathLike) -> int | None:
    """Side of the square input the weights in ``source`` expect, read without loading them.

    torchvision's ImageNet weights expect 224, and so do bare state dicts (``.pth``, or a
    ``.safetensors`` without cnnlab metadata), which :func:`load_pretrained` takes for
    torchvision's ImageNet files; a cnnlab run or checkpoint expects the size it was trained at
    (from its metadata). None when it cannot be told: a missing or unreadable source (which
    ``load_pretrained`` then reports), or a run trained on non-square images.

    Example:
        >>> pretrained_image_size("torchvision")
        224
        >>> pretrained_image_size("no/such/run") is None
        True
    """
    from cnnlab.checkpoint import resolve_checkpoint

    text = os.fspath(source)
    if text == "torchvision" or text.startswith("torchvision:"):
        return IMAGENET_SIZE
    try:
        path = resolve_checkpoint(text) if Path(text).is_dir() else Path(text)
        if not path.is_file():
            return None
        header = _cnnlab_header(path) if path.suffix == ".safetensors" else None
        if header is None:  # a bare state dict
            return IMAGENET_SIZE
        size = json.loads(header).get("input_size")
    except Exception:  # unreadable: load_pretrained raises the clear error for it
        return None
    if isinstance(size, list) and len(size) == 3 and size[1] == size[2]:
        return int(size[1])
    return None
