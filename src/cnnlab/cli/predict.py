"""``cnnlab predict runs/X|model.onnx IMAGE_OR_DIR ...``: top-k classes per image."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a trained run or an exported .onnx model",
        description=(
            "Print the top-k classes with probabilities for each image, using the class names, "
            "normalization and input size saved with the model. Folders are searched "
            "recursively; non-image and unreadable files are skipped with a warning."
        ),
    )
    parser.add_argument("model", metavar="RUN_OR_ONNX", help="runs/NAME, a .safetensors or .onnx")
    parser.add_argument("images", nargs="*", metavar="IMAGE_OR_DIR", help="image files / folders")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    parser.add_argument(
        "--format", default="table", choices=("table", "json"), help="output (default: table)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "channels_last", "onnx", "list"),
        help=(
            "inference engine; auto = ONNX Runtime when installed (pip install "
            "'cnnlab[export]'), else torch with channels_last (default: auto); an int8 .onnx "
            "export runs in ONNX Runtime like any other; 'list' prints the engines that can "
            "run this model here, with their precision"
        ),
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--tta", default="none", choices=("none", "flip", "crops"),
                        help="test-time augmentation: average the probabilities over a "
                        "left-right flip, or over 5 shifted crops (default: none)")
    parser.set_defaults(func=run)
    return parser


def format_table(results: list) -> str:
    """Plain-text table: one block per image, one line per class (``  7   97.31%``)."""
    lines = []
    for r in results:
        # a file name that is not valid UTF-8 holds surrogates: show its bytes escaped
        name = r.source.encode("utf-8", "surrogateescape")
        lines.append(name.decode("utf-8", "backslashreplace"))
        width = max(len(c) for c in r.classes)
        lines += [f"  {c:<{width}}  {p * 100:7.2f}%" for c, p in zip(r.classes, r.probs)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab predict``."""
    import warnings

    from cnnlab.prediction import predict

    if args.backend == "list":
        from cnnlab.export.available import available_backends

        for info in available_backends(args.model):
            mark = "yes" if info.available else "no "
            print(f"{info.backend:<14} {mark}  {info.description}")
        return 0
    if not args.images:
        raise ValueError("give at least one IMAGE_OR_DIR to classify (or --backend list)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        results = predict(
            args.model, args.images, top_k=args.top_k, backend=args.backend,
            batch_size=args.batch_size, tta=args.tta,
        )  # fmt: skip
    for w in caught:
        if issubclass(w.category, UserWarning) and "skipped" in str(w.message):
            print(f"cnnlab predict: warning: {w.message}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 0
