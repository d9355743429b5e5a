"""Export to TorchScript (a traced graph loadable with ``torch.jit.load``, no Python code)."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

EXTRA_FILE = "cnnlab.json"  # metadata stored inside the archive too (torch.jit _extra_files)


def export_torchscript(
    model: nn.Module, meta: Mapping[str, Any], *, atol: float = 1e-5
) -> tuple[bytes, float]:
    """Trace ``model`` (eval, CPU) into TorchScript bytes with ``meta`` as an extra file.

    Tracing records the operations run on one example of shape (1, C, H, W); the zoo models have
    no data-dependent control flow, so the traced graph works for any batch size.

    Returns:
        ``(archive_bytes, max_abs_diff)`` of the reloaded archive vs the eager model.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).eval()
        >>> data, diff = export_torchscript(net, {"input_size": [1, 8, 8]})
        >>> diff
        0.0
    """
    model = model.cpu().eval()
    c, h, w = meta["input_size"]
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(1, c, h, w, generator=gen)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript deprecation notices on new torch
        traced = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={EXTRA_FILE: json.dumps(dict(meta))})
        buf.seek(0)
        reloaded = torch.jit.load(buf, map_location="cpu")
        check = torch.randn(3, c, h, w, generator=gen)
        diff = float((reloaded(check) - model(check)).abs().max())
    if not diff <= atol:
        raise RuntimeError(
            f"the traced TorchScript model disagrees with the eager model: max abs difference "
            f"{diff:.3g} > {atol:g}"
        )
    return buf.getvalue(), diff
