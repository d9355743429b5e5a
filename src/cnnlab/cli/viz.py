"""``cnnlab viz KIND RUN [IMAGE]`` and ``cnnlab viz conv|pool|deconv``: figures as PNG/SVG/GIF."""

from __future__ import annotations

import argparse
from typing import Any

# Kept in step with cnnlab.viz.runs.RUN_FIGURES (not imported: `cnnlab --help` stays fast).
RUN_KINDS = {
    "curves": "loss, accuracy and learning rate per epoch",
    "confusion": "confusion matrix, counts and row-normalized",
    "grid": "test images with predicted / true labels, wrong ones in red",
    "losses": "the images with the highest loss",
    "dataset": "a few training images of every class",
    "augment": "training images before and after the run's augmentation",
    "filters": "the first convolution layer's filters (or --layer)",
    "features": "feature maps of IMAGE at --layer, the --top most active channels",
    "gradcam": "Grad-CAM of IMAGE for the predicted class (or --class)",
    "rf": "receptive field of one output unit of --layer, drawn on IMAGE",
}
EXPLAIN_KINDS = {
    "conv": "a convolution step by step: window, sum of products, output",
    "pool": "max or average pooling step by step",
    "deconv": "a transposed convolution: each input scatters a scaled kernel",
}


def _unit(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unit must be ROW,COL (two integers), got {text!r}"
        ) from None
    return r, c


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab viz``."""
    parser = subparsers.add_parser(
        "viz", help="draw figures of a run, or explain conv/pool/deconv step by step",
        description="Draw a figure of a run directory (written to RUN/figures/KIND.png unless "
        "--out is given), or explain an operation on a small integer input.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in RUN_KINDS.items():
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("run_dir", metavar="RUN", help="a run directory made by cnnlab train")
        if kind in ("features", "gradcam", "rf"):
            p.add_argument("image", metavar="IMAGE", nargs="?", default=None,
                           help="an image file (default: the first image of the split)")
            p.add_argument("--layer", default=None, metavar="NAME",
                           help="layer name as listed by 'cnnlab summary' (default: a fitting one)")
        if kind == "filters":
            p.add_argument("--layer", default=None, metavar="NAME",
                           help="a conv layer (default: the first)")
        if kind == "gradcam":
            p.add_argument("--class", dest="class_", default=None, metavar="C",
                           help="class name or index to explain (default: the predicted class)")
        if kind == "rf":
            p.add_argument("--unit", type=_unit, default=None, metavar="ROW,COL",
                           help="output unit of --layer (default: the centre)")
        if kind in ("grid", "losses", "features"):
            p.add_argument("--top", type=int, default=16, metavar="N",
                           help="images (grid, losses) or channels (features) to show")
        p.add_argument("--split", default=None, choices=("train", "val", "test"),
                       help="data split (default: the saved evaluation's, else test)")
        p.add_argument("--out", default=None, metavar="FILE",
                       help=f"output .png, .svg or .pdf (default: RUN/figures/{kind}.png)")
        p.set_defaults(func=run)
    for kind, text in EXPLAIN_KINDS.items():
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("--size", type=int, default=5 if kind != "deconv" else 2,
                       help="side of the square input")
        p.add_argument("--kernel", type=int, default=3 if kind != "pool" else 2,
                       help="side of the square kernel / pooling window")
        p.add_argument("--stride", type=int, default=None if kind == "pool" else 1,
                       help="stride (pooling default: the window size)")
        p.add_argument("--padding", type=int, default=0, help="zero padding on every side")
        if kind != "pool":
            p.add_argument("--dilation", type=int, default=1, help="kernel dilation")
        else:
            p.add_argument("--mode", default="max", choices=("max", "avg"), help="pooling type")
        p.add_argument("--step", type=int, default=0, help="which step the still figure shows")
        p.add_argument("--seed", type=int, default=0, help="seed of the random integer input")
        p.add_argument("--gif", action="store_true", help="write an animated GIF of every step")
        p.add_argument("--out", default=None, metavar="FILE",
                       help=f"output file (default: {kind}.png, or {kind}.gif with --gif)")
        p.set_defaults(func=run)
    return parser


def _explain(args: argparse.Namespace):
    from cnnlab import viz

    if args.kind == "conv":
        return viz.conv_plan(args.size, args.kernel, args.stride, args.padding, args.dilation,
                             args.seed)
    if args.kind == "pool":
        return viz.pool_plan(args.size, args.kernel, args.stride, args.padding, args.mode,
                             args.seed)
    return viz.transposed_conv_plan(args.size, args.kernel, args.stride, args.padding,
                                    args.dilation, args.seed)


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab viz``."""
    from pathlib import Path

    from cnnlab import viz

    if args.kind in EXPLAIN_KINDS:
        plan = _explain(args)
        out = Path(args.out or f"{args.kind}.{'gif' if args.gif else 'png'}")
        if args.gif:
            path = viz.save_gif(plan, out)
            print(f"wrote {path} ({len(plan.steps)} frames)")
        else:
            from cnnlab.viz.explain import render

            path = viz.save_figure(render(plan, args.step), out)
            print(f"wrote {path}")
        return 0
    from cnnlab.viz.runs import run_figure

    fig = run_figure(
        args.kind, args.run_dir, getattr(args, "image", None), layer=getattr(args, "layer", None),
        class_=getattr(args, "class_", None), unit=getattr(args, "unit", None), split=args.split,
        top_n=getattr(args, "top", 16),
    )
    out = Path(args.out) if args.out else Path(args.run_dir) / "figures" / f"{args.kind}.png"
    print(f"wrote {viz.save_figure(fig, out)}")
    return 0
