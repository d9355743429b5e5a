"""``cnnlab export runs/X --format onnx|torchscript [--dynamic-batch] [--out PATH]``."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab export``."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained run as ONNX or TorchScript, with class names and normalization",
        description=(
            "Write the run's best checkpoint as ONNX (metadata in metadata_props; checked "
            "against PyTorch with ONNX Runtime, max abs diff <= 1e-4) or TorchScript (with a "
            "JSON of metadata beside it)."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="runs/NAME or a .safetensors file")
    parser.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    parser.add_argument(
        "--dynamic-batch", action="store_true", help="ONNX: accept any batch size (default: 1)"
    )
    parser.add_argument(
        "--out", default=None, metavar="PATH", help="output file (default: RUN_DIR/export/model.*)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab export``."""
    from cnnlab.export import export

    result = export(args.run_dir, args.format, dynamic_batch=args.dynamic_batch, out=args.out)
    check = "ONNX Runtime" if result.format == "onnx" else "reloaded TorchScript"
    print(f"exported {result.format} to {result.path}")
    if result.meta_path is not None:
        print(f"metadata: {result.meta_path}")
    print(f"max abs difference of the logits vs PyTorch ({check}): {result.max_abs_diff:.2e}")
    return 0
