"""Pretrained weights and their metadata for ``torchvision:NAME`` and ``timm:NAME`` models.

torchvision's weights come through torchvision's own download and cache (``_sources``); timm's
through ``timm.create_model(name, pretrained=True)``, i.e. timm's Hugging Face Hub (or URL)
download and cache, which reads ``.safetensors`` (or ``torch.load(weights_only=True)``), so no
pickle runs. The input size and normalization come from the weights' own metadata:
torchvision's ``Weights.transforms()`` (``crop_size``, ``mean``, ``std``), timm's
``pretrained_cfg`` (``input_size``, ``mean``, ``std``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class WeightsMeta:
    """What pretrained weights expect: ``mean``/``std`` (RGB) and the square input side."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int
    class_names: tuple[str, ...] | None = None


def torchvision_meta(weights: Any) -> WeightsMeta:
    """Metadata of a torchvision weights enum member, from ``weights.transforms()``."""
    t = weights.transforms()
    categories = weights.meta.get("categories")
    return WeightsMeta(
        tuple(t.mean), tuple(t.std), int(t.crop_size[0]), tuple(categories) if categories else None
    )


def timm_meta(builder: str) -> WeightsMeta | None:
    """Metadata from timm's ``pretrained_cfg`` of ``builder`` (None when timm has none)."""
    from cnnlab.models.external import require_timm

    cfg = require_timm().get_pretrained_cfg(builder)
    if cfg is None or not cfg.input_size:
        return None
    return WeightsMeta(tuple(cfg.mean), tuple(cfg.std), int(cfg.input_size[-1]))


def library_meta(name: str, variant: str | None = None) -> WeightsMeta | None:
    """The default weights' metadata of ``torchvision:NAME`` / ``timm:NAME`` (None if unknown).

    Example:
        >>> library_meta("torchvision:efficientnet_b1").size
        240
    """
    from cnnlab.models.external import split_name

    source, builder = split_name(name)
    if source == "timm":
        return timm_meta(builder)
    if source == "torchvision":
        from cnnlab.transfer._sources import torchvision_weights

        try:
            return torchvision_meta(torchvision_weights(builder, variant))
        except ValueError:
            return None
    return None


def library_builder(name: str, library: str) -> str:
    """The builder name for ``library``'s weights: ``torchvision:resnet18`` -> ``resnet18``.

    A zoo name is also torchvision's name (the zoo's ResNets, VGGs, ... load torchvision's
    weights). Raises ``ValueError`` when the model belongs to another library.

    Example:
        >>> library_builder("timm:resnet10t", "timm")
        'resnet10t'
    """
    from cnnlab.models.external import split_name

    source, builder = split_name(name)
    if source is None and library == "torchvision":
        return name
    if source != library:
        hint = f"use --pretrained {source}" if source else "use --model timm:NAME"
        raise ValueError(
            f"pretrained {library!r} loads {library}'s weights, but model {name!r} is "
            f"{'a ' + source if source else 'a cnnlab zoo'} model; {hint}"
        )
    return builder


def library_info(source: str, arch: str | None) -> Any:
    """``PretrainedInfo`` of the library weights a ``torchvision:``/``timm:`` model gets.

    None when ``arch`` is a zoo model (or unknown) and ``source`` is not ``"timm"``, or when
    ``source`` is a path: the caller reads those.
    """
    from cnnlab.transfer._sources import PretrainedInfo, is_torchvision, torchvision_weights

    is_library = isinstance(arch, str) and ":" in arch
    if source == "timm":
        builder = library_builder(arch or "", "timm")
        meta = timm_meta(builder)
        if meta is None:
            raise ValueError(f"pretrained 'timm': timm has no pretrained weights for {builder!r}")
    elif is_torchvision(source) and is_library:
        builder = library_builder(arch, "torchvision")
        meta = torchvision_meta(torchvision_weights(builder, source.partition(":")[2] or None))
    else:
        return None
    return PretrainedInfo(
        source=source, input_size=(3, meta.size, meta.size), mean=meta.mean, std=meta.std,
        class_names=meta.class_names, imagenet=True,
    )  # fmt: skip


def _hub_cache_folder(repo_id: str) -> Path:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - timm always installs huggingface_hub
        HF_HUB_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    return Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def _offline_hint(builder: str, cfg: Any) -> str:
    if cfg is not None and cfg.hf_hub_id:
        filename = cfg.hf_hub_filename or "model.safetensors"
        folder = _hub_cache_folder(cfg.hf_hub_id)
        return (
            f"Offline, place {filename} of the Hugging Face Hub repository {cfg.hf_hub_id} at "
            f"{folder}/snapshots/REV/{filename} and the text REV in {folder}/refs/main (the Hub "
            "cache; HF_HOME moves it, HF_HUB_OFFLINE=1 skips the connection)"
        )
    if cfg is not None and cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        return f"Offline, place the file {cached.name} in {cached.parent}/ - it is {cfg.url}"
    return "Offline"


def load_timm_state(builder: str) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """timm's pretrained weights of ``builder`` (e.g. ``resnet10t`` or ``resnet10t.c3_in1k``).

    Raises:
        ValueError: timm has no pretrained weights for the model.
        FileNotFoundError: the download failed (offline); the message names the file and the
            folder to put it in, or ``--pretrained PATH`` for a local state dict.
    """
    from cnnlab.models.external import require_timm

    timm = require_timm()
    cfg = timm.get_pretrained_cfg(builder)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ValueError(
            f"pretrained 'timm': timm has no pretrained weights for {builder!r}; models with "
            f"weights: timm.list_models(pretrained=True) (e.g. cnnlab models --source timm)"
        )
    try:
        source = timm.create_model(builder, pretrained=True)
    except Exception as exc:  # hub/HTTP errors have many types; all mean "could not fetch"
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise FileNotFoundError(
            f"could not download timm's weights for {builder!r} ({type(exc).__name__}: "
            f"{first}). {_offline_hint(builder, cfg)}; or pass a local state dict with "
            "--pretrained PATH"
        ) from None
    meta = WeightsMeta(
        tuple(source.pretrained_cfg["mean"]),
        tuple(source.pretrained_cfg["std"]),
        int(source.pretrained_cfg["input_size"][-1]),
    )
    return source.state_dict(), meta
