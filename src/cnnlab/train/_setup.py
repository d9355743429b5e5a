"""Turn a TrainConfig into the pieces of a run: device, data, model, optimizer, scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import build_optimizer, build_scheduler


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an explicit device must be available.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' is not available here (no CUDA GPU); use --device cpu")
    if name.startswith("cuda:"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(name[5:]) >= count:
            raise ValueError(
                f"device {name!r} is not available here ({count} CUDA GPU(s): "
                f"{', '.join(f'cuda:{i}' for i in range(count)) or 'none'}); use --device cpu"
            )
    if name == "mps" and not has_mps:
        raise ValueError("device 'mps' is not available here (no Apple GPU); use --device cpu")
    return torch.device(name)


def pretrained_source(cfg: TrainConfig) -> Any:
    """What ``--pretrained``'s weights expect (a ``cnnlab.transfer.PretrainedInfo``), or None.

    Read once per run and handed to both :func:`load_bundle` (input size) and
    :func:`build_model` (normalization, class names).
    """
    if not cfg.pretrained:
        return None
    from cnnlab.transfer import pretrained_info

    return pretrained_info(cfg.pretrained, arch=cfg.model)


def load_bundle(cfg: TrainConfig, pretrained: Any = None) -> Any:
    """Load the dataset the config names (through the uint8 tensor cache of cnnlab.data).

    ``pretrained``: :func:`pretrained_source`'s value (read here when None and the config names
    ``--pretrained``).
    """
    from cnnlab.data import load_data

    image_size = cfg.image_size
    if image_size is None and cfg.pretrained:
        # The weights expect the resolution they were trained at: 224 for ImageNet weights,
        # a cnnlab run's own size (--image-size sets another).
        image_size = (pretrained or pretrained_source(cfg)).image_size
    storage = storage_size(cfg, image_size)
    kwargs: dict[str, Any] = {
        "val_split": cfg.val_split,
        "test_split": cfg.test_split,
        "seed": cfg.seed,
    }
    if cfg.download:
        kwargs["download"] = True
    if cfg.dataset.lower().startswith(("folder:", "csv:")):
        kwargs.update(cache=cfg.cache, storage_size=storage, quiet=cfg.quiet)
    for key, value in (
        ("data_dir", cfg.data_dir),
        ("cache_dir", cfg.cache_dir),
        ("image_size", image_size),
        ("channels", cfg.channels),
    ):
        if value is not None:
            kwargs[key] = value
    bundle = load_data(cfg.dataset, **kwargs)
    if cfg.max_train_images is not None and cfg.max_train_images < len(bundle.train):
        # A seeded random subset, so that it covers every class.
        g = torch.Generator().manual_seed(cfg.seed)
        keep = torch.randperm(len(bundle.train), generator=g)[: cfg.max_train_images]
        bundle.train = bundle.train.subset(keep.sort().values)
        bundle.info = {**bundle.info, "max_train_images": cfg.max_train_images}
    return bundle


def storage_size(cfg: TrainConfig, image_size: int | None) -> int | None:
    """The decoded size of a folder/CSV: ``--storage-size``, else torchvision's 256-for-224.

    From 128 px up the images are stored at ``round(image_size * 256 / 224)`` (the reference
    recipes' resize before the 224 crop), so random-resized-crop sees the whole picture and
    evaluation is resize + centre crop; smaller sizes are stored at the training size.

    Example:
        >>> storage_size(TrainConfig(dataset="folder:x", image_size=224), 224)
        256
    """
    if cfg.storage_size is not None:
        return cfg.storage_size
    if image_size is None or image_size < 128:
        return None
    return round(image_size * 256 / 224)


@dataclass
class ModelSetup:
    """The model with what the checkpoint metadata needs to rebuild and feed it."""

    model: nn.Module
    spec: dict[str, Any]  # {"name": ..., "kwargs": {...}} for cnnlab.models.create
    mean: list[float]
    std: list[float]
    messages: list[str]


def build_model(cfg: TrainConfig, bundle: Any, pretrained: Any = None) -> ModelSetup:
    """Create the zoo model for the bundle's classes/channels, load weights, freeze layers.

    ``pretrained``: :func:`pretrained_source`'s value, when already read.
    """
    from cnnlab.models import create

    kwargs = {
        **cfg.model_args,
        "num_classes": bundle.num_classes,
        "in_channels": bundle.in_channels,
    }
    spec: dict[str, Any] = {"name": cfg.model, "kwargs": kwargs}
    if ":" in cfg.model:  # torchvision:NAME / timm:NAME: record the library that builds it
        from cnnlab.models.external import external_spec

        spec = external_spec(cfg.model, kwargs, bundle.image_size)
        kwargs = spec["kwargs"]
    model = create(cfg.model, **kwargs)
    mean, std = list(bundle.mean), list(bundle.std)
    messages: list[str] = []
    if cfg.pretrained:
        from cnnlab.transfer import load_pretrained

        # arch names the torchvision weights to fetch; class_names decide whether the head
        # is kept (same classes) or replaced (a new task, even with the same class count).
        report = load_pretrained(
            model, cfg.pretrained, arch=cfg.model, class_names=bundle.class_names,
            info=pretrained,
        )
        messages.append(report.summary())
        expected = (report.input_size or [])[1:]
        if cfg.image_size is None and expected == list(bundle.image_size):
            size = "x".join(str(v) for v in expected)
            messages.append(f"input size {size}, as the pretrained weights expect (--image-size)")
        if report.normalization:  # the weights expect the statistics they were trained with
            mean, std = list(report.normalization["mean"]), list(report.normalization["std"])
            messages.append(f"normalization from the pretrained weights: mean {mean} std {std}")
    if cfg.freeze != "none":
        from cnnlab.transfer import freeze, trainable_summary

        freeze(model, cfg.freeze)
        messages.append(f"freeze {cfg.freeze}: {trainable_summary(model)}")
    if cfg.freeze_bn:
        from cnnlab.transfer import freeze_bn_stats

        messages.append(f"froze the statistics of {freeze_bn_stats(model)} batch-norm layers")
    return ModelSetup(model, spec, mean, std, messages)


def build_optimization(
    cfg: TrainConfig, model: nn.Module, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Optimizer over the trainable parameters (head/backbone lrs, no decay on 1-D params)."""
    from cnnlab.transfer import param_groups

    groups = param_groups(
        model,
        head_lr=cfg.head_lr if cfg.head_lr is not None else cfg.lr,
        backbone_lr=cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    if cfg.bias_lr_scale != 1.0:  # biases and norm parameters: param_groups' no-decay groups
        for group in groups:
            if group["name"].endswith("_no_decay"):
                group["lr"] *= cfg.bias_lr_scale
    optimizer = build_optimizer(
        groups, cfg.optimizer, cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov
    )
    epochs = cfg.epochs
    if cfg.max_steps is not None:  # the schedule spans the epochs that --max-steps reaches
        epochs = min(epochs, -(-cfg.max_steps // steps_per_epoch))
    scheduler = build_scheduler(
        optimizer,
        schedule=cfg.schedule,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=cfg.warmup_epochs,
        onecycle_pct=cfg.onecycle_pct,
        step_size=cfg.step_size,
        gamma=cfg.gamma,
    )
    return optimizer, scheduler


def unfreeze_all(
    cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> str:
    """Gradual unfreezing: make frozen layers trainable and hand them to the optimizer."""
    from cnnlab.transfer import add_param_groups, unfreeze

    names = unfreeze(model)
    lr = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr
    add_param_groups(
        optimizer, model, names, lr=lr, weight_decay=cfg.weight_decay, scheduler=scheduler
    )
    return f"unfroze {len(names)} parameter tensors (backbone lr {lr:g})"


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Any:
    """A zero-argument callable returning the autocast context for ``cfg.precision``."""
    if cfg.precision == "fp32":
        return None
    device_type = "cuda" if device.type == "cuda" else "cpu"  # mps: autocast via cpu rules
    dtype = torch.float16 if cfg.precision == "fp16" else torch.bfloat16

    def ctx() -> Any:
        return torch.autocast(device_type=device_type, dtype=dtype)

    return ctx


def grad_scaler(cfg: TrainConfig, device: torch.device) -> Any:
    """``torch.amp.GradScaler`` for fp16 (None otherwise): scales the loss so that small fp16
    gradients do not flush to zero, and skips a step whose gradients overflowed."""
    if cfg.precision != "fp16":
        return None
    return torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu")


def summary_json(model: nn.Module, input_size: list[int]) -> dict[str, Any] | None:
    """The model summary from cnnlab.inspect for ``summary.json`` (None when not available)."""
    try:
        from cnnlab.inspect import summary
    except ImportError:
        return None
    try:
        result = summary(model, input_size=(1, *input_size))
    except Exception as exc:  # the summary is a courtesy; never lose a run to it
        return {"error": f"{type(exc).__name__}: {exc}"}
    for attr in ("to_dict", "to_json"):
        if hasattr(result, attr):
            return getattr(result, attr)()
    return result if isinstance(result, dict) else {"text": str(result)}
