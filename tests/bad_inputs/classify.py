"""Run the whole bad-input corpus and print, per kind, how many cases end each way.

    PYTHONPATH=src:tests python tests/bad_inputs/classify.py [--fast] [--json OUT]

``--fast`` leaves out the slow cases (subprocesses: memory bomb, FIFO, kill -9).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bad_inputs.corpus import CASES, OUTCOMES, Context, classify  # noqa: E402


def run_all(fast: bool = False, only: str | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        ctx = Context(Path(d))
        for i, c in enumerate(CASES):
            if (fast and c.slow) or (only and only not in c.name):
                continue
            tmp = Path(d) / f"{i:03d}-{c.name}"
            tmp.mkdir()
            t0 = time.perf_counter()
            try:
                r = c.fn(tmp, ctx)
                outcome, err = classify(r), r.stderr
            except Exception as exc:  # the case itself broke: count it as a crash
                outcome, err = "crash", f"case raised {type(exc).__name__}: {exc}"
                r = None
            rows.append({"kind": c.kind, "case": c.name, "outcome": outcome,
                         "seconds": round(time.perf_counter() - t0, 1),
                         "stderr": err.strip()[-400:], "note": r.note if r else ""})
            print(f"{c.kind:12s} {c.name:40s} {outcome:18s} {rows[-1]['seconds']:5.1f}s",
                  flush=True)
    return rows


def table(rows: list[dict]) -> str:
    kinds = sorted({r["kind"] for r in rows}, key=[c.kind for c in CASES].index)
    head = "| kind | cases | " + " | ".join(OUTCOMES) + " |"
    lines = [head, "|" + "---|" * (len(OUTCOMES) + 2)]
    for k in [*kinds, None]:
        sel = [r for r in rows if k is None or r["kind"] == k]
        n = Counter(r["outcome"] for r in sel)
        lines.append(f"| {k or '**all**'} | {len(sel)} | "
                     + " | ".join(str(n[o]) for o in OUTCOMES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = run_all(a.fast, a.only)
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
