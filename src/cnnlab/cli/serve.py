"""``cnnlab serve RUN_OR_ONNX``: the model as a local web page and JSON API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

ALL_INTERFACES = ("0.0.0.0", "::", "[::]", "")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a trained run or .onnx model as a web page and JSON API",
        description=(
            "Serve the model on http://HOST:PORT/: a page to drop images on (top-k bars, "
            "Grad-CAM for PyTorch models, the model card), POST /predict (multipart images or "
            "one raw image body; JSON top-k per image), POST /gradcam, GET /model, GET /health. "
            "Concurrent requests are batched into one forward pass. Listens on 127.0.0.1 "
            "only unless --host says otherwise. Needs the serve extra: "
            "pip install 'cnnlab[serve]'."
        ),
    )
    parser.add_argument("model", metavar="RUN_OR_ONNX", help="runs/NAME, a .safetensors or .onnx")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes "
        "the model to the network)",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "torch", "channels_last", "onnx"),
        help="inference engine, as for cnnlab predict (default: auto)",
    )  # fmt: skip
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    parser.add_argument(
        "--max-batch", type=int, default=32, help="images per forward pass at most (default: 32)"
    )
    parser.add_argument(
        "--window-ms", type=float, default=5.0,
        help="how long a request waits for others to share its forward pass (default: 5)",
    )  # fmt: skip
    parser.add_argument(
        "--max-queue", type=int, default=256,
        help="images waiting at most; more get 503 with Retry-After (default: 256)",
    )  # fmt: skip
    parser.add_argument(
        "--max-mb", type=float, default=20.0, help="request body limit in MB (default: 20)"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=40_000_000,
        help="pixels per image, from its header (decompression-bomb guard; default: 40000000)",
    )  # fmt: skip
    parser.add_argument(
        "--max-images", type=int, default=64, help="images per request (default: 64)"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level; info logs every request (default: warning)",
    )  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab serve`` until interrupted."""
    from cnnlab._validate import check_int
    from cnnlab.serve import require_serve

    require_serve()
    check_int("--port", args.port, min_value=0)
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    for name in ("max_images", "max_pixels", "max_batch", "max_queue", "top_k"):
        check_int(f"--{name.replace('_', '-')}", getattr(args, name), min_value=1)
    if not args.max_mb > 0:
        raise ValueError(f"--max-mb must be > 0, got {args.max_mb}")
    import uvicorn

    from cnnlab.serve.app import create_app
    from cnnlab.serve.uploads import Limits

    limits = Limits(
        max_request_bytes=int(args.max_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_images=args.max_images,
    )
    app = create_app(
        args.model, backend=args.backend, top_k=args.top_k, max_batch=args.max_batch,
        window_ms=args.window_ms, max_queue=args.max_queue, limits=limits,
    )  # fmt: skip
    card = app.state.model.card
    if args.host in ALL_INTERFACES:
        print(
            f"cnnlab serve: warning: listening on all interfaces ({args.host or '*'}): anyone "
            "who can reach this machine can use the model; --host 127.0.0.1 keeps it local",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    print(
        f"cnnlab serve: {card['name']} ({card['backend']}) on http://{shown}:{args.port}/ "
        "(Ctrl+C stops)",
        file=sys.stderr,
    )
    uvicorn.run(
        app, host=args.host.strip("[]"), port=args.port, log_level=args.log_level,
        server_header=False,
    )  # fmt: skip
    return 0
