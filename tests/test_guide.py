"""Every ```python block of every docs/guide page runs: the guide never goes stale.

Blocks of one page run in order in one fresh namespace (a page is one story), inside a temporary
working directory so files the guide writes land there. Blocks fenced as ```text or ```bash are
shown, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_guide_has_its_pages():
    names = {p.stem for p in PAGES}
    for topic in ("convolution", "padding-and-stride", "channels", "pooling", "normalization",
                  "convolution-family", "receptive-field", "classic-networks", "training"):
        assert any(topic in n for n in names), f"no guide page about {topic}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.stem)
def test_guide_page_runs(page, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the guide's tensors are tiny: one thread wastes no time syncing
    namespace: dict = {"__name__": f"guide_{page.stem.replace('-', '_')}"}
    try:
        for i, block in enumerate(python_blocks(page), start=1):
            code = compile(block, f"{page.name} (python block {i})", "exec")
            exec(code, namespace)  # noqa: S102 - running the guide is the point of this test
    finally:
        torch.set_num_threads(threads)
