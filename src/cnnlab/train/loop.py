"""``fit``: train a classifier into a run directory, resumable after any epoch.

After every epoch the run directory receives ``last.safetensors`` (and ``best.safetensors`` when
the ``--monitor`` metric improved by more than ``--min-delta``; with ``--ema`` also
``ema.safetensors`` when the EMA weights' own metric improved, and ``best.json`` naming the better
of the two), ``train_state.pt`` (weights, optimizer, scheduler, EMA, every RNG and the epoch, in
one atomic file, so a kill at any moment leaves a consistent state) and ``metrics.csv``.
``--patience`` counts epochs in which neither the raw nor the EMA weights improved.
``fit(resume="runs/X")`` reloads that state and continues; on the CPU with the same seed the
result is bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.checkpoint import (
    BEST_FILE,
    STATE_FILE,
    atomic_write_text,
    load_state,
    read_best_choice,
    remove_stale_temporaries,
    save_checkpoint,
    save_state,
)
from cnnlab.train import _setup, distributed
from cnnlab.train._batches import Normalizer, predict_logits
from cnnlab.train._epoch import EpochContext, TrainingDiverged, num_train_steps, train_epoch
from cnnlab.train._progress import SilentPrinter, TrainPrinter
from cnnlab.train._rng import get_rng_state, seed_everything, set_rng_state
from cnnlab.train._rundir import create_run_dir, write_metrics
from cnnlab.train.config import TrainConfig, build_config, check_keys, read_yaml
from cnnlab.train.distributed import World
from cnnlab.train.ema import EMA_CHECKPOINT
from cnnlab.train.monitor import best_choice, is_better, monitored, score_split, split_metrics
from cnnlab.train.recipe import build_recipe
from cnnlab.train.speedrun import Lookahead, alternating_flip, parse_lookahead, whiten_stem

# Settings that may change when a run is resumed; anything else would silently change the run.
RESUME_OVERRIDABLE = ("epochs", "patience", "device", "quiet", "report", "eval_split",
                      "tensorboard", "data_dir", "cache_dir", "threads", "cache")
LAUNCH_FILE = "launch.json"  # how the run was launched: processes, precision, batch, torchrun id
_RESIDENT_BYTES = 2 << 30  # keep a split on the GPU when its uint8 images fit in 2 GiB
_PREFETCH = 3  # batches a thread gathers ahead from a disk store


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        run_dir: the run directory.
        config: the effective configuration.
        history: one dict per epoch (the rows of ``metrics.csv``).
        best_epoch: epoch of ``best.safetensors`` (None if no epoch finished).
        stopped: ``"completed"``, ``"early_stopping"``, ``"max_steps"`` or ``"already_complete"``.
        eval: the final evaluation's metrics (``eval/<split>/metrics.json``), or None.
    """

    run_dir: Path
    config: TrainConfig
    history: list[dict[str, Any]]
    best_epoch: int | None
    stopped: str
    eval: dict[str, Any] | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        """Headline numbers: best epoch's validation metrics, last epoch's, final evaluation."""
        out: dict[str, Any] = {"epochs_run": len(self.history), "best_epoch": self.best_epoch}
        if self.history:
            best = next((r for r in self.history if r["epoch"] == self.best_epoch),
                        self.history[-1])
            out.update(best_val_acc=best["val_acc"], best_val_loss=best["val_loss"],
                       last_train_acc=self.history[-1]["train_acc"],
                       last_train_loss=self.history[-1]["train_loss"],
                       train_time_s=sum(r["epoch_time_s"] for r in self.history))
        if self.eval:
            split = self.eval.get("split", "test")
            out[f"{split}_acc"] = self.eval["accuracy"]
            out[f"{split}_loss"] = self.eval.get("loss")
            if self.eval.get("top5_accuracy") is not None:
                out[f"{split}_top5_acc"] = self.eval["top5_accuracy"]
        return out


def fit(
    config: TrainConfig | None = None,
    *,
    data: Any = None,
    resume: str | os.PathLike | None = None,
    config_file: str | os.PathLike | None = None,
    **options: Any,
) -> TrainResult:
    """Train a model; every :class:`TrainConfig` field can be given as a keyword.

    Args:
        config: a full config (keywords in ``options`` override its fields).
        data: a ready ``cnnlab.data.DataBundle`` instead of loading ``config.dataset``.
        resume: a run directory to continue from its last finished epoch.
        config_file: a YAML file of config fields (under ``options``, over a preset).
        **options: config fields, e.g. ``epochs=5, lr=1e-3, model="simple_cnn_bn"``.

    Returns:
        A :class:`TrainResult` with ``run_dir``, per-epoch ``history`` and ``metrics``.

    Raises:
        ValueError: a bad option (named, with the valid values).
        TrainingDiverged: the loss became NaN/inf (the last good checkpoint is kept).

    Example:
        >>> from cnnlab.train import fit
        >>> result = fit(epochs=2, image_size=16, out_dir="/tmp/runs", quiet=True)  # doctest: +SKIP
        >>> result.metrics["test_acc"] > 0.8  # doctest: +SKIP
        True
    """
    check_keys(options, "fit()")
    world = distributed.init_from_env()
    try:
        result = _fit(config, data, resume, config_file, options, world)
        # No rank leaves the group (closing its connections) while a peer is still inside a
        # collective: gloo would abort that peer.
        distributed.barrier()
        return result
    finally:
        distributed.finish(world)


def _fit(
    config: TrainConfig | None, data: Any, resume: str | os.PathLike | None,
    config_file: str | os.PathLike | None, options: dict[str, Any], world: World,
) -> TrainResult:
    if resume is not None:
        if config is not None or config_file is not None:
            raise ValueError("resume continues a run with its saved config; pass options only")
        return _resume(Path(resume), data, options, world)
    if config is None:
        cfg = build_config(options, config_file)
    else:
        cfg = dataclasses.replace(config, **options) if options else config.validate()
    restarted = distributed.on_main(lambda: _restarted_run(cfg))
    if restarted is not None:  # torchrun restarted the group: continue the run it was training
        return _resume(Path(restarted), data, options, world)
    _check_world(cfg, world)
    printer = _printer(cfg.quiet, world)
    if data is not None and getattr(data, "name", None) and data.name != cfg.dataset:
        cfg = dataclasses.replace(cfg, dataset=str(data.name))  # config.yaml says what trained
    pretrained = _setup.pretrained_source(cfg)  # read once: for the data and for the model
    bundle = data if data is not None else _load_bundle(cfg, pretrained)

    def new_run_dir() -> str:
        run_dir = create_run_dir(cfg.out_dir, cfg.dataset, cfg.model, cfg.name)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        atomic_write_text(run_dir / "data.json", json.dumps(_data_json(bundle), indent=2))
        return str(run_dir)

    run_dir = Path(distributed.on_main(new_run_dir))
    try:
        return _Run(cfg, run_dir, bundle, printer, state=None, pretrained=pretrained,
                    world=world).run()
    except BaseException:
        # A run that stops before its first checkpoint (a bad --pretrained, a model that does
        # not fit the data) holds nothing worth keeping: don't leave an empty run behind.
        if world.is_main and not (run_dir / STATE_FILE).exists() and not any(
                run_dir.glob("*.safetensors")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _resume(run_dir: Path, data: Any, options: dict[str, Any], world: World) -> TrainResult:
    # Rank 0 alone reads the run directory and hands config and state to the others.
    saved, state, removed = distributed.on_main(lambda: _read_resume(run_dir, options))
    cfg = TrainConfig(**{**saved, **options})
    trained_by = int(state.get("world_size", 1))
    how = ("plain cnnlab train" if trained_by == 1
           else f"torchrun --nproc-per-node={trained_by} in all")
    if trained_by != world.world_size:
        raise ValueError(
            f"cannot resume {str(run_dir)!r} with {world.world_size} process(es): it was trained "
            f"by {trained_by}, and each process's random streams (augmentation, dropout) are "
            f"saved for that count; resume it with {trained_by} "
            f"({how})"
        )
    _check_world(cfg, world)
    printer = _printer(cfg.quiet, world)
    if state["epoch"] >= cfg.epochs:
        printer.log(
            f"run {run_dir} already finished all {cfg.epochs} epochs; raise --epochs to "
            f"continue it (e.g. --resume {run_dir} --epochs {cfg.epochs + 5})"
        )
    if removed:
        printer.log(f"removed {removed} temporary file(s) left by an interrupted write")
    printer.log(f"resuming {run_dir} after epoch {state['epoch']}")
    if world.is_main:
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    pretrained = _setup.pretrained_source(cfg)
    bundle = data if data is not None else _load_bundle(cfg, pretrained)
    return _Run(cfg, run_dir, bundle, printer, state=state, pretrained=pretrained,
                world=world).run()


def _read_resume(
    run_dir: Path, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], int]:
    # (saved config, training state, temporary files removed); rank 0 only.
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(
            f"cannot resume {str(run_dir)!r}: no config.yaml there (is it a run directory "
            "made by 'cnnlab train'?)"
        )
    saved = read_yaml(run_dir / "config.yaml")
    changed = [k for k, v in options.items() if k not in RESUME_OVERRIDABLE and saved.get(k) != v]
    if changed:
        raise ValueError(
            f"--resume continues {str(run_dir)!r} with its saved settings; these cannot change: "
            f"{', '.join(changed)} (changeable: {', '.join(RESUME_OVERRIDABLE)})"
        )
    TrainConfig(**{**saved, **options})  # check the merged settings before loading the state
    state_file = run_dir / STATE_FILE
    if not state_file.is_file():
        remove_stale_temporaries(run_dir)
        raise FileNotFoundError(
            f"cannot resume {str(run_dir)!r}: no {STATE_FILE} (no epoch finished before it "
            f"stopped); start it again instead (delete {run_dir} or pick another --name)"
        )
    state = load_state(state_file)
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise ValueError(f"training state {str(state_file)!r} holds no epoch number; it is corrupt")
    return saved, state, remove_stale_temporaries(run_dir)


def _restarted_run(cfg: TrainConfig) -> str | None:
    """After torchrun restarted the group: the run directory this launch was training, if any.

    A run directory records the launch's rendezvous id in ``launch.json``; one that holds a
    training state is resumed, one killed before its first epoch ended is started afresh.
    """
    run_id = distributed.elastic_run_id()
    if distributed.restart_count() == 0 or run_id is None:
        return None
    for launch in sorted(Path(cfg.out_dir).glob(f"*/{LAUNCH_FILE}")):
        try:
            if json.loads(launch.read_text(encoding="utf-8")).get("torchrun_run_id") != run_id:
                continue
        except (OSError, ValueError):
            continue
        if (launch.parent / STATE_FILE).is_file():
            return str(launch.parent)
        shutil.rmtree(launch.parent, ignore_errors=True)  # no epoch finished: start again
    return None


def _check_world(cfg: TrainConfig, world: World) -> None:
    if cfg.batch_size % world.world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} is the global batch and must divide by the number of "
            f"processes ({world.world_size}); use a multiple of {world.world_size}, e.g. "
            f"{max(1, cfg.batch_size // world.world_size) * world.world_size}"
        )


def _printer(quiet: bool, world: World) -> TrainPrinter:
    return TrainPrinter(quiet) if world.is_main else SilentPrinter()


def _load_bundle(cfg: TrainConfig, pretrained: Any) -> Any:
    # Rank 0 first (it writes the decoded-image cache), then the others read it.
    return distributed.on_main(lambda: _setup.load_bundle(cfg, pretrained), then_others=True)


def _data_json(bundle: Any) -> dict[str, Any]:
    return bundle.to_json() if hasattr(bundle, "to_json") else {"source": str(bundle)}


class _Run:
    """One run, from the first (or resumed) epoch to the final evaluation."""

    def __init__(
        self, cfg: TrainConfig, run_dir: Path, bundle: Any, printer: TrainPrinter,
        state: dict[str, Any] | None, pretrained: Any = None, world: World | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.bundle, self.printer = cfg, run_dir, bundle, printer
        self.state = state
        self.pretrained = pretrained  # cnnlab.transfer.PretrainedInfo of --pretrained, or None
        self.world = world or World()
        self.device = distributed.resolve_device(cfg.device, self.world, _setup.resolve_device)
        self.autocast = _setup.autocast_factory(cfg, self.device)
        self.scaler = _setup.grad_scaler(cfg, self.device)

    def run(self) -> TrainResult:
        threads = torch.get_num_threads()
        if self.cfg.threads is not None:
            torch.set_num_threads(self.cfg.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> TrainResult:
        cfg, printer, world = self.cfg, self.printer, self.world
        # Process r seeds torch/NumPy/Python with seed + r (its own dropout and augmentation
        # streams; rank 0's are a single process's), the epoch order with seed on every rank.
        generator = seed_everything(cfg.seed + world.rank)
        augment_generator = None
        if world.distributed:
            generator.manual_seed(cfg.seed)
            augment_generator = torch.Generator().manual_seed(cfg.seed * 65536 + world.rank + 1)
        setup = _setup.build_model(cfg, self.bundle, self.pretrained)
        model = setup.model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.tta != "none" and world.distributed:
            raise ValueError(f"--tta {cfg.tta} (the final evaluation's) runs in one process; "
                             f"under torchrun leave it out and run 'cnnlab evaluate RUN --tta "
                             f"{cfg.tta}' after training")
        if cfg.sync_bn and world.distributed:
            if self.device.type != "cuda":
                raise ValueError("--sync-bn needs CUDA devices (torch's SyncBatchNorm runs on "
                                 "GPUs only); leave it out on the CPU")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train, val = self._resident(self.bundle.train), self._resident(self.bundle.val)
        if len(train) == 0:
            raise ValueError(f"dataset {cfg.dataset!r} has no training images")
        steps = num_train_steps(len(train), cfg.batch_size, cfg.accumulate, world.world_size)
        optimizer, scheduler = _setup.build_optimization(cfg, model, steps)
        la = parse_lookahead(cfg.lookahead)
        self.lookahead = Lookahead(model, *la).attach(optimizer) if la else None
        input_size = tuple(getattr(self.bundle, "input_size", self.bundle.image_size))
        self.meta_base = {
            "model": setup.spec,
            "class_names": list(self.bundle.class_names),
            "normalization": {"mean": setup.mean, "std": setup.std},
            "input_size": [self.bundle.in_channels, *input_size],
            "training": self._training_info(),
        }
        if getattr(self.bundle, "crop_size", None) is not None:  # evaluate as resize + crop
            self.meta_base["resize_size"] = int(min(self.bundle.image_size))
        history: list[dict[str, Any]] = []
        best = {"epoch": None, "val_acc": -math.inf, "val_loss": math.inf}
        bad_epochs, start_epoch = 0, 1
        augment = self._augment()
        recipe = build_recipe(cfg, model, train.labels, self.bundle.num_classes, self.device,
                              repr(augment) if augment is not None else "none")
        best_ema: dict[str, Any] = {"epoch": None}
        if self.state is not None:
            s = self.state
            if cfg.unfreeze_at is not None and s["epoch"] >= cfg.unfreeze_at:
                _setup.unfreeze_all(cfg, model, optimizer, scheduler)
            model.load_state_dict(s["model"])
            optimizer.load_state_dict(s["optimizer"])
            scheduler.load_state_dict(s["scheduler"])
            set_rng_state(s["rng_ranks"][world.rank] if world.distributed else s["rng"],
                          generator)
            if augment_generator is not None:
                augment_generator.set_state(s["rng_ranks"][world.rank]["augment"])
            if self.scaler is not None and s.get("scaler"):
                self.scaler.load_state_dict(s["scaler"])
            history, best, bad_epochs = list(s["history"]), dict(s["best"]), s["bad_epochs"]
            if self.lookahead is not None:
                self.lookahead.load_state_dict(s["lookahead"])
            if recipe.ema is not None:
                recipe.ema.load_state_dict(s["ema"])
                best_ema = dict(s["best_ema"])
            start_epoch = s["epoch"] + 1
            if world.is_main:  # drop rows of a lost epoch
                write_metrics(self.run_dir / "metrics.csv", history)
        else:
            for message in setup.messages:
                printer.log(message)
            if world.is_main:
                self._write_summary(model)
        if world.is_main:
            atomic_write_text(self.run_dir / LAUNCH_FILE,
                              json.dumps(self._training_info(launch=True), indent=2))
        self._print_start(model, start_epoch)
        printer.log(recipe.describe())
        self.recipe = recipe
        crop = getattr(self.bundle, "crop_size", None)
        normalizer = Normalizer(setup.mean, setup.std, self.device, cfg.channels_last, crop)
        if cfg.whiten_init and self.state is None:  # resumed runs carry the fitted stem
            printer.log(whiten_stem(model, train.images, normalizer, cfg.seed))
        stored = getattr(train.images, "is_stored", False)
        self.augment_generator = augment_generator
        ctx = EpochContext(
            model=model, images=train.images, labels=train.labels, normalizer=normalizer,
            augment=augment, optimizer=optimizer, scheduler=scheduler,
            criterion=recipe.criterion,
            generator=generator, batch_size=cfg.batch_size, grad_clip=cfg.grad_clip,
            autocast=self.autocast, sync_every=1 if self.device.type == "cpu" else 25,
            max_steps=cfg.max_steps, prefetch=_PREFETCH if stored else 0,
            steps_done=sum(r.get("steps", steps) for r in history),
            mix=recipe.mixer, ema=recipe.ema, sampler=recipe.sampler,
            accumulate=cfg.accumulate, world=world, augment_generator=augment_generator,
            scaler=self.scaler,
        )
        self._wrap(ctx, model)
        # Validation runs the plain model under torchrun: each process scores its own share.
        eval_model = model if world.distributed else ctx.model
        flips = alternating_flip(cfg, train.images, augment)
        writer = self._tensorboard() if world.is_main else None
        started, started_cpu = time.perf_counter(), time.process_time()
        stopped = "completed" if start_epoch <= cfg.epochs else "already_complete"
        if cfg.max_steps is not None and ctx.steps_done >= cfg.max_steps:
            stopped, start_epoch = "already_complete", cfg.epochs + 1  # resumed after the end
        try:
            for epoch in range(start_epoch, cfg.epochs + 1):
                if cfg.unfreeze_at == epoch:
                    printer.log(_setup.unfreeze_all(cfg, model, optimizer, scheduler))
                    self._wrap(ctx, model)  # DDP must know the newly trainable parameters
                printer.start_epoch(epoch, cfg.epochs, steps, optimizer.param_groups[0]["lr"])
                if flips is not None:  # --flip alternating: this epoch's mirrored copies
                    ctx.images = flips.images(epoch)
                try:
                    row = {"epoch": epoch, **train_epoch(ctx, printer.step, epoch)}
                except TrainingDiverged as exc:
                    raise TrainingDiverged(
                        self._diverged_message(exc, history), self.run_dir
                    ) from None
                finally:
                    printer.close()
                row["steps"] = ctx.steps_done - sum(r.get("steps", steps) for r in history)
                if row.get("skipped_steps"):
                    printer.log(f"fp16: {row['skipped_steps']} of {row['steps']} optimizer "
                                "steps skipped (inf/NaN gradients); loss scale now "
                                f"{self.scaler.get_scale():g}")
                row.update(self._score(eval_model, val, normalizer))
                if recipe.ema is not None:  # the EMA weights, validated beside the raw ones
                    ema_row = self._score(recipe.ema.module, val, normalizer)
                    row.update({f"ema_{k}": v for k, v in ema_row.items()})
                # Seconds since this session's first epoch began (wall, CPU); not in metrics.csv.
                row["elapsed_s"] = time.perf_counter() - started
                row["elapsed_cpu_s"] = time.process_time() - started_cpu
                history.append(row)
                improved = is_better(row, best, cfg.monitor, cfg.min_delta)
                if improved:
                    best = {"epoch": epoch, **monitored(row)}
                ema_improved = recipe.ema is not None and is_better(
                    monitored(row, "ema_"), best_ema, cfg.monitor, cfg.min_delta)
                if ema_improved:
                    best_ema = {"epoch": epoch, **monitored(row, "ema_")}
                bad_epochs = 0 if improved or ema_improved else bad_epochs + 1
                self._save_epoch(model, optimizer, scheduler, generator, row, improved,
                                 history, best, bad_epochs, ema_improved, best_ema)
                if writer is not None:
                    for key, value in row.items():
                        if key != "epoch":
                            writer.add_scalar(key, value, epoch)
                printer.end_epoch(row, cfg.epochs, improved)
                if recipe.ema is not None or cfg.monitor not in ("val_acc", "val_loss"):
                    printer.log(_monitor_line(row, cfg.monitor, recipe.ema is not None,
                                              ema_improved))
                if cfg.max_steps is not None and ctx.steps_done >= cfg.max_steps:
                    stopped = "max_steps"
                    printer.log(f"stopped after --max-steps {cfg.max_steps} optimizer steps "
                                f"(epoch {epoch})")  # fmt: skip
                    break
                # Every rank computed the same numbers; rank 0's decision is broadcast anyway,
                # so that no process can go on training while another stops.
                if distributed.broadcast_object(
                        cfg.patience is not None and bad_epochs >= cfg.patience):
                    stopped = "early_stopping"
                    printer.log(
                        f"early stopping: no better {cfg.monitor} for {cfg.patience} "
                        f"epochs (best {best[cfg.monitor]:.4f} at epoch {best['epoch']})"
                    )
                    break
        finally:
            if writer is not None:
                writer.close()
        return self._finish(history, best, stopped)

    # --- pieces ---------------------------------------------------------------------------------

    def _wrap(self, ctx: EpochContext, model: nn.Module) -> None:
        """The module the epoch calls: DDP over ``model`` under torchrun, compiled if asked."""
        module: nn.Module = model
        ctx.no_sync = None
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(model, device_ids=ids)
            ctx.no_sync = module.no_sync
        ctx.model = torch.compile(module) if self.cfg.compile else module

    def _training_info(self, launch: bool = False) -> dict[str, Any]:
        """Precision, processes, accumulation and batch sizes (checkpoint metadata, launch.json)."""
        cfg, world = self.cfg, self.world
        info: dict[str, Any] = {
            "precision": cfg.precision, "world_size": world.world_size,
            "accumulate": cfg.accumulate, "batch_size": cfg.batch_size,
            "per_process_batch": cfg.batch_size // world.world_size,
            "effective_batch": cfg.batch_size * cfg.accumulate,
        }
        if launch:
            info.update(device=str(self.device), backend=(
                str(torch.distributed.get_backend()) if world.distributed else None),
                torchrun_run_id=distributed.elastic_run_id(),
                torchrun_restart_count=distributed.restart_count())
        return info

    def _score(self, model: nn.Module, split: Any, normalizer: Normalizer) -> dict[str, float]:
        """The validation metrics of ``model`` on ``split`` (:func:`monitor.split_metrics`).

        Under torchrun each process scores its contiguous share (no padding) of the split with
        the plain model, and the logits are gathered in image order, so every rank computes the
        same metrics (macro F1 and balanced accuracy need every prediction, not sums) over every
        image exactly once, and takes the same best-checkpoint and early-stopping decisions.
        """
        world = self.world
        if not world.distributed or len(split.labels) == 0:
            return score_split(model, split.images, split.labels, normalizer, self.autocast)
        n = len(split.labels)
        lo, hi = distributed.shard_bounds(n, world)
        local = (predict_logits(model, split.images[lo:hi], normalizer, autocast=self.autocast)
                 if hi > lo else torch.zeros(0, self.bundle.num_classes))
        logits = distributed.gather_rows(local.float(), n, world)  # (N, K) on every rank
        return split_metrics(logits, split.labels)

    def _resident(self, split: Any) -> Any:
        """Move a split to the GPU once when it fits, so batches never cross the bus."""
        if self.device.type != "cpu" and split.images.numel() <= _RESIDENT_BYTES:
            return split.to(self.device)
        return split

    def _augment(self) -> nn.Module | None:
        from cnnlab.data import build_augment

        crop = getattr(self.bundle, "crop_size", None)
        name = self.cfg.augment
        if name == "auto" and crop is not None:  # stored larger: torchvision's ImageNet recipe
            name = "rrc-flip"
        aug = build_augment(name, crop or self.bundle.image_size, source=self.cfg.dataset)
        if crop is not None:
            aug.size = crop  # random (resized) crops of the stored picture at the model's size
        return None if getattr(aug, "is_identity", False) else aug.to(self.device).train()

    def _tensorboard(self) -> Any:
        if not self.cfg.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError(
                "--tensorboard needs the tensorboard package, which is not installed; "
                "install it with 'pip install tensorboard' or leave out --tensorboard"
            ) from None
        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def _write_summary(self, model: nn.Module) -> None:
        summary = _setup.summary_json(model, self.meta_base["input_size"])
        if summary is not None:
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2,
                                                                         default=str))

    def _print_start(self, model: nn.Module, start_epoch: int) -> None:
        n_params = sum(p.numel() for p in model.parameters())
        summary = getattr(self.bundle, "summary", None)
        if summary is not None:
            self.printer.log(summary())
        epochs = (f"epochs {start_epoch}-{self.cfg.epochs}" if start_epoch <= self.cfg.epochs
                  else "no epochs left to train")
        self.printer.log(
            f"model {self.cfg.model} ({n_params:,} parameters) on {self.device}, "
            f"{self.cfg.precision}{', channels_last' if self.cfg.channels_last else ''}"
            f"{self._scale_text()}; "
            f"{epochs}; run directory {self.run_dir}"
        )

    def _scale_text(self) -> str:
        cfg, w = self.cfg, self.world
        parts = []
        if w.distributed:
            parts.append(f"{w.world_size} processes x {cfg.batch_size // w.world_size} images")
        if cfg.accumulate > 1:
            parts.append(f"{cfg.accumulate} accumulation steps")
        if parts:
            parts.append(f"effective batch {cfg.batch_size * cfg.accumulate}")
        return (", " + ", ".join(parts)) if parts else ""

    def _save_epoch(
        self, model: nn.Module, optimizer: Any, scheduler: Any, generator: torch.Generator,
        row: dict[str, Any], improved: bool, history: list[dict[str, Any]],
        best: dict[str, Any], bad_epochs: int, ema_improved: bool = False,
        best_ema: dict[str, Any] | None = None,
    ) -> None:
        # Order: the resume state (one atomic file with the weights) first, then checkpoints
        # and metrics; a kill in between leaves a state that resumes to the same result.
        # Under torchrun every process's random streams go to rank 0, the only writer; the
        # others wait at the barrier until the files are complete. The EMA is the same on
        # every rank (it averages parameters DDP keeps in sync), so rank 0's is saved.
        rng = get_rng_state(generator)
        if self.augment_generator is not None:
            rng["augment"] = self.augment_generator.get_state()
        every_rng = distributed.all_gather_object(rng) if self.world.distributed else None
        ema = self.recipe.ema
        if self.world.is_main:
            state = {
                "epoch": row["epoch"], "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng, "history": history, "best": best, "bad_epochs": bad_epochs,
                "world_size": self.world.world_size,
                **({"ema": ema.state_dict(), "best_ema": best_ema} if ema is not None else {}),
                **({"lookahead": self.lookahead.state_dict()}
                   if self.lookahead is not None else {}),
            }
            if every_rng is not None:
                state["rng_ranks"] = every_rng
            if self.scaler is not None:
                state["scaler"] = self.scaler.state_dict()
            save_state(self.run_dir / STATE_FILE, state)
            meta = {**self.meta_base, "epoch": row["epoch"], "metrics": row,
                    "recipe": self.recipe.info, "weights": "raw"}
            save_checkpoint(self.run_dir / "last.safetensors", model, meta)
            if improved:
                save_checkpoint(self.run_dir / "best.safetensors", model, meta)
            if ema_improved:
                save_checkpoint(self.run_dir / EMA_CHECKPOINT, ema.module,
                                {**meta, "weights": "ema", "ema_decay": ema.decay})
            if ema is not None:
                atomic_write_text(self.run_dir / BEST_FILE, json.dumps(
                    best_choice(best, best_ema or {}, self.cfg.monitor), indent=2))
            write_metrics(self.run_dir / "metrics.csv", history)
        distributed.barrier()

    def _diverged_message(self, exc: Exception, history: list[dict[str, Any]]) -> str:
        last = self.run_dir / "last.safetensors"
        kept = (f"the last good checkpoint is {last} (epoch {history[-1]['epoch']})"
                if history else "no epoch finished, so there is no checkpoint")
        return (f"{exc}; {kept}. Try a lower --lr (now {self.cfg.lr:g}), --grad-clip 1.0, "
                "or --precision fp32")

    def _finish(self, history: list[dict[str, Any]], best: dict[str, Any],
                stopped: str) -> TrainResult:
        cfg, printer = self.cfg, self.printer
        result = TrainResult(self.run_dir, cfg, history, best["epoch"], stopped)
        if history and best["epoch"] is not None:
            printer.log(f"best {cfg.monitor} {best[cfg.monitor]:.4f} at epoch "
                        f"{best['epoch']} (best.safetensors)")
            choice = read_best_choice(self.run_dir)
            if choice is not None:
                doc = json.loads((self.run_dir / BEST_FILE).read_text(encoding="utf-8"))
                printer.log(f"EMA weights: best {cfg.monitor} {doc['ema']['value']:.4f} at "
                            f"epoch {doc['ema']['epoch']} ({EMA_CHECKPOINT}); evaluate, predict "
                            f"and export use {choice.name} ({doc['weights']} weights)")
        split = cfg.eval_split
        if split is not None and history:
            available = self.bundle.splits() if hasattr(self.bundle, "splits") else {}
            if split in available and len(available[split]) > 0:
                result.eval = self._final_eval(split, available[split])
                e = result.eval
                top5 = (f", top-5 {e['top5_accuracy']:.4f}"
                        if e.get("top5_accuracy") is not None else "")
                printer.log(f"{split} accuracy {e['accuracy']:.4f}{top5} "
                            f"({e['num_images']} images, eval/{split}/)")
        if cfg.report and self.world.is_main:
            self._report()
        distributed.barrier()  # the run directory is complete before any process returns
        printer.log(f"run directory: {self.run_dir}")
        printer.log(f"next: cnnlab evaluate {self.run_dir}  |  cnnlab predict {self.run_dir} "
                    "IMAGE_OR_DIR")
        return result

    def _final_eval(self, split: str, data: Any) -> dict[str, Any]:
        """Score the best checkpoint on ``split``; under torchrun each process scores its share.

        Rank 0 reads the checkpoint and hands its weights to the others; their logits are
        gathered in image order (no padding, so each image counts once) and rank 0 scores and
        writes ``eval/<split>/``; every rank returns the same metrics.
        """
        from cnnlab.evaluation import evaluate

        if not self.world.distributed:
            return evaluate(self.run_dir, split=split, data=self.bundle,
                            device=str(self.device), tta=self.cfg.tta).metrics
        from cnnlab.checkpoint import build_model, read_checkpoint, resolve_checkpoint
        from cnnlab.run import model_logits

        weights, meta = distributed.on_main(
            lambda: read_checkpoint(resolve_checkpoint(self.run_dir, "best")))
        model = build_model(meta)
        model.load_state_dict(weights)
        model.to(self.device).eval()
        norm = meta["normalization"]
        lo, hi = distributed.shard_bounds(len(data), self.world)
        local = model_logits(model, data.images[lo:hi], norm["mean"], norm["std"],
                             size=getattr(self.bundle, "crop_size", None))
        logits = distributed.gather_rows(local.reshape(hi - lo, -1), len(data), self.world)
        return distributed.on_main(lambda: evaluate(
            self.run_dir, split=split, data=self.bundle, device=str(self.device),
            logits=logits).metrics)

    def _report(self) -> None:
        try:
            from cnnlab.viz.report import write_report
        except ImportError:
            return
        try:
            path = write_report(self.run_dir)
            self.printer.log(f"report: {path}")
        except Exception as exc:  # a figure failing must not lose a finished run
            self.printer.log(f"report not written ({type(exc).__name__}: {exc})")


def _monitor_line(row: dict[str, Any], monitor: str, ema: bool, ema_improved: bool) -> str:
    """The epoch's monitored metric, and the EMA model's validation, as one log line."""
    parts = [f"  {monitor} {row[monitor]:.4f}"]
    if ema:
        parts.append(f"EMA val loss {row['ema_val_loss']:.4f} acc {row['ema_val_acc']:.4f} "
                     f"{monitor} {row['ema_' + monitor]:.4f}{' *' if ema_improved else ''}")
    return "  |  ".join(parts)
