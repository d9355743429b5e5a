"""``cnnlab serve``: a trained model as a local recognition app — a web page and a JSON API.

- :mod:`cnnlab.serve.uploads`: what a client may send (size, pixel and count limits; content
  sniffed by Pillow, never trusted from a file name) and its decoding, exactly as ``predict``
  decodes a file;
- :mod:`cnnlab.serve.batching`: the micro-batching queue that joins concurrent requests into one
  forward pass, bounded (a full queue answers 503 with ``Retry-After``);
- :mod:`cnnlab.serve.model`: the served model: the predictor ``predict`` would use, its model
  card and Grad-CAM (PyTorch models);
- :mod:`cnnlab.serve.page`: the one self-contained HTML page;
- :mod:`cnnlab.serve.app`: the Starlette application tying them together.

Starlette, uvicorn and python-multipart are the ``serve`` extra (``pip install 'cnnlab[serve]'``).

Example:
    >>> from cnnlab.serve import create_app  # doctest: +SKIP
    >>> app = create_app("runs/digits-simple_cnn")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

SERVE_MODULES = ("starlette", "uvicorn", "python_multipart")


def require_serve() -> None:
    """Raise a one-line :class:`~cnnlab._deps.MissingDependencyError` without the serve extra.

    Example:
        >>> require_serve()  # doctest: +SKIP
    """
    from cnnlab._deps import require

    require("cnnlab serve", SERVE_MODULES, "serve")


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the Starlette app; see :func:`cnnlab.serve.app.create_app`."""
    require_serve()
    from cnnlab.serve.app import create_app as _create

    return _create(*args, **kwargs)
