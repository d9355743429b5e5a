"""``cnnlab export runs/X --format onnx|pt2|torchscript [--dynamic-batch] [--out PATH]``.

``--quantize int8`` writes a statically quantized ONNX model, calibrated on the run's training
images and checked against fp32 on its validation split before it is written.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab export``."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained run as ONNX, pt2 or TorchScript, with its class names and "
        "normalization",
        description=(
            "Write the run's best checkpoint as ONNX (metadata in metadata_props; checked "
            "against PyTorch with ONNX Runtime, max abs diff <= 1e-4), pt2 (a torch.export "
            "ExportedProgram, reloaded and checked) or TorchScript (deprecated in torch; both "
            "with a JSON of metadata beside them)."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="runs/NAME or a .safetensors file")
    parser.add_argument("--format", default="onnx", choices=("onnx", "pt2", "torchscript"))
    parser.add_argument(
        "--dynamic-batch", action="store_true", help="ONNX: accept any batch size (default: 1)"
    )
    parser.add_argument(
        "--out", default=None, metavar="PATH", help="output file (default: RUN_DIR/export/model.*)"
    )
    int8 = parser.add_argument_group(
        "int8 (--quantize int8)",
        "static post-training quantization with ONNX Runtime (QDQ, int8 per-channel weights, "
        "uint8 activations), calibrated on the run's training images; the result is compared "
        "with fp32 on the run's validation split and written only if it agrees",
    )
    int8.add_argument("--quantize", default=None, choices=("int8",), help="quantize the ONNX model")
    int8.add_argument(
        "--calibration-size", type=int, default=256, metavar="N",
        help="training images to calibrate on, a seeded random subset (default: 256)",
    )  # fmt: skip
    int8.add_argument(
        "--seed", type=int, default=0, help="seed of the calibration subset (default: 0)"
    )
    int8.add_argument(
        "--min-agreement", type=float, default=0.99, metavar="F",
        help="least share of validation images on which int8 and fp32 predict the same class; "
        "below it nothing is written (default: 0.99)",
    )  # fmt: skip
    int8.add_argument(
        "--force", action="store_true",
        help="write the int8 model even below --min-agreement or with ops left in fp32",
    )  # fmt: skip
    int8.add_argument(
        "--data", default=None, metavar="SOURCE",
        help="data to calibrate and check on instead of the run's own (digits, folder:PATH, ...)",
    )  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab export``."""
    from cnnlab.export import export

    if args.quantize:
        return _run_int8(args)
    result = export(args.run_dir, args.format, dynamic_batch=args.dynamic_batch, out=args.out)
    check = {"onnx": "ONNX Runtime", "pt2": "reloaded ExportedProgram"}.get(
        result.format, "reloaded TorchScript"
    )
    print(f"exported {result.format} to {result.path}")
    if result.meta_path is not None:
        print(f"metadata: {result.meta_path}")
    print(f"max abs difference of the logits vs PyTorch ({check}): {result.max_abs_diff:.2e}")
    return 0


def _run_int8(args: argparse.Namespace) -> int:
    from cnnlab.export import export
    from cnnlab.export.quantize import QuantizationRefused

    if args.format != "onnx":
        raise ValueError(f"--quantize {args.quantize} needs --format onnx, got {args.format!r}")
    try:
        result = export(
            args.run_dir, "onnx", dynamic_batch=args.dynamic_batch, out=args.out,
            quantize=args.quantize, calibration_size=args.calibration_size, seed=args.seed,
            min_agreement=args.min_agreement, force=args.force, data=args.data,
        )  # fmt: skip
    except QuantizationRefused as exc:
        if exc.check is not None:
            print("\n".join(exc.check.lines()))
        raise
    print("\n".join(result.quantization.lines()))
    if result.quantization.agreement < args.min_agreement:
        print(f"warning (--force): agreement below --min-agreement {args.min_agreement:g}")
    if result.float_ops:
        kinds = ", ".join(sorted({op for op, _ in result.float_ops}))
        print(f"warning (--force): ops left in fp32: {kinds}")
    print(f"exported int8 onnx to {result.path} (figures in its metadata under 'quantization')")
    return 0
