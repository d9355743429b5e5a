"""The images a run was trained and validated on, reloaded from its ``config.yaml``.

The int8 export calibrates on the run's training images and checks itself on its validation
split, so it reloads the data exactly as ``cnnlab train`` split it (same source, split fractions
and seed), at the checkpoint's input size and channels. Built on the public ``load_data`` and
``TrainConfig``; when the ``cnnlab.run`` module (issue #11) owns reloading a run's data, this
file becomes a call to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load_run_data(run_dir: Path, meta: Mapping[str, Any], data: Any = None) -> Any:
    """The run's :class:`cnnlab.data.DataBundle`, split as training split it.

    Args:
        run_dir: the run directory (its ``config.yaml`` names the dataset and the split).
        meta: the checkpoint metadata (its ``input_size`` sets the image size and channels).
        data: None for the run's own dataset; a source string (``"digits"``,
            ``"folder:PATH"``) to load instead, with the run's split settings; or a loaded
            ``DataBundle``, returned as it is.

    Raises:
        FileNotFoundError: no ``config.yaml`` in the run directory and no ``data`` given.

    Example:
        >>> bundle = load_run_data(Path("runs/digits-simple_cnn"), meta)  # doctest: +SKIP
        >>> len(bundle.train), len(bundle.val)  # doctest: +SKIP
        (1439, 179)
    """
    if data is not None and not isinstance(data, (str, os.PathLike)):
        return data
    from cnnlab.data import load_data
    from cnnlab.train.config import TrainConfig, read_yaml

    config_file = run_dir / "config.yaml"
    if data is None and not config_file.is_file():
        raise FileNotFoundError(
            f"{str(config_file)!r} does not exist, so the run's training and validation images "
            "are unknown; pass a run directory written by 'cnnlab train', or name the data "
            "with --data (e.g. --data digits or --data folder:PATH)"
        )
    cfg = TrainConfig(**(read_yaml(config_file) if config_file.is_file() else {}))
    channels, size = (list(meta.get("input_size") or []) + [None, None])[:2]
    kwargs: dict[str, Any] = {
        "val_split": cfg.val_split,
        "test_split": cfg.test_split,
        "seed": cfg.seed,
        "image_size": size,
        "channels": channels,
    }
    for key in ("data_dir", "cache_dir"):
        if getattr(cfg, key) is not None:
            kwargs[key] = getattr(cfg, key)
    return load_data(os.fspath(data) if data is not None else cfg.dataset, **kwargs)
