"""The package's layers (cnnlab/__init__.py's picture): every import between packages points down.

Module-level and function-level imports both count (a lazy import is still a dependency), and
no package imports another package's private ``_module``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnnlab

# Higher imports lower; equal ranks (side by side) must not import each other.
RANKS = {
    "__main__": 13, "cli": 12, "train": 11, "serve": 11, "viz": 10, "evaluation": 9, "prediction": 9,
    "export": 8, "tta": 8, "calibration": 8, "run": 7, "transfer": 6, "data": 5, "inspect": 5,
    "checkpoint": 4,
    "models": 3, "layers": 2, "reference": 1, "_validate": 0, "_deps": 0, "_yaml": 0,
    "integrity": 0,
}  # fmt: skip
ROOT = Path(cnnlab.__file__).parent


def package_edges() -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the importing modules."""
    edges: dict[tuple[str, str], set[str]] = {}
    for file in sorted(ROOT.rglob("*.py")):
        rel = file.relative_to(ROOT).with_suffix("")
        here = rel.parts[0]
        module = "cnnlab." + ".".join(p for p in rel.parts if p != "__init__")
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "cnnlab" or len(parts) < 2 or parts[1] == here:
                    continue
                edges.setdefault((here, parts[1]), set()).add(module)
                private = [p for p in parts[2:] if p.startswith("_")]
                assert not private, f"{module} imports the private module {name}"
    return edges


def test_every_package_has_a_rank():
    packages = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
                if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert packages - {"__init__"} <= set(RANKS), packages - set(RANKS)


def test_imports_between_packages_point_down():
    upward = {
        (a, b): sorted(mods) for (a, b), mods in package_edges().items()
        if RANKS[a] <= RANKS[b]
    }
    assert not upward, f"imports that do not point down: {upward}"
