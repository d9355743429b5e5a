"""Labels from a CSV/TSV file: ``csv:labels.csv`` with columns ``path,label[,split]``.

The first row names the columns (``path`` and ``label`` required, ``split`` optional, in any
order; other columns are ignored). Paths are relative to the CSV file's folder (absolute paths
are kept). ``split`` is ``train``, ``val`` (or ``valid``/``validation``) or ``test``; without the
column the rows are split with val_split/test_split like a flat folder. The delimiter is a tab
for ``.tsv`` files and for a header line that contains one, else a comma.

Bad rows are counted, named (the first few, with their line numbers) and skipped with one
warning, as bad files in a folder are: a missing path or label, an unknown split, a file that
does not exist or has no image extension, a label that only val/test rows use. Files that exist
but do not decode are reported by the same decoder as folders.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from pathlib import Path

from cnnlab.data._decode import IMAGE_EXTENSIONS
from cnnlab.data.bundle import DataBundle
from cnnlab.data.folder import _PARTS, _SHOW, _Scan, load_scanned

_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in first else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row 'path,label[,split]'")
    return [c.strip().lower() for c in rows[0]], rows[1:]


def _scan_csv(path: Path) -> tuple[_Scan, list[str], bool]:
    header, rows = _read_rows(path)
    if "path" not in header or "label" not in header:
        raise ValueError(
            f"{path}: the first row must name the columns path and label (and optionally "
            f"split), got {', '.join(repr(c) for c in header) or 'an empty row'}"
        )
    col = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    base = path.parent
    bad: list[str] = []
    entries: list[tuple[str, str, int]] = []  # (file, label, part)
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        cells = {k: row[i].strip() if i < len(row) else "" for k, i in col.items()}
        where = f"line {line}"
        if not cells["path"]:
            bad.append(f"{where} (empty path)")
            continue
        if not cells["label"]:
            bad.append(f"{where} {cells['path']} (empty label)")
            continue
        part = "all"
        if "split" in col:
            part = _SPLITS.get(cells["split"].lower(), "")
            if not part:
                bad.append(f"{where} {cells['path']} (unknown split {cells['split']!r}; use "
                           "train, val or test)")  # fmt: skip
                continue
        file = Path(cells["path"]).expanduser()
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            bad.append(f"{where} {cells['path']} (no such file)")
            continue
        if file.suffix.lower() not in IMAGE_EXTENSIONS:
            bad.append(f"{where} {cells['path']} (not an image extension)")
            continue
        entries.append((str(file), cells["label"], _PARTS.index(part)))
    train_parts = {_PARTS.index("train"), _PARTS.index("all")}
    class_names = sorted({label for _, label, p in entries if p in train_parts})
    scan = _Scan(class_names=class_names)
    for file, label, part in entries:
        if label not in class_names:
            bad.append(f"{file} (label {label!r} has no training rows)")
            continue
        st = os.stat(file)
        scan.paths.append(file)
        rel = os.path.relpath(file, base).replace(os.sep, "/")
        scan.stats.append((rel, st.st_size, st.st_mtime_ns))
        scan.parts.append(part)
        scan.labels.append(class_names.index(label))
    if bad:
        shown = "; ".join(bad[:_SHOW])
        more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
        warnings.warn(f"{path}: skipped {len(bad)} of {len([r for r in rows if any(r)])} rows: "
                      f"{shown}{more}", stacklevel=4)  # fmt: skip
    if not scan.paths:
        raise ValueError(f"{path} lists no usable image files (every row was skipped)")
    return scan, bad, "split" in col


def load_csv(
    path: str | Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    val_split: float = 0.1,
    test_split: float = 0.1,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    cache: str = "ram",
    storage_size: int | None = None,
    quiet: bool = True,
) -> DataBundle:
    """Load the images a labels CSV lists as a :class:`DataBundle` (options as ``load_folder``).

    Example:
        >>> import tempfile, pathlib, PIL.Image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> lines = ["path,label"]
        >>> for i in range(8):
        ...     PIL.Image.new("L", (8, 8), 40 * (i % 2)).save(d / f"{i}.png")
        ...     lines.append(f"{i}.png,{'dark' if i % 2 == 0 else 'light'}")
        >>> _ = (d / "labels.csv").write_text("\\n".join(lines))
        >>> b = load_csv(d / "labels.csv", val_split=0.25, test_split=0.25, use_cache=False)
        >>> b.class_names, len(b.train)
        (['dark', 'light'], 4)
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"labels file {str(path)!r} does not exist (csv:PATH)")
    path = path.resolve()
    scan, _, has_split = _scan_csv(path)
    # Relabelled rows must not reuse the old decode: the file's digest joins the cache key.
    scan.stats.append((f"{path.name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}", 0, 0))
    return load_scanned(
        f"csv:{path}", "csv", path.parent, scan, {"labels_csv": path.name},
        image_size=image_size, channels=channels, val_split=val_split, test_split=test_split,
        seed=seed, cache_dir=cache_dir, use_cache=use_cache, cache=cache,
        storage_size=storage_size, quiet=quiet, split_layout=has_split,
    )  # fmt: skip
