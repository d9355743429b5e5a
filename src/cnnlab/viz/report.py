"""The run report: one self-contained ``report.html`` per run directory.

Everything is inside the one file: figures are PNGs embedded as base64 ``data:`` URIs, styles are
inline, there is no script and nothing is fetched (a Content-Security-Policy forbids it), so the
page opens offline, from an e-mail attachment or an archive. Each section is built on its own;
a part that cannot be made (no evaluation yet, dataset not on this machine) is replaced by a note
saying why, and the rest of the report is still written.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cnnlab.checkpoint import atomic_write_bytes, atomic_write_text
from cnnlab.viz import _run

REPORT_FILE = "report.html"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:1.2em 2em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;
padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0;display:block;overflow-x:auto;
max-width:100%}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.6em 0}
.muted{color:#666;font-size:.9em}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ddd;border-radius:6px;
padding:.5em .9em;min-width:9em}.card b{display:block;font-size:1.4em}
"""


class _Page:
    """Collects HTML sections; a section that raises becomes a note instead."""

    def __init__(self, run_dir: Path, save_figures: bool):
        self.run_dir = run_dir
        self.save_figures = save_figures
        self.parts: list[str] = []

    def section(self, title: str, build: Callable[[], str | None]) -> None:
        try:
            body = build()
        except Exception as exc:  # a report with a note beats no report
            body = note(f"{title} could not be made: {type(exc).__name__}: {exc}")
        if body:
            self.parts.append(f"<section><h2>{esc(title)}</h2>\n{body}</section>")

    def figure(self, fig: Figure, name: str, alt: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        if self.save_figures:  # the same bytes as embedded: render once
            atomic_write_bytes(self.run_dir / "figures" / f"{name}.png", buf.getvalue())
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    """A highlighted note paragraph."""
    return f'<p class="note">{esc(text)}</p>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, (dict, list)):
        return f"<td><code>{esc(json.dumps(value))}</code></td>"
    return f"<td>{esc('' if value is None else value)}</td>"


def table(header: list[str], rows: list[list[Any]], max_rows: int = 300) -> str:
    """An HTML table; numbers right-aligned; at most ``max_rows`` rows (the rest counted)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows[:max_rows])
    more = (
        f'<p class="muted">… {len(rows) - max_rows} more rows</p>' if len(rows) > max_rows else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _kv(mapping: dict[str, Any]) -> str:
    return table(["key", "value"], [[k, v] for k, v in mapping.items()])


def _header(run: _run.RunView) -> str:
    meta: dict[str, Any] = {}
    try:
        meta = run.model()[1]
    except _run.MissingPart:
        pass
    model = (meta.get("model") or {}).get("name") or run.config.get("model", "?")
    dataset = run.data_json.get("source") or run.config.get("dataset", "?")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{k} {meta[k]}" for k in ("cnnlab_version", "torch_version") if k in meta)
    return (
        f"<h1>Run {esc(run.dir.name)}</h1><p class='muted'>model <b>{esc(model)}</b> on "
        f"<b>{esc(dataset)}</b> · report written {stamp}"
        f"{' · ' + esc(versions) if versions else ''}</p>"
    )


def _metrics_section(page: _Page, run: _run.RunView) -> str:
    parts = []
    cards = []
    from cnnlab.viz.curves import read_metrics

    try:
        cols = read_metrics(run.dir)
        epochs = cols.get("epoch") or list(range(1, len(next(iter(cols.values()))) + 1))
        val = cols.get("val_acc") or []
        if val and any(v == v for v in val):
            best = max((v, i) for i, v in enumerate(val) if v == v)
            cards.append(("best val accuracy", f"{best[0]:.2%}", f"epoch {epochs[best[1]]:g}"))
        last = {k: v[-1] for k, v in cols.items()}
        cards.append(("epochs", f"{last.get('epoch', len(epochs)):g}", ""))
        for key in ("train_loss", "val_loss", "images_per_s"):
            if key in last and last[key] == last[key]:
                cards.append((f"last {key}", f"{last[key]:.4g}", ""))
    except (FileNotFoundError, ValueError) as exc:
        parts.append(note(f"no training metrics: {exc}"))
    try:
        metrics, _, _, _, source = run.evaluation()
        acc = metrics.get("accuracy")
        if isinstance(acc, (int, float)):
            cards.insert(
                0,
                (
                    f"{metrics.get('split', run.split())} accuracy",
                    f"{acc:.2%}",
                    f"{metrics.get('num_images', '?')} images",
                ),
            )
        shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        parts.append(f"<h3>Evaluation</h3><p class='muted'>{esc(source)}</p>{_kv(shown)}")
    except _run.MissingPart as exc:
        parts.append(note(f"no evaluation: {exc}"))
    html_cards = "".join(
        f"<div class='card'>{esc(t)}<b>{esc(v)}</b><span class='muted'>{esc(s)}</span></div>"
        for t, v, s in cards
    )
    return f"<div class='cards'>{html_cards}</div>" + "".join(parts)


def _curves(page: _Page, run: _run.RunView) -> str:
    from cnnlab.viz.curves import plot_curves

    if not (run.dir / "metrics.csv").is_file():
        return note("metrics.csv is missing: the run has not finished an epoch yet")
    return page.figure(plot_curves(run.dir), "curves", "training curves")


def _per_class(page: _Page, run: _run.RunView) -> str:
    _, rows, _, _, source = run.evaluation()
    if not rows:
        return note("the evaluation holds no per-class table")
    header = ["class", "precision", "recall", "f1", "support"][: len(rows[0])]
    return f"<p class='muted'>{esc(source)}</p>" + table(header, rows)


def _confusion(page: _Page, run: _run.RunView) -> str:
    from cnnlab.viz.confusion import most_confused, plot_confusion

    _, _, names, cm, source = run.evaluation()
    if cm is None:
        return note("the evaluation holds no confusion matrix")
    pairs = most_confused(cm, names or None, k=10)
    pairs_html = (
        table(["true", "predicted as", "count"], [list(p) for p in pairs])
        if pairs
        else "<p>No confusions.</p>"
    )
    return (
        f"<p class='muted'>{esc(source)}</p>"
        + page.figure(plot_confusion(cm, names or None), "confusion", "confusion matrix")
        + "<h3>Most confused pairs</h3>"
        + pairs_html
    )


def _recipe(page: _Page, run: _run.RunView) -> str:
    """Which of the recipe's options were on (config.yaml), and which weights were used."""
    c = run.config
    if not c:
        return note("config.yaml is missing")
    mixing = [f"{k} {c[k]:g}" for k in ("mixup", "cutmix") if c.get(k)]
    rows = [
        ["augmentation", c.get("augment", "auto")],
        ["mixup / CutMix", (", ".join(mixing) + f" on {c.get('mix_prob', 1.0):.0%} of batches")
         if mixing else "off"],
        ["label smoothing", c.get("label_smoothing", 0.0)],
        ["EMA of the weights", f"decay {c['ema']:g}" if c.get("ema") else "off"],
        ["class weights", c.get("class_weights", "none")],
        ["sampler", c.get("sampler", "shuffle")],
        ["monitor (best checkpoint, early stopping)",
         f"{c.get('monitor', 'val_acc')} (min delta {c.get('min_delta', 0.0):g})"],
    ]
    best = _run.read_json(run.dir / "best.json")
    if isinstance(best, dict):
        rows.append(["weights used by evaluate/predict/export",
                     f"{best.get('checkpoint')} ({best.get('weights')}): raw best "
                     f"{best.get('raw', {}).get('value')}, EMA best "
                     f"{best.get('ema', {}).get('value')} on {best.get('monitor')}"])
    try:
        metrics = run.evaluation()[0]
        if metrics.get("tta"):
            rows.append(["test-time augmentation (evaluation)", metrics["tta"]])
    except _run.MissingPart:
        pass
    return table(["option", "setting"], rows)


def _recall(page: _Page, run: _run.RunView) -> str | None:
    """Per-class recall first when the classes are imbalanced (largest/smallest support >= 1.5)."""
    metrics, rows, _, _, source = run.evaluation()
    if not rows or len(rows[0]) < 5:
        return None
    support = [float(r[4]) for r in rows]
    if min(support) <= 0 or max(support) / min(support) < 1.5:
        return None
    ordered = sorted(rows, key=lambda r: float(r[2]))
    head = (f"<p>The classes are imbalanced (support {int(min(support))}-{int(max(support))}, "
            f"ratio {max(support) / min(support):.1f}): accuracy hides the small classes. "
            f"Balanced accuracy (mean recall) {metrics.get('balanced_accuracy', float('nan')):.4f},"
            f" macro F1 {metrics.get('macro_f1', float('nan')):.4f}, accuracy "
            f"{metrics.get('accuracy', float('nan')):.4f}.</p>")
    return (head + f"<p class='muted'>{esc(source)}; lowest recall first</p>"
            + table(["class", "recall", "support", "precision", "f1"],
                    [[r[0], float(r[2]), int(float(r[4])), float(r[1]), float(r[3])]
                     for r in ordered]))


def _calibration(page: _Page, run: _run.RunView) -> str:
    from cnnlab.viz.calibration import plot_reliability

    folder = run.eval_dir
    doc = _run.read_json(folder / "calibration.json") if folder is not None else None
    if not isinstance(doc, dict):
        return note("no calibration.json: run 'cnnlab evaluate' on this run to measure the ECE")
    return (f"<p>Expected calibration error {doc['ece']:.4f} over {doc['n_bins']} confidence "
            f"bins ({doc['num_images']} images; from {esc(folder.relative_to(run.dir))}/)</p>"
            + page.figure(plot_reliability(doc), "reliability", "reliability diagram"))


def _grids(page: _Page, run: _run.RunView) -> str:
    from cnnlab.viz.grids import plot_predictions, plot_top_losses

    images, labels, logits = run.scored()
    names = run.model()[1].get("class_names")
    n = min(32, len(images))
    grid = plot_predictions(
        images[:n], labels[:n], logits[:n].argmax(1), names, logits[:n].softmax(1).max(1).values
    )
    top = plot_top_losses(images, labels, logits, names, k=min(16, len(images)))
    return (
        f"<p class='muted'>first {n} images of the {esc(run.split())} split; titles read "
        "predicted / true</p>"
        + page.figure(grid, "predictions", "prediction grid")
        + f"<h3>Highest losses</h3><p class='muted'>among {len(images)} images</p>"
        + page.figure(top, "top_losses", "highest-loss images")
    )


def _augmentation(page: _Page, run: _run.RunView) -> str:
    from cnnlab.viz.runs import augmentation_figure

    fig, text = augmentation_figure(run)
    return f"<p class='muted'>{esc(text)}</p>" + page.figure(fig, "augmentation", "augmentation")


def _summary(page: _Page, run: _run.RunView) -> str:
    doc = _run.read_json(run.dir / "summary.json")
    if doc is None:
        try:
            model = run.model()[0]
        except _run.MissingPart as exc:
            return note(f"summary.json is missing and the model could not be loaded: {exc}")
        params = sum(p.numel() for p in model.parameters())
        return (
            note("summary.json is missing; showing the module tree")
            + f"<p>{params:,} parameters</p><pre>{esc(model)}</pre>"
        )
    if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
        return _inspect_summary(doc)
    return render_json(doc)


SUMMARY_COLUMNS = ("name", "type", "output_shape", "params", "macs", "rf", "jump")


def _inspect_summary(doc: dict[str, Any]) -> str:
    """cnnlab.inspect's summary: totals, receptive field, and the layer table (indented)."""
    rows = [r for r in doc["rows"] if isinstance(r, dict)]
    columns = [c for c in SUMMARY_COLUMNS if any(r.get(c) is not None for r in rows)]
    body = []
    for r in rows:
        cells = [r.get(c) for c in columns]
        if "name" in columns:  # indent by nesting depth, like the terminal table
            depth = int(r.get("depth") or 0)
            cells[columns.index("name")] = "\u00a0\u00a0" * depth + (r.get("name") or "(model)")
        body.append(cells)
    head = {k: v for k, v in doc.items() if k not in ("rows", "totals", "receptive_field")}
    parts = [render_json(head)]
    if isinstance(doc.get("totals"), dict):
        parts.append("<h3>Totals</h3>" + _kv(doc["totals"]))
    if isinstance(doc.get("receptive_field"), dict):
        parts.append("<h3>Receptive field</h3>" + _kv(doc["receptive_field"]))
    parts.append("<h3>Layers</h3>" + table(columns, body))
    return "".join(parts)


def _short(value: Any) -> bool:
    """A list or dict small enough to show inline in a key/value row."""
    return not value or len(json.dumps(value)) <= 80


def render_json(doc: Any) -> str:
    """Render JSON readably: text in <pre>, lists of records as tables, else key/value."""
    if isinstance(doc, str):
        return f"<pre>{esc(doc)}</pre>"
    if isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
        keys = [
            k
            for k in dict.fromkeys(k for r in doc for k in r)
            if any(r.get(k) is not None for r in doc)
        ]  # drop columns that are all empty
        return table(keys, [[r.get(k) for k in keys] for r in doc])
    if isinstance(doc, dict):
        out, scalars = [], {}
        for k, v in doc.items():
            if isinstance(v, (list, dict)) and not _short(v):
                out.append(f"<h3>{esc(k)}</h3>{render_json(v)}")
            elif isinstance(v, str) and "\n" in v:
                out.append(f"<h3>{esc(k)}</h3><pre>{esc(v)}</pre>")
            else:
                scalars[k] = v
        return (_kv(scalars) if scalars else "") + "".join(out)
    return f"<pre>{esc(json.dumps(doc, indent=1))}</pre>"


def _config(page: _Page, run: _run.RunView) -> str:
    parts = [_kv(run.config) if run.config else note("config.yaml is missing")]
    if run.data_json:
        parts.append("<h3>Data</h3>" + render_json(run.data_json))
    return "".join(parts)


def write_report(
    run_dir: str | os.PathLike,
    split: str | None = None,
    out: str | os.PathLike | None = None,
    save_figures: bool = True,
) -> Path:
    """Write ``run_dir/report.html``: config, summary, metrics, per-class table and figures.

    Args:
        run_dir: a run directory made by ``cnnlab train``.
        split: evaluation split to report (default: the saved evaluation, test, else val).
        out: where to write (default ``run_dir/report.html``).
        save_figures: also write the figures as PNGs under ``run_dir/figures/``.

    Returns:
        The path of the written report.

    Example:
        >>> write_report("runs/digits-simple_cnn")  # doctest: +SKIP
        PosixPath('runs/digits-simple_cnn/report.html')
    """
    run = _run.RunView(_run.run_path(run_dir), split)
    page = _Page(run.dir, save_figures)
    page.section("Results", lambda: _metrics_section(page, run))
    page.section("Per-class recall (imbalanced classes)", lambda: _recall(page, run))
    page.section("Recipe", lambda: _recipe(page, run))
    page.section("Training curves", lambda: _curves(page, run))
    page.section("Per-class results", lambda: _per_class(page, run))
    page.section("Confusion matrix", lambda: _confusion(page, run))
    page.section("Calibration", lambda: _calibration(page, run))
    page.section("Predictions", lambda: _grids(page, run))
    page.section("Augmentation preview", lambda: _augmentation(page, run))
    page.section("Model summary", lambda: _summary(page, run))
    page.section("Configuration", lambda: _config(page, run))
    doc = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>cnnlab report: {esc(run.dir.name)}</title><style>{CSS}</style></head>\n<body>"
        + _header(run)
        + "\n".join(page.parts)
        + "<p class='muted'>Written by cnnlab.viz.write_report; self-contained, works offline."
        "</p></body></html>\n"
    )
    target = Path(out) if out is not None else run.dir / REPORT_FILE
    atomic_write_text(target, doc)
    return target
