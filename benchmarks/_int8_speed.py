"""``inference_speed.py --int8 RUN ...``: int8 ONNX Runtime against fp32 and torchvision eager.

For each trained run (``cnnlab train`` on real images), the model is exported the way
``cnnlab export RUN --quantize int8 --dynamic-batch`` does it (calibrated on the run's
training images, checked on its held-out validation split), with the agreement threshold off so
that every figure is reported. Then, in the same process and on the same real validation
images, these are timed with ``time_rotated`` (rotated order, medians):

- ``torchvision eager (baseline)``: torchvision's model of the same architecture with the run's
  trained weights loaded (resnet18, mobilenet_v2; simple_cnn has no torchvision twin, so its
  baseline is cnnlab's own eager model);
- ``cnnlab eager``: cnnlab's model under ``inference_mode`` (a noise check: ~1.00x);
- ``fp32 onnxruntime``: the fp32 ONNX export (what ``cnnlab predict`` runs by default);
- ``int8 onnxruntime``: the int8 export.

The agreement, top-1 of both and logit differences are the export's own check on the run's
validation images (not seen in training or calibration).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from cnnlab.data import to_float_normalized
from cnnlab.export.backends import OnnxPredictor, TorchPredictor
from cnnlab.export.int8 import export_int8
from cnnlab.export.onnx import export_onnx
from cnnlab.run import Run

TORCHVISION_TWINS = ("resnet18", "mobilenet_v2")


def _baseline(name: str, model: torch.nn.Module, meta: dict[str, Any]) -> TorchPredictor | None:
    if name not in TORCHVISION_TWINS:
        return None
    twin = getattr(torchvision.models, name)(num_classes=len(meta["class_names"]))
    twin.load_state_dict(model.state_dict())  # same parameter names and shapes
    return TorchPredictor(twin.eval(), meta)


def bench_run(run_dir: Path, args: Any, time_rotated: Any) -> list[tuple]:
    """Rows ``(model, size, method, batch, images/s, lo, hi, baseline images/s)`` of one run."""
    run = Run(run_dir)
    model, meta = run.load_model()
    name = meta["model"]["name"]
    c, h, w = meta["input_size"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        q = export_int8(
            run_dir, out=Path(tmp) / "int8.onnx", dynamic_batch=True,
            calibration_size=args.calibration_size, min_agreement=0.0,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        int8 = OnnxPredictor(q.path, meta)
    fp32_data, _ = export_onnx(model, meta, dynamic_batch=True)
    check = q.quantization
    print(
        f"{run_dir} ({name}, {c}x{h}x{w}, {len(meta['class_names'])} classes): int8 export "
        f"{seconds:.1f} s with {args.calibration_size} calibration images; on "
        f"{check.images} held-out {check.split} images: top-1 fp32 {check.top1_fp32:.4f}, "
        f"int8 {check.top1_int8:.4f}, agreement {check.agreement:.4f}, logit diff max "
        f"{check.max_logit_diff:.3g} mean {check.mean_logit_diff:.3g}; ops left in fp32: "
        f"{[op for op, _ in q.float_ops] or 'none'}",
        flush=True,
    )
    norm = meta["normalization"]
    val = run.load_data().val.images
    methods: dict[str, Any] = {}
    base = _baseline(name, model, meta)
    if base is not None:
        methods["torchvision eager (baseline)"] = base
    methods["cnnlab eager"] = TorchPredictor(model, meta)
    methods["fp32 onnxruntime"] = OnnxPredictor(fp32_data, meta)
    methods["int8 onnxruntime"] = int8
    rows = []
    for batch in args.batches:
        idx = torch.arange(batch) % len(val)  # real images (repeated if the split is smaller)
        x = to_float_normalized(val[idx], norm["mean"], norm["std"]).numpy()
        if base is not None:
            diff = np.abs(base(x) - methods["cnnlab eager"](x)).max()
            assert diff < 1e-3, f"torchvision twin differs from cnnlab's model by {diff}"
        fns = {m: (lambda p=p, x=x: p(x)) for m, p in methods.items()}
        samples, _ = time_rotated(fns, args.warmup, args.repeats, args.min_sample, args.gap)
        rates = {m: batch / statistics.median(s) for m, s in samples.items()}
        ref = rates.get("torchvision eager (baseline)", rates["cnnlab eager"])
        for m, s in samples.items():
            rows.append((name, f"{h}x{w}", m, batch, rates[m], batch / max(s), batch / min(s), ref))
            print(f"  {m:<30} batch {batch:>3}: {rates[m]:>9,.1f} images/s", flush=True)
    figures = (check.agreement, check.images, check.top1_fp32, check.top1_int8)
    return [r + figures for r in rows]


def int8_main(args: Any, time_rotated: Any, cpu: str) -> None:
    """Run :func:`bench_run` for every ``args.int8`` run and print the table."""
    import onnxruntime as ort

    print(f"CPU: {cpu}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision "
        f"{torchvision.__version__}, onnxruntime {ort.__version__}; int8 = QDQ, int8 "
        "per-channel weights, uint8 activations, MinMax calibration (cnnlab export --quantize)"
    )
    print(
        f"method: {args.warmup} warm-up calls each, then {args.repeats} rounds timing every "
        f"method once in rotated order (>= {args.min_sample} s of back-to-back calls after "
        f"{args.gap} s idle); images/s = batch / median seconds per call; inputs are the run's "
        "validation images"
    )
    rows = []
    for run in args.int8:
        rows += bench_run(Path(run), args, time_rotated)
    print()
    print(
        "| model | input | method | batch | images/s | range | vs torchvision eager "
        "| vs fp32 ORT | top-1 agreement (val images) |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, size, method, batch, ips, lo, hi, ref, agree, n, _, _ in rows:
        fp32 = next(
            r[4]
            for r in rows
            if (r[0], r[1], r[2], r[3]) == (name, size, "fp32 onnxruntime", batch)
        )
        agreement = f"{agree:.2%} of {n}" if method.startswith("int8") else ""
        print(
            f"| {name} | {size} | {method} | {batch} | {ips:,.1f} | {lo:,.1f}..{hi:,.1f} "
            f"| {ips / ref:.2f}x | {ips / fp32:.2f}x | {agreement} |"
        )
    for name, _size, method, batch, ips, _, _, ref, agree, *_ in rows:
        if name == "resnet18" and method.startswith("int8") and batch == max(args.batches):
            ok = ips / ref >= 3 and agree >= 0.99
            print(
                f"\ntarget (resnet18, batch {batch}: int8 >= 3x torchvision eager with >= 99% "
                f"top-1 agreement): {ips / ref:.2f}x, {agree:.2%} -> {'met' if ok else 'not met'}"
            )
