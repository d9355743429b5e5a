"""The training configuration: one dataclass, filled from defaults, a preset, YAML and CLI flags.

Precedence, lowest first: the defaults below < ``--preset NAME`` < ``--config run.yaml`` <
command-line flags (or keyword arguments of :func:`cnnlab.train.fit`). Every field is a YAML key
and a ``--flag`` (underscores become dashes; its help text is the field's ``metadata["help"]``),
and the effective config is saved to ``runs/<name>/config.yaml`` so that a run can be repeated
or resumed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
SPLITS = ("train", "val", "test")
CACHES = ("auto", "ram", "disk")
MONITORS = ("val_acc", "val_loss", "val_macro_f1", "val_balanced_acc")
SAMPLERS = ("shuffle", "balanced")
CLASS_WEIGHTS = ("none", "auto")
FLIP_MODES = ("random", "alternating")  # train.speedrun
TTA_MODES = ("none", "flip", "crops")  # cnnlab.tta.TTA_MODES (a leaf module; kept in step)


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None) -> Any:
    """A config field whose help text (``cnnlab train --help``) is kept in its own metadata.

    Example:
        >>> dataclasses.fields(TrainConfig)[0].metadata["help"][:6]
        'digits'
    """
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def field_help() -> dict[str, str]:
    """Map field name -> its help text, from each field's ``metadata["help"]``.

    Example:
        >>> field_help()["epochs"]
        'passes over the training split'
    """
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}


@dataclass
class TrainConfig:
    """Everything that defines a training run; the defaults train ``cnnlab train``'s main job.

    Example:
        >>> cfg = TrainConfig(epochs=3, lr=3e-3)
        >>> cfg.model, cfg.dataset
        ('simple_cnn', 'digits')
    """

    # --- data ---------------------------------------------------------------------------------
    dataset: str = option(
        "digits", "digits | mnist | fashion_mnist | cifar10 | cifar100 | folder:PATH | csv:PATH"
    )
    data_dir: str | None = option(
        None, "root of on-disk datasets (None: the data package's default)"
    )
    cache_dir: str | None = option(None, "where decoded uint8 tensor caches live (None: default)")
    cache: str = option(
        "auto", "folder/csv: ram | disk (memory-mapped store) | auto (disk when large)"
    )
    storage_size: int | None = option(
        None, "decoded size (None: image_size*256/224 from 128 px up)"
    )
    image_size: int | None = option(
        None, "square side, pixels (None: as --pretrained expects / the data)"
    )
    val_split: float = option(0.1, "fraction of the training images held out for validation")
    test_split: float = option(0.1, "fraction held out for test where the source has no test set")
    channels: int | None = option(None, "1 or 3 to convert images (None: the source's own)")
    download: bool = option(
        False, "fetch mnist/fashion_mnist/cifar10/cifar100 via torchvision if absent"
    )
    max_train_images: int | None = option(None, "use only the first N (shuffled) training images")
    augment: str = option(
        "auto", "auto (per dataset) | none | crop | crop-flip | ... (data.build_augment)"
    )

    # --- model --------------------------------------------------------------------------------
    model: str = option("simple_cnn", "a zoo name, torchvision:NAME or timm:NAME (`cnnlab models`)")
    model_args: dict[str, Any] = option(help="extra constructor kwargs", factory=dict)

    # --- transfer learning (cnnlab.transfer) --------------------------------------------------
    pretrained: str | None = option(
        None, "torchvision | timm | path to a .pth state dict / run / checkpoint"
    )
    freeze: str = option("none", "none | backbone | until:LAYER")
    unfreeze_at: int | None = option(None, "epoch (1-based) at which frozen layers start training")
    head_lr: float | None = option(None, "learning rate of the head (None: lr)")
    backbone_lr: float | None = option(None, "learning rate of the backbone (None: lr)")
    freeze_bn: bool = option(False, "every batch-norm layer keeps its loaded running statistics")

    # --- optimization -------------------------------------------------------------------------
    epochs: int = option(12, "passes over the training split")
    max_steps: int | None = option(
        None, "stop after this many optimizer steps (smoke runs, benchmarks)"
    )
    batch_size: int = option(
        64, "images per forward pass, global (split over torchrun's processes)"
    )
    accumulate: int = option(
        1, "forward/backward passes per optimizer step (step = batch x accumulate)"
    )
    optimizer: str = option("adamw", "adam | adamw | sgd")
    lr: float = option(3e-3, "peak learning rate (per image batch, not scaled with batch size)")
    momentum: float = option(0.9, "SGD momentum (Adam/AdamW: beta1)")
    nesterov: bool = option(False, "Nesterov momentum for SGD")
    weight_decay: float = option(
        5e-4, "L2 / decoupled decay; never applied to biases and norm weights"
    )
    schedule: str = option("onecycle", "onecycle | cosine | step | none  (stepped every batch)")
    warmup_epochs: float = option(
        0.0, "linear warm-up length for `cosine`, epochs (may be fractional)"
    )
    onecycle_pct: float = option(0.25, "fraction of all steps spent rising to `lr` in `onecycle`")
    step_size: int = option(10, "`step` schedule: epochs between decays")
    gamma: float = option(0.1, "`step` schedule: factor applied every `step_size` epochs")
    label_smoothing: float = option(0.0, "cross-entropy target smoothing, 0 = one-hot targets")
    grad_clip: float | None = option(
        None, "max global L2 norm of the gradients (None: no clipping)"
    )

    # --- the modern recipe (cnnlab.train.mix / ema / imbalance; data.policies for --augment) --
    mixup: float = option(0.0, "mixup Beta(alpha, alpha) concentration, 0 = off (timm: 0.8)")
    cutmix: float = option(0.0, "CutMix Beta(alpha, alpha) concentration, 0 = off (timm: 1.0)")
    mix_prob: float = option(
        1.0, "probability a batch is mixed (mixup or cutmix, 50/50 when both)"
    )
    ema: float | None = option(
        None, "decay of an exponential moving average of the weights, e.g. 0.999"
    )
    class_weights: str = option(
        "none", "none | auto (loss weights n / (K * n_class), sklearn 'balanced')"
    )
    sampler: str = option(
        "shuffle", "shuffle | balanced (each epoch draws every class equally often)"
    )
    monitor: str = option(
        "val_acc", "val_acc | val_loss | val_macro_f1 | val_balanced_acc (best, early stopping)"
    )
    min_delta: float = option(
        0.0, "an epoch is better only when it beats the best monitor value by this much"
    )

    # --- speed-run methods (cnnlab.train.speedrun; airbench, Jordan 2024) ---------------------
    whiten_init: bool = option(
        False, "fit the model's patch-whitening stem (speednet) to 5,000 training images first"
    )
    flip: str = option(
        "random", "random (as --augment says) | alternating (each image mirrored every other epoch)"
    )
    lookahead: str | None = option(
        None, "K,ALPHA: every K steps the slow weights move ALPHA towards the fast ones (5,0.5)"
    )
    bias_lr_scale: float = option(
        1.0, "learning-rate multiplier of biases and norm parameters (airbench: 64)"
    )
    tta: str = option("none", "test-time augmentation of the final evaluation: none | flip | crops")

    # --- speed --------------------------------------------------------------------------------
    device: str = option(
        "auto", "auto | cpu | cuda | cuda:N | mps (under torchrun: cuda:LOCAL_RANK)"
    )
    precision: str = option("fp32", "fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler)")
    sync_bn: bool = option(
        False, "under torchrun: batch norm statistics over all processes (CUDA)"
    )
    channels_last: bool = option(True, "NHWC memory format: faster convolutions on CPU and GPU")
    compile: bool = option(False, "torch.compile the model (slow to start; helps on GPUs)")
    threads: int | None = option(
        None, "CPU threads for torch ops (None: torch's default, one per core)"
    )

    # --- run control --------------------------------------------------------------------------
    seed: int = option(0, "seeds torch, numpy, python and the shuffling generator")
    patience: int | None = option(
        None, "stop after this many epochs without a better --monitor value"
    )
    out_dir: str = option("runs", "parent folder of run directories")
    name: str | None = option(None, "run directory name (None: <dataset>-<model>[-N])")
    eval_split: str | None = option("test", "split to evaluate the best checkpoint on at the end")
    report: bool = option(True, "write report.html at the end (when cnnlab.viz is installed)")
    tensorboard: bool = option(False, "also log to runs/<name>/tensorboard (needs tensorboard)")
    quiet: bool = option(False, "plain log lines only: no progress bar, no tables")
    preset: str | None = option(None, "named recipe applied under the explicit settings")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field; raises ValueError naming the field, its value and what is valid."""
        from cnnlab._validate import check_choice, check_int

        check_int("epochs", self.epochs, min_value=1)
        check_int("batch_size", self.batch_size, min_value=1)
        check_int("accumulate", self.accumulate, min_value=1)
        check_int("seed", self.seed, min_value=0)
        check_int("step_size", self.step_size, min_value=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        if not re.fullmatch(r"cuda:\d+", str(self.device)):
            check_choice("device", self.device, DEVICES)
        if self.eval_split is not None:
            check_choice("eval_split", self.eval_split, SPLITS)
        check_choice("cache", self.cache, CACHES)
        for name in ("patience", "unfreeze_at", "max_train_images", "image_size", "threads",
                     "max_steps", "storage_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), min_value=1)
        _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        _check_float("warmup_epochs", self.warmup_epochs, low=0.0)
        _check_float("onecycle_pct", self.onecycle_pct, low=0.0, high=1.0, high_open=True)
        _check_float("gamma", self.gamma, low=0.0, low_open=True)
        _check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_float("val_split", self.val_split, low=0.0, high=1.0, high_open=True)
        _check_float("test_split", self.test_split, low=0.0, high=1.0, high_open=True)
        if self.channels is not None:
            check_choice("channels", self.channels, (1, 3))
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        check_choice("tta", self.tta, TTA_MODES)
        check_choice("flip", self.flip, FLIP_MODES)
        _check_float("bias_lr_scale", self.bias_lr_scale, low=0.0, low_open=True)
        if self.lookahead is not None:
            from cnnlab.train.speedrun import parse_lookahead

            parse_lookahead(self.lookahead)
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("monitor", self.monitor, MONITORS)
        _check_float("mixup", self.mixup, low=0.0)
        _check_float("cutmix", self.cutmix, low=0.0)
        _check_float("mix_prob", self.mix_prob, low=0.0, high=1.0)
        _check_float("min_delta", self.min_delta, low=0.0)
        if self.ema is not None:
            _check_float("ema", self.ema, low=0.0, high=1.0, low_open=True, high_open=True)
        for name in ("grad_clip", "head_lr", "backbone_lr"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), low=0.0, low_open=True)
        if not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a mapping, got {self.model_args!r}")
        for name in ("dataset", "model", "out_dir", "name", "data_dir", "cache_dir",
                     "pretrained", "augment", "lookahead"):  # fmt: skip
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"{name} must be a string, got {value!r} ({type(value).__name__}); "
                    f"quote it in YAML: {name}: \"{value}\""
                )
        if self.freeze not in ("none", "backbone") and not str(self.freeze).startswith("until:"):
            raise ValueError(
                f"freeze must be 'none', 'backbone' or 'until:LAYER', got {self.freeze!r}"
            )
        if self.nesterov and self.optimizer != "sgd":
            raise ValueError(f"nesterov=True needs optimizer='sgd', got {self.optimizer!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (YAML-ready)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML text, keys in declaration order."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def field_names() -> tuple[str, ...]:
    """Names of every :class:`TrainConfig` field, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def check_keys(values: Mapping[str, Any], source: str) -> None:
    """Raise ValueError naming unknown keys of ``values`` and listing the valid ones."""
    valid = field_names()
    unknown = [k for k in values if k not in valid]
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys are: "
            + ", ".join(valid)
        )


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run config YAML file into a dict of checked keys (values checked later).

    Example:
        >>> read_yaml("run.yaml")  # doctest: +SKIP
        {'epochs': 5, 'lr': 0.01}
    """
    from cnnlab._yaml import read_yaml_mapping

    path = Path(path)
    values = read_yaml_mapping(path)
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    check_keys(values, f"config file {str(path)!r}")
    return values


def build_config(
    overrides: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None
) -> TrainConfig:
    """Merge defaults < preset < YAML file < ``overrides`` into a checked :class:`TrainConfig`.

    Example:
        >>> build_config({"epochs": 2}).epochs
        2
    """
    from cnnlab.train.presets import preset_values

    overrides = dict(overrides or {})
    check_keys(overrides, "training options")
    file_values = read_yaml(config_file) if config_file is not None else {}
    preset = overrides.get("preset", file_values.get("preset"))
    values = {**preset_values(preset), **file_values, **overrides}
    try:
        return TrainConfig(**values)
    except TypeError as exc:  # e.g. a YAML list where a number belongs
        raise ValueError(f"invalid training options: {exc}") from None


def _check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:  # value != value catches NaN
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must be {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")
    return float(value)
