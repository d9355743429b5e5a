"""Every case of the bad-input corpus (tests/bad_inputs/) ends the way it should.

An expected error is one line naming the file or argument, exit 2, no traceback; an expected
skip is a counted warning; an unusual but valid input is handled correctly. Memory-hungry inputs
run in a subprocess with a peak-RSS budget. ``python tests/bad_inputs/classify.py`` prints the
outcome table of the whole corpus (the figures in the README come from it).
"""

from __future__ import annotations

import pytest
from bad_inputs.corpus import CASES, MEMORY_BUDGET_MB, Context, classify

pytestmark = pytest.mark.usefixtures("one_thread")

WANTED = {"error": "clear error", "warn": "skip with warning", "ok": "handled correctly"}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Context(tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c.kind}-{c.name}",
                          marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)  # fmt: skip
def test_bad_input(case, ctx, tmp_path):
    r = case.fn(tmp_path, ctx)
    outcome = classify(r)
    assert "Traceback" not in r.stderr, r.stderr
    assert outcome == WANTED[r.expect], f"{outcome}: rc={r.rc} {r.note}\n{r.stderr[-2000:]}"
    if r.peak_rss_mb is not None:
        assert r.peak_rss_mb < MEMORY_BUDGET_MB


def test_corpus_covers_every_kind():
    kinds = {c.kind for c in CASES}
    assert kinds >= {"images", "folders", "config", "predict", "checkpoints", "onnx",
                     "pickles", "lifecycle", "outputs"}
    assert len(CASES) >= 60
