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
    if path.is_dir():
        raise IsADirectoryError(f"config file {str(path)!r} is a directory; pass a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text ({exc})") from None
    try:
        values = yaml.load(text, Loader=_unique_keys_loader()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(
            f"config file {str(path)!r} must hold a mapping of keys to values, "
            f"got {type(values).__name__}"
        )
    return values


def _unique_keys_loader() -> type:
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last).

    PyYAML has no option for this (yaml/pyyaml#41); ruamel.yaml refuses duplicates but is one
    more dependency for one check, so the SafeLoader's mapping constructor is extended here.
    """
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: let PyYAML report it
                    continue
                seen.setdefault(key, line)
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key {key!r} on line {line} (first given on line {first}); "
                        "keep one of them",
                        key_node.start_mark,
                    )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader
