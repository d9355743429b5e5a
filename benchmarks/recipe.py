"""The modern recipe on CIFAR-10 JPEGs: baseline vs + each feature vs all, and imbalance options.

Method: a subset of the CIFAR-10 training JPEGs (``--per-class`` images per class, symlinked
into a folder under ``--work``) is loaded once as an image folder with cnnlab's own held-out
split (``val_split`` 0.1, ``test_split`` 0.2, seeded by the config's seed); every configuration
trains ``simple_cnn`` with the same budget (same model, epochs, batch, optimizer, one-cycle
schedule; only the feature under test changes) for each seed, and is scored on the held-out test
split by ``cnnlab.evaluate`` (its best checkpoint, i.e. the better of raw/EMA where EMA is on).
The imbalanced set keeps ``(i + 1) / 10`` of class i's images (10%...100%), split and scored the
same way. Results are appended to ``--results`` (JSON lines), so a long comparison can run in
pieces (each under the CPU lock); ``--table`` prints mean +- spread (half the max-min range) over
seeds, the ratio of each configuration's mean wall time to the baseline's, and the range of its
same-seed ratios (each run against the baseline of its seed, a few minutes apart).

Timing: each invocation first runs one untimed 1-epoch baseline (the process's one-off costs:
imports, oneDNN kernel selection, allocator growth; without it the first configuration of an
invocation paid ~3 s more), then runs seed by seed, every configuration in turn within a seed,
so a slow spell of the shared machine spreads over the configurations instead of landing on one.
Each row records the wall time and the process CPU seconds of the whole ``fit``.

Example (what README.md's tables come from):
    flock /tmp/cnnlab-cpu.lock python benchmarks/recipe.py --configs baseline,ta --seeds 0,1,2
    python benchmarks/recipe.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_description  # noqa: E402

BASE = {  # the baseline recipe: cifar10-fast's optimizer and schedule, crop-flip augmentation
    "model": "simple_cnn", "optimizer": "adamw", "lr": 3e-3, "weight_decay": 5e-4,
    "batch_size": 128, "schedule": "onecycle", "label_smoothing": 0.1, "augment": "crop-flip",
}
CONFIGS: dict[str, dict] = {
    "baseline": {},
    "ta": {"augment": "crop-flip,ta"},
    "ra": {"augment": "crop-flip,ra=2:9"},
    "erase": {"augment": "crop-flip,erase=0.25"},
    "mixup": {"mixup": 0.2},
    "cutmix": {"cutmix": 1.0},
    "ema": {"ema": 0.99},
    "all": {"augment": "crop-flip,ta,erase=0.25", "mixup": 0.2, "cutmix": 1.0, "mix_prob": 0.5,
            "ema": 0.99},
    # on the imbalanced subset
    "imb-baseline": {},
    "imb-weights": {"class_weights": "auto", "monitor": "val_balanced_acc"},
    "imb-sampler": {"sampler": "balanced", "monitor": "val_balanced_acc"},
}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def make_subset(src: Path, dst: Path, per_class: int, imbalanced: bool) -> Path:
    """Symlink the first images of each class (sorted names) into ``dst/<class>/``."""
    for i, name in enumerate(CLASSES):
        keep = per_class * (i + 1) // 10 if imbalanced else per_class
        folder = dst / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted((src / name).iterdir())[:keep]:
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f)
    return dst


def run_one(name: str, seed: int, bundle, args: argparse.Namespace) -> dict:
    from cnnlab.train import fit

    options = {**BASE, **CONFIGS[name], "epochs": args.epochs, "seed": seed, "threads":
               args.threads, "quiet": True, "report": False, "eval_split": "test",
               "out_dir": str(Path(args.work) / "runs"), "val_split": 0.1, "test_split": 0.2}
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fit(data=bundle, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    e = result.eval or {}
    return {"config": name, "seed": seed, "epochs": args.epochs, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "train_images": len(bundle.train), "test_images": e.get("num_images"),
            "accuracy": e.get("accuracy"), "macro_f1": e.get("macro_f1"),
            "balanced_accuracy": e.get("balanced_accuracy"), "ece": e.get("ece"),
            "weights": e.get("weights"), "cpu": cpu_description()}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    lines = [f"machine: {rows[0]['cpu']}" if rows else "no results"]

    def fmt(values: list[float]) -> str:
        half = (max(values) - min(values)) / 2
        return f"{100 * statistics.mean(values):.1f} ± {100 * half:.1f}"

    for group, base in (("", "baseline"), ("imb-", "imb-baseline")):
        names = [n for n in CONFIGS if n.startswith("imb-") == bool(group) and n in by]
        if not names:
            continue
        lines.append("")
        lines.append("| config | seeds | accuracy % | macro-F1 % | balanced acc % | ECE | "
                     "wall s | wall / baseline | same-seed ratios | CPU s / baseline |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        base_rows = by.get(base, by[names[0]])
        base_wall = statistics.mean(r["wall_s"] for r in base_rows)
        base_cpu = statistics.mean(r.get("cpu_s", 0.0) for r in base_rows) or 1.0
        for n in names:
            rs = by[n]
            wall = statistics.mean(r["wall_s"] for r in rs)
            cpu = statistics.mean(r.get("cpu_s", 0.0) for r in rs)
            base_by_seed = {r["seed"]: r["wall_s"] for r in base_rows}
            paired = sorted(r["wall_s"] / base_by_seed[r["seed"]] for r in rs
                            if r["seed"] in base_by_seed)  # run minutes apart, not hours
            pairs = f"{paired[0]:.2f}-{paired[-1]:.2f}" if paired else "-"
            lines.append(
                f"| {n} | {','.join(str(r['seed']) for r in rs)} | "
                f"{fmt([r['accuracy'] for r in rs])} | {fmt([r['macro_f1'] for r in rs])} | "
                f"{fmt([r['balanced_accuracy'] for r in rs])} | "
                f"{statistics.mean(r['ece'] for r in rs):.3f} | {wall:.1f} | "
                f"{wall / base_wall:.2f} | {pairs} | {cpu / base_cpu:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="/tmp/cifar10/train", help="CIFAR-10 class folders")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "cnnlab-recipe"))
    p.add_argument("--configs", default="baseline", help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", default=None, help="JSON-lines file (default: WORK/results.jsonl)")
    p.add_argument("--table", action="store_true", help="print the table of the results so far")
    args = p.parse_args(argv)
    results = Path(args.results or Path(args.work) / "results.jsonl")
    if args.table:
        print(table(results))
        return
    from cnnlab.data import load_data

    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    print(f"machine: {cpu_description()}; threads {args.threads}", flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    bundles = {}

    def bundle(imb: bool, seed: int):
        if (imb, seed) not in bundles:
            folder = make_subset(Path(args.source), Path(args.work) /
                                 f"{'imb' if imb else 'bal'}-{args.per_class}",
                                 args.per_class, imb)
            bundles[imb, seed] = load_data(f"folder:{folder}", val_split=0.1, test_split=0.2,
                                           seed=seed, image_size=32,
                                           cache_dir=str(Path(args.work) / "cache"))
        return bundles[imb, seed]

    seeds = [int(s) for s in args.seeds.split(",")]
    warm = argparse.Namespace(**{**vars(args), "epochs": 1})  # untimed: one-off process costs
    run_one("baseline", seeds[0], bundle(names[0].startswith("imb-"), seeds[0]), warm)
    for seed in seeds:  # seed by seed, each configuration in turn
        for name in names:
            row = run_one(name, seed, bundle(name.startswith("imb-"), seed), args)
            print(json.dumps(row), flush=True)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
