"""Export to a ``torch.export`` ExportedProgram (``.pt2``), the successor of TorchScript.

``torch.export.export`` captures the model's whole forward pass as an ATen graph with its
weights (no Python code of cnnlab, torchvision or timm is needed to run it);
``torch.export.save`` writes it as one ``.pt2`` archive, with cnnlab's metadata inside
(``extra_files``) as well as in a JSON file beside it. The batch dimension is exported as a
symbolic size when the model allows it, so the program accepts any batch size. Before anything
is written the archive is loaded back with ``torch.export.load`` and compared with the eager
model on a random batch (those are bytes this process just wrote).

cnnlab does not load ``.pt2`` files it did not just write: ``torch.export.load`` may unpickle
(it falls back to ``torch.load(weights_only=False)`` for weights and constants), so a ``.pt2``
is only as trustworthy as its source; ``cnnlab predict`` takes runs and ONNX files.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

EXTRA_FILE = "cnnlab.json"  # metadata inside the archive (torch.export.save extra_files)
ATOL = 1e-5


def _export(model: nn.Module, example: torch.Tensor) -> tuple[Any, bool]:
    """The ExportedProgram, with a dynamic batch dimension when the model allows it."""
    try:
        batch = torch.export.Dim("batch", min=1)
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), True
    except Exception:  # e.g. a reshape that bakes in the batch size: export it fixed
        return torch.export.export(model, (example,)), False


def export_pt2(
    model: nn.Module, meta: Mapping[str, Any], *, atol: float = ATOL
) -> tuple[bytes, float, bool]:
    """Export ``model`` (eval, CPU) as ``.pt2`` bytes with ``meta`` inside the archive.

    Returns:
        ``(archive_bytes, max_abs_diff, dynamic_batch)``: the difference of the reloaded
        program's logits to the eager model's, and whether any batch size is accepted (else
        the batch is fixed at 2, the example's).

    Raises:
        RuntimeError: when the reloaded program's logits differ by more than ``atol``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).eval()
        >>> data, diff, dynamic = export_pt2(net, {"input_size": [1, 8, 8]})
        >>> diff <= 1e-5, dynamic
        (True, True)
    """
    model = model.cpu().eval()
    c, h, w = meta["input_size"]
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, c, h, w, generator=gen)  # batch 2: sizes 0/1 are specialized
    with torch.no_grad():
        program, dynamic = _export(model, example)
        buf = io.BytesIO()
        torch.export.save(program, buf, extra_files={EXTRA_FILE: json.dumps(dict(meta))})
        buf.seek(0)
        reloaded = torch.export.load(buf).module()
        check = torch.randn(3 if dynamic else 2, c, h, w, generator=gen)
        diff = float((reloaded(check) - model(check)).abs().max())
    if not diff <= atol:  # also catches NaN
        raise RuntimeError(
            f"the exported program disagrees with the eager model: max abs difference of the "
            f"logits {diff:.3g} > {atol:g} (torch.export.load vs eager on the same batch)"
        )
    return buf.getvalue(), diff, dynamic

