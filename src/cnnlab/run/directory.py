"""``Run``: the one owner of a run directory (see docs/run-directory.md).

Every command that reads a finished run (evaluate, predict, export, viz, report) goes through
this type: its paths, the validated reader of ``config.yaml``, ``data.json`` and the checkpoint
metadata, loading the model back and reloading the data exactly as it was trained.

The model's input size has one source of truth: the checkpoint's ``input_size`` (``data.json``
only for a run that has no checkpoint yet).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.checkpoint import CHECKPOINT_SUFFIX, STATE_FILE, read_metadata, resolve_checkpoint
from cnnlab.run.eval_files import EVAL_ORDER, read_json

# Which saved weights a run offers: "best" resolves through best.json where the run trained an
# EMA of its weights (the better of best.safetensors and ema.safetensors; cnnlab.train.ema).
CHECKPOINTS = ("best", "last", "ema")

# config.yaml keys that decide how the data was loaded, with the types they must have.
_DATA_KEYS: dict[str, tuple[type, ...]] = {
    "dataset": (str,),
    "val_split": (float, int),
    "test_split": (float, int),
    "seed": (int,),
    "data_dir": (str, type(None)),
    "cache_dir": (str, type(None)),
    "download": (bool,),
}


class Run:
    """A run directory made by ``cnnlab train``.

    Args:
        path: the run directory (``runs/NAME``).

    Raises:
        FileNotFoundError: ``path`` is not a directory.

    Example:
        >>> run = Run("runs/digits-simple_cnn")  # doctest: +SKIP
        >>> run.input_size, run.class_names[:3]  # doctest: +SKIP
        ([1, 32, 32], ['0', '1', '2'])
        >>> model, meta = run.load_model("best")  # doctest: +SKIP
        >>> bundle = run.load_data()  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_file():
            raise NotADirectoryError(
                f"{str(self.path)!r} is a file, not a run directory; pass the run directory "
                f"(its parent, {str(self.path.parent)!r})"
            )
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"run directory {str(self.path)!r} does not exist; pass a folder made by "
                "'cnnlab train' (e.g. runs/digits-simple_cnn)"
            )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # --- paths ----------------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        """``config.yaml``: the effective training config."""
        return self.path / "config.yaml"

    @property
    def data_file(self) -> Path:
        """``data.json``: source, class names, split sizes, image size, mean/std."""
        return self.path / "data.json"

    @property
    def metrics_file(self) -> Path:
        """``metrics.csv``: one row per epoch."""
        return self.path / "metrics.csv"

    @property
    def summary_file(self) -> Path:
        """``summary.json``: the model summary."""
        return self.path / "summary.json"

    @property
    def state_file(self) -> Path:
        """``train_state.pt``: what ``--resume`` reloads."""
        return self.path / STATE_FILE

    @property
    def report_file(self) -> Path:
        """``report.html``."""
        return self.path / "report.html"

    @property
    def figures_dir(self) -> Path:
        """``figures/``."""
        return self.path / "figures"

    def checkpoint(self, which: str = "best") -> Path:
        """The checkpoint file ``which`` (``best``, else ``last`` when no best exists).

        Raises:
            ValueError: ``which`` is not one of ``CHECKPOINTS``.
            FileNotFoundError: the run holds no checkpoint.
        """
        if which not in CHECKPOINTS:
            raise ValueError(
                f"which must be one of {', '.join(map(repr, CHECKPOINTS))}; got {which!r}"
            )
        return resolve_checkpoint(self.path, which)

    def has_checkpoint(self) -> bool:
        """True when any ``*.safetensors`` checkpoint exists in the run."""
        return any(self.path.glob(f"*{CHECKPOINT_SUFFIX}"))

    def eval_dir(self, split: str) -> Path:
        """``eval/<split>/``, where ``cnnlab evaluate`` writes (it may not exist yet)."""
        return self.path / "eval" / split

    def find_eval(self, split: str | None = None) -> Path | None:
        """A saved evaluation's folder: ``split``'s, else test, val, train, all, others; or None."""
        names = (
            [split] if split
            else [*EVAL_ORDER, *sorted(p.name for p in (self.path / "eval").glob("*"))]
        )
        for name in names:
            if (self.eval_dir(name) / "metrics.json").is_file():
                return self.eval_dir(name)
        return None

    # --- what the files say -------------------------------------------------------------------

    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.yaml`` as a dict ({} when absent); the data keys are type-checked.

        Raises:
            ValueError: the file is not YAML, not a mapping, or a data key has a wrong type.
        """
        from cnnlab._yaml import read_yaml_mapping

        if not self.config_file.is_file():
            return {}
        values = read_yaml_mapping(self.config_file)
        for key, types in _DATA_KEYS.items():
            value = values.get(key)
            if key in values and (
                not isinstance(value, types) or isinstance(value, bool) != (bool in types)
            ):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise ValueError(
                    f"{str(self.config_file)!r}: {key} must be {names}, got {value!r}"
                )
        return values

    @cached_property
    def data_info(self) -> dict[str, Any]:
        """``data.json`` as a dict ({} when absent or unreadable)."""
        doc = read_json(self.data_file)
        return doc if isinstance(doc, dict) else {}

    def meta(self, which: str = "best") -> dict[str, Any]:
        """The checkpoint's metadata (header only; the weights are not read)."""
        key = f"_meta_{which}"
        if key not in self.__dict__:
            file = self.checkpoint(which)
            meta = read_metadata(file)
            if meta is None:
                raise ValueError(
                    f"{str(file)!r} is a safetensors file but not a cnnlab checkpoint "
                    "(no 'cnnlab' metadata)"
                )
            self.__dict__[key] = meta
        return self.__dict__[key]

    @property
    def input_size(self) -> list[int]:
        """``[C, H, W]`` the model takes: the checkpoint's, else ``data.json``'s.

        Raises:
            ValueError: neither names it.
        """
        if self.has_checkpoint():
            size = self.meta().get("input_size")
        else:
            info = self.data_info
            size = ([info["in_channels"], *info["image_size"]]
                    if "in_channels" in info and "image_size" in info else None)
        if not (isinstance(size, list) and len(size) == 3
                and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError(
                f"run {str(self.path)!r} names no input size [C, H, W] (got {size!r} in its "
                "checkpoint metadata or data.json)"
            )
        return list(size)

    @property
    def class_names(self) -> list[str]:
        """The class names the model predicts, in output order."""
        return [str(c) for c in self.meta().get("class_names") or []]

    @property
    def normalization(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}`` the model's inputs are normalized with."""
        return dict(self.meta().get("normalization") or {})

    @property
    def dataset(self) -> str:
        """The data source the run trained on (``config.yaml``'s, else ``data.json``'s)."""
        source = self.config.get("dataset") or self.data_info.get("source")
        if not source:
            raise ValueError(
                f"{str(self.path)!r} names no dataset (config.yaml has no 'dataset')"
            )
        return str(source)

    # --- loading back ---------------------------------------------------------------------------

    def load_model(
        self, which: str = "best", device: str = "cpu"
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The trained model (eval mode, on ``device``) and its checkpoint metadata.

        Example:
            >>> model, meta = Run("runs/digits-simple_cnn").load_model("last")  # doctest: +SKIP
        """
        from cnnlab.checkpoint import load_model

        return load_model(self.checkpoint(which), device=device)

    def load_data(self, dataset: str | os.PathLike | None = None) -> Any:
        """The run's data (a ``cnnlab.data.DataBundle``) as it was trained, at :attr:`input_size`.

        The split (``val_split``, ``test_split``, ``seed``), the data and cache folders come from
        ``config.yaml``; channels and size from the checkpoint, so the images fit the model.
        The whole training split is loaded (``max_train_images`` does not apply).

        Args:
            dataset: another source to load the same way (e.g. ``"folder:new_photos"``).

        Example:
            >>> Run("runs/digits-simple_cnn").load_data().image_size  # doctest: +SKIP
            (32, 32)
        """
        from cnnlab.data import load_data

        cfg = self.config
        kwargs: dict[str, Any] = {
            k: cfg[k] for k in ("val_split", "test_split", "seed") if k in cfg
        }
        for key in ("data_dir", "cache_dir"):
            if cfg.get(key) is not None:
                kwargs[key] = cfg[key]
        if cfg.get("download"):
            kwargs["download"] = True
        channels, h, w = self.input_size
        kwargs["channels"] = channels
        # A non-square size was a folder's own shared size: let the source choose it again.
        kwargs["image_size"] = h if h == w else None
        source = os.fspath(dataset) if dataset is not None else self.dataset
        if str(source).lower().startswith(("folder:", "csv:")):
            # Stored larger than the model sees (full-resolution storage) and where: as trained.
            info = self.data_info
            if info.get("storage_size") is not None:
                kwargs["storage_size"] = int(info["storage_size"])
            if cfg.get("cache") in ("auto", "ram", "disk"):
                kwargs["cache"] = cfg["cache"]
        return load_data(source, **kwargs)
