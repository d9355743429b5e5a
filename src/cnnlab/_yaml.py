"""Read a YAML file that must hold a mapping: the one reader of config files for every layer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` ({} for an empty file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid YAML, or not a mapping (the message names the file).

    Example:
        >>> read_yaml_mapping("runs/digits-simple_cnn/config.yaml")["dataset"]  # doctest: +SKIP
        'digits'
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(
            f"config file {str(path)!r} must hold a mapping of keys to values, "
            f"got {type(values).__name__}"
        )
    return values
