"""The modern recipe on CIFAR-10 JPEGs: baseline vs + each feature vs all, and imbalance options.

Method: a subset of the CIFAR-10 training JPEGs (``--per-class`` images per class, symlinked
into a folder under ``--work``) is loaded once as an image folder with cnnlab's own held-out
split (``val_split`` 0.1, ``test_split`` 0.2, seeded by the config's seed); every configuration
trains the same budget (same model, epochs, batch, optimizer and schedule; only the feature
under test changes) for each seed, and is scored on the held-out test split by
``cnnlab.evaluate`` (its best checkpoint, i.e. the better of raw/EMA where EMA is on). The
imbalanced set keeps ``(i + 1) / 10`` of class i's images (10%...100%), split and scored the
same way. Results are appended to ``--results`` (JSON lines), so a long comparison can run in
pieces (each under the CPU lock); ``--table`` prints mean +- spread (half the max-min range) over
seeds, the ratio of each configuration's mean wall time to the baseline's, and the range of its
same-seed ratios (each run against the baseline of its seed, a few minutes apart).

Budgets (``--budget``):
  speednet  the ``cifar10-speedrun`` preset's recipe without its flip TTA (speednet with
            whitening init, SGD Nesterov 0.85, lr 0.4, batch 256, one-cycle 23%, label
            smoothing 0.2, crop=2 reflect + alternating flip), 8 epochs of 2,000 images per
            class. A training step (~270 ms per 256 images on 2 Zen 4 cores) is large against a
            policy's cost (RandAugment 12.5 ms per 256), as it is for a practitioner's model.
  small     simple_cnn, AdamW 3e-3, batch 128, one-cycle, label smoothing 0.1, crop-flip,
            4 epochs of 1,000 images per class: the first, smaller comparison (a ~45 ms step,
            so RandAugment's two operations per image are a sixth of it).

Timing: each invocation first runs one untimed 1-epoch baseline (the process's one-off costs:
imports, oneDNN kernel selection, allocator growth; without it the first configuration of an
invocation paid ~3 s more), then runs seed by seed, every configuration in turn within a seed,
so a slow spell of the shared machine spreads over the configurations instead of landing on one.
Each row records the wall time and the process CPU seconds of the whole ``fit``.

Step cost (``--step-cost ROUNDS``): what each feature adds to a training step, measured so that
this shared machine's slow spells (10-20% between whole runs minutes apart, and as much between
20-step runs seconds apart) cancel out. Every configuration gets its own model and recipe,
built by cnnlab's own pieces from its config (``build_config``, ``build_augment``,
``Normalizer``, ``build_recipe``: the augmentation, mixer, loss and EMA ``fit`` would use), and
trains with the training loop's per-step work (normalize + augment on the uint8 batch, mix,
forward, loss, backward, optimizer step, EMA update, the accuracy count). Each round runs
``--steps`` timed steps of every configuration in turn, in an order rotated by one each round,
on random batches of the training split. A configuration's figure is the median of its step
times; "per-round ratios" are its round medians over the baseline's of the same round (seconds
apart), given as median and range. What is not per step (EMA's second validation pass per
epoch, the policies' first-call costs) is in the full runs' wall time only.

Example (what README.md's tables come from):
    flock /tmp/cnnlab-cpu.lock python benchmarks/recipe.py --configs baseline,ta --seeds 0,1,2
    python benchmarks/recipe.py --table
    flock /tmp/cnnlab-cpu.lock python benchmarks/recipe.py --step-cost 15 --steps 4
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

BUDGETS: dict[str, dict] = {  # base recipe, its augmentation, images per class, epochs
    "speednet": {
        "base": {"model": "speednet", "whiten_init": True, "optimizer": "sgd", "nesterov": True,
                 "momentum": 0.85, "lr": 0.4, "weight_decay": 0.0013, "batch_size": 256,
                 "schedule": "onecycle", "onecycle_pct": 0.23, "label_smoothing": 0.2,
                 "flip": "alternating"},
        "augment": "crop=2,reflect", "per_class": 2000, "epochs": 8},
    "small": {
        "base": {"model": "simple_cnn", "optimizer": "adamw", "lr": 3e-3, "weight_decay": 5e-4,
                 "batch_size": 128, "schedule": "onecycle", "label_smoothing": 0.1},
        "augment": "crop-flip", "per_class": 1000, "epochs": 4},
}
CONFIGS: dict[str, dict] = {  # "{aug}": the budget's own augmentation, the policy after it
    "baseline": {},
    "ta": {"augment": "{aug},ta"},
    "ra": {"augment": "{aug},ra=2:9"},
    "erase": {"augment": "{aug},erase=0.25"},
    "mixup": {"mixup": 0.2},
    "cutmix": {"cutmix": 1.0},
    "ema": {"ema": 0.99},
    "all": {"augment": "{aug},ta,erase=0.25", "mixup": 0.2, "cutmix": 1.0, "mix_prob": 0.5,
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


def recipe_options(name: str, budget_name: str) -> dict:
    """The training options of configuration ``name`` in a budget (its augmentation filled in)."""
    budget = BUDGETS[budget_name]
    options = {**budget["base"], "augment": budget["augment"], **CONFIGS[name]}
    options["augment"] = options["augment"].replace("{aug}", budget["augment"])
    return options


def run_one(name: str, seed: int, bundle, args: argparse.Namespace) -> dict:
    from cnnlab.train import fit

    options = recipe_options(name, args.budget)
    options |= {"epochs": args.epochs, "seed": seed, "threads":
               args.threads, "quiet": True, "report": False, "eval_split": "test",
               "out_dir": str(Path(args.work) / "runs"), "val_split": 0.1, "test_split": 0.2}
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fit(data=bundle, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    e = result.eval or {}
    return {"config": name, "budget": args.budget, "seed": seed, "epochs": args.epochs,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "train_images": len(bundle.train), "test_images": e.get("num_images"),
            "accuracy": e.get("accuracy"), "macro_f1": e.get("macro_f1"),
            "balanced_accuracy": e.get("balanced_accuracy"), "ece": e.get("ece"),
            "weights": e.get("weights"), "cpu": cpu_description()}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    lines = [f"machine: {rows[0]['cpu']}; budget {rows[0].get('budget', 'small')}, "
             f"{rows[0]['epochs']} epochs" if rows else "no results"]

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


def step_trainer(name: str, bundle, budget: str):
    """A function running one training step of configuration ``name``, as ``fit``'s loop does."""
    import torch

    from cnnlab.data import Normalizer, build_augment
    from cnnlab.models import create
    from cnnlab.train import build_config
    from cnnlab.train.mix import dominant_label
    from cnnlab.train.recipe import build_recipe

    cfg = build_config(recipe_options(name, budget))
    k, images, labels = bundle.num_classes, bundle.train.images, bundle.train.labels
    model = create(cfg.model, num_classes=k).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.85, nesterov=True,
                                weight_decay=cfg.weight_decay)  # timing only: a stable lr
    recipe = build_recipe(cfg, model, labels, k, torch.device("cpu"), cfg.augment)
    augment = build_augment(cfg.augment, bundle.image_size)
    normalizer = Normalizer(bundle.mean, bundle.std, "cpu", channels_last=True)
    g = torch.Generator().manual_seed(0)

    def step() -> float:
        idx = torch.randint(0, len(labels), (cfg.batch_size,), generator=g)
        start = time.perf_counter()
        x, y = normalizer(images[idx], augment, g), labels[idx]
        if recipe.mixer is not None:
            x, y = recipe.mixer(x, y, g)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = recipe.criterion(out, y)
        loss.backward()
        optimizer.step()
        if recipe.ema is not None:
            recipe.ema.update()
        (out.detach().argmax(1) == dominant_label(y)).sum().item(), loss.item()
        return time.perf_counter() - start

    return step


def step_cost(names: list[str], bundle, args: argparse.Namespace) -> list[dict]:
    """``args.step_cost`` rounds of ``args.steps`` timed steps per configuration, rotated."""
    import torch

    torch.set_num_threads(args.threads)
    trainers = {n: step_trainer(n, bundle, args.budget) for n in names}
    for step in trainers.values():  # untimed: first calls (oneDNN kernels, allocator)
        step(), step()
    rows, stamp = [], time.strftime("%Y-%m-%dT%H:%M:%S")  # rounds are this invocation's
    for r in range(args.step_cost):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times = [trainers[name]() for _ in range(args.steps)]
            rows.append({"config": name, "invocation": stamp, "round": r,
                         "ms": [round(1e3 * t, 3) for t in times], "cpu": cpu_description()})
        print(f"round {r + 1}/{args.step_cost}", flush=True)
    return rows


def step_table(rows: list[dict], budget: str) -> str:
    def key(r: dict) -> tuple:
        return r["invocation"], r["round"]

    base = {key(r): statistics.median(r["ms"]) for r in rows if r["config"] == "baseline"}
    base_ms = statistics.median(t for r in rows if r["config"] == "baseline" for t in r["ms"])
    lines = [f"machine: {rows[0]['cpu']}; budget {budget}; {len(rows[0]['ms'])} steps x "
             f"{len(base)} rounds per configuration", "",
             "| config | median ms per step | step / baseline | per-round ratios: median "
             "(range) |", "|---|---|---|---|"]
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == name]
        ms = statistics.median(t for r in rs for t in r["ms"])
        ratios = sorted(statistics.median(r["ms"]) / base[key(r)] for r in rs if key(r) in base)
        lines.append(f"| {name} | {ms:.1f} | {ms / base_ms:.3f} | "
                     f"{statistics.median(ratios):.3f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="/tmp/cifar10/train", help="CIFAR-10 class folders")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "cnnlab-recipe"))
    p.add_argument("--configs", default="baseline", help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", default="speednet", choices=list(BUDGETS))
    p.add_argument("--per-class", type=int, default=None, help="default: the budget's")
    p.add_argument("--epochs", type=int, default=None, help="default: the budget's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", default=None, help="JSON-lines file (default: WORK/results.jsonl)")
    p.add_argument("--table", action="store_true", help="print the table of the results so far")
    p.add_argument("--step-cost", type=int, default=0, metavar="ROUNDS",
                   help="measure each configuration's time per training step instead (see above)")
    p.add_argument("--steps", type=int, default=4, help="steps per configuration per round")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    args.per_class = args.per_class or budget["per_class"]
    args.epochs = args.epochs or budget["epochs"]
    results = Path(args.results or Path(args.work) / f"results-{args.budget}.jsonl")
    steps_file = results.with_name(results.stem + "-steps.jsonl")
    if args.table:
        print(table(results))
        if steps_file.exists():
            rows = [json.loads(line) for line in steps_file.read_text().splitlines() if line]
            print("\n" + step_table(rows, args.budget))
        return
    from cnnlab.data import load_data

    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    print(f"machine: {cpu_description()}; threads {args.threads}; budget {args.budget}: "
          f"{args.per_class} images per class, {args.epochs} epochs", flush=True)
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
    if args.step_cost:
        if any(n.startswith("imb-") for n in names) or "baseline" not in names:
            raise SystemExit("--step-cost compares balanced configurations with 'baseline'")
        rows = step_cost(names, bundle(False, seeds[0]), args)
        with steps_file.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(step_table(rows, args.budget))
        return
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
