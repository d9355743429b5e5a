"""The files of ``eval/<split>/`` (see docs/run-directory.md): written by evaluate, read by viz.

``metrics.json``, ``per_class.csv``, ``confusion.csv``, ``confusion.json`` and
``predictions.csv``; every write is atomic.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.checkpoint import atomic_write_text

EVAL_SPLITS = ("train", "val", "test", "all")
EVAL_ORDER = ("test", "val", "train", "all")  # which saved evaluation a reader prefers
PER_CLASS_COLUMNS = ("class", "precision", "recall", "f1", "support")
PREDICTION_COLUMNS = ("index", "true", "predicted", "confidence", "correct")


def read_json(path: Path) -> Any | None:
    """The JSON document at ``path``, or None when the file is missing or unreadable.

    Example:
        >>> read_json(Path("/no/such/file.json")) is None
        True
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_csv(path: Path) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of a CSV file, or None when it is missing or empty.

    Example:
        >>> read_csv(Path("/no/such/file.csv")) is None
        True
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [[csv_unescape(c) for c in row] for row in csv.reader(f)]
    except OSError:
        return None
    return (rows[0], rows[1:]) if rows else None


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_escape(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with an apostrophe.

    Numbers are left alone (``-0.5`` stays a number); :func:`csv_unescape` undoes it.

    Example:
        >>> csv_escape('=HYPERLINK("http://x")'), csv_escape(-0.5)
        ('\'=HYPERLINK("http://x")', -0.5)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_unescape(cell: str) -> str:
    """Inverse of :func:`csv_escape` for a cell read back from a CSV file."""
    return cell[1:] if cell.startswith("'") and cell[1:2] and cell[1:2] in _FORMULA_START else cell


def to_csv(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text with ``\\n`` line ends.

    Example:
        >>> to_csv(["a", "b"], [[1, 2]])
        'a,b\\n1,2\\n'
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_escape(c) for c in header])
    writer.writerows([csv_escape(c) for c in row] for row in rows)
    return buf.getvalue()


def write_eval(
    out: Path,
    metrics: dict[str, Any],
    per_class: Sequence[dict[str, Any]],
    class_names: Sequence[str],
    confusion: Sequence[Sequence[int]],
    predictions: Sequence[tuple[int, int, float]],
) -> Path:
    """Write the five files of one evaluation into ``out`` (created when missing).

    Args:
        out: ``RUN/eval/<split>/``.
        metrics: the ``metrics.json`` document.
        per_class: dicts with the keys of ``PER_CLASS_COLUMNS``.
        class_names: the K class names (rows and columns of the confusion matrix).
        confusion: K x K counts, rows = true class, columns = predicted class.
        predictions: ``(true index, predicted index, confidence)`` per image, in split order.

    Example:
        >>> write_eval(Path("/tmp/cnnlab-eval"), {"accuracy": 1.0}, [], ["a"], [[1]],
        ...            [(0, 0, 0.9)]).name
        'cnnlab-eval'
    """
    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "per_class.csv", to_csv(
        PER_CLASS_COLUMNS,
        [[r["class"], f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}",
          r["support"]] for r in per_class]))
    matrix = [list(row) for row in confusion]
    atomic_write_text(out / "confusion.csv", to_csv(
        ["true\\predicted", *names], [[names[i], *row] for i, row in enumerate(matrix)]))
    atomic_write_text(out / "confusion.json", json.dumps(
        {"class_names": names, "rows": "true class", "columns": "predicted class",
         "matrix": matrix}, indent=1))
    atomic_write_text(out / "predictions.csv", to_csv(
        PREDICTION_COLUMNS,
        [[i, names[t], names[p], f"{c:.6f}", int(t == p)]
         for i, (t, p, c) in enumerate(predictions)]))
    return out


def read_confusion(folder: Path) -> tuple[list[str], list[list[int]]] | None:
    """Class names and matrix from ``confusion.json`` (else ``confusion.csv``), or None.

    Example:
        >>> read_confusion(Path("/no/such/eval")) is None
        True
    """
    doc = read_json(folder / "confusion.json")
    if isinstance(doc, dict) and isinstance(doc.get("matrix"), list):
        return [str(c) for c in doc.get("class_names", [])], doc["matrix"]
    table = read_csv(folder / "confusion.csv")
    if table:
        header, rows = table
        try:
            return header[1:], [[int(v) for v in r[1:]] for r in rows]
        except ValueError:
            return None
    return None


def _num(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_per_class(folder: Path) -> list[list[Any]]:
    """Rows ``[class, precision, recall, f1, support]`` of ``per_class.csv`` ([] when absent).

    The class name stays text; the numbers become numbers.

    Example:
        >>> read_per_class(Path("/no/such/eval"))
        []
    """
    table = read_csv(folder / "per_class.csv")
    return [[r[0], *map(_num, r[1:])] for r in table[1]] if table else []
