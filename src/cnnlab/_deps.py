"""Optional dependencies: a clear, one-line error when a feature's package is not installed.

No torch import here: the command line imports this module before it parses any argument.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence


class MissingDependencyError(ImportError):
    """An optional package that a feature needs is not installed; the message says how to get it.

    The command line prints it as one line (exit code 2), like a bad argument.
    """


def require(feature: str, modules: Sequence[str], extra: str) -> None:
    """Raise :class:`MissingDependencyError` unless every module in ``modules`` imports.

    Args:
        feature: what needs them, for the message (``"ONNX export"``).
        modules: import names (``"onnx"``, ``"onnxruntime"``).
        extra: the cnnlab extra that installs them (``pip install 'cnnlab[export]'``).

    Example:
        >>> require("ONNX export", ["json"], "export")  # present: nothing happens
        >>> require("a demo", ["no_such_module_xyz"], "export")
        Traceback (most recent call last):
        ...
        cnnlab._deps.MissingDependencyError: a demo needs no_such_module_xyz, which is not \
installed; install cnnlab's 'export' extra: pip install 'cnnlab[export]' (from a checkout: \
pip install '.[export]')
    """
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingDependencyError(
            f"{feature} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed; install cnnlab's {extra!r} extra: pip install 'cnnlab[{extra}]' "
            f"(from a checkout: pip install '.[{extra}]')"
        )
