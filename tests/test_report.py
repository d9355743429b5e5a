"""The run report: self-contained, robust to missing parts, and clean in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _utils import HEADLESS_CHROMIUM_FLAGS, assert_self_contained, embedded_pngs, make_run_dir
from PIL import Image

from cnnlab.viz import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
def test_report_with_parts_missing_still_writes_notes(tmp_path):
    run = make_run_dir(tmp_path)  # metrics + checkpoint, but the dataset is not on this machine
    path = write_report(run)
    assert path == run / "report.html"
    html = path.read_text()
    assert_self_contained(html)
    assert "Training curves" in html and "handmade" in html
    pngs = embedded_pngs(html)
    assert len(pngs) == 1 and pngs[0].std() > 5  # the curves, not blank
    assert (run / "figures" / "curves.png").is_file()
    assert html.count('class="note"') >= 3  # evaluation, predictions, augmentation explained
    assert "/nonexistent/cnnlab-data" in html  # the note says which data was missing
    assert "folder:/nonexistent" in html and "crop-flip" in html  # the config table


def test_report_of_an_empty_run_dir_and_bad_paths(tmp_path):
    run = make_run_dir(tmp_path, checkpoint=False, metrics=False)
    html = write_report(run, save_figures=False).read_text()
    assert "metrics.csv is missing" in html and "Configuration" in html
    assert not (run / "figures").exists()
    with pytest.raises(FileNotFoundError, match="run directory"):
        write_report(tmp_path / "no-such-run")


def test_training_ends_with_a_full_report(trained_run):
    html = (trained_run / "report.html").read_text()
    assert_self_contained(html)
    for section in (
        "Results",
        "Training curves",
        "Per-class results",
        "Confusion matrix",
        "Calibration",
        "Recipe",
        "Predictions",
        "Highest losses",
        "Augmentation preview",
        "Model summary",
        "Configuration",
    ):
        assert f">{section}<" in html, section
    assert "from eval/test/" in html  # the saved evaluation is reported, not recomputed
    pngs = embedded_pngs(html)
    assert len(pngs) == 6 and all(p.std() > 5 for p in pngs)  # 6th: the reliability diagram
    metrics = json.loads((trained_run / "eval" / "test" / "metrics.json").read_text())
    assert f"{metrics['accuracy']:.2%}" in html
    assert '<tr><td>9</td><td class="num">' in html  # the per-class table row of class 9


@pytest.mark.slow
def test_report_computes_the_evaluation_when_none_was_saved(trained_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval", "report.html"))
    html = write_report(run, save_figures=False).read_text()
    assert "computed now on the test split" in html
    assert len(embedded_pngs(html)) == 5


def chromium_load(html_file: Path, tmp_path: Path) -> tuple[list[str], np.ndarray]:
    """Open ``html_file`` in headless Chromium; return (errors the page raised, screenshot).

    A probe script is put first in <head> (before the page's Content-Security-Policy, so it may
    run): it records script errors, unhandled promise rejections, failed resource loads and CSP
    violations (any attempt to reach the network), and writes them into the DOM, which
    --dump-dom prints once the page has loaded (--virtual-time-budget lets the timer fire).
    """
    probe = (
        "<script>window.__errs=[];"
        "window.addEventListener('error',function(e){var t=e.target;window.__errs.push("
        "t&&t!==window&&t.tagName?'failed to load '+t.tagName:'script error: '+e.message)},true);"
        "document.addEventListener('securitypolicyviolation',function(e){window.__errs.push("
        "'blocked by CSP: '+e.effectiveDirective+' '+e.blockedURI)});"
        "window.addEventListener('unhandledrejection',function(e){window.__errs.push("
        "'unhandled rejection: '+e.reason)});"
        # CSP violation events are queued as tasks: write the list a little after load
        "window.addEventListener('load',function(){setTimeout(function(){"
        "var d=document.createElement('pre');d.id='__errs';d.style.display='none';"
        "d.textContent=JSON.stringify(window.__errs);document.body.appendChild(d)},500)});"
        "</script>"
    )
    html = html_file.read_text()
    probed = tmp_path / f"probed-{html_file.name}"
    probed.write_text(re.sub(r"<head[^>]*>", lambda m: m.group(0) + probe, html, count=1))
    shot = tmp_path / f"{html_file.stem}.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            *HEADLESS_CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="__errs"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page never finished loading in Chromium: {proc.stderr[-2000:]}"
    import html as html_lib

    errors = json.loads(html_lib.unescape(found.group(1)))
    return errors, np.asarray(Image.open(shot).convert("L"), dtype=float)


@pytest.mark.slow
@needs_chromium
def test_the_browser_check_detects_errors_and_blank_pages(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; img-src data:\"></head><body>"
        "<img src='https://example.invalid/x.png'><script>nosuch()</script></body></html>"
    )
    errors, shot = chromium_load(broken, tmp_path)
    assert any("img-src https://example.invalid" in e for e in errors), errors
    assert any("script-src" in e for e in errors), errors
    assert shot.std() < 1.0  # a blank page fails the pixel-variance check
    no_csp = tmp_path / "throws.html"
    no_csp.write_text("<html><head></head><body><p>hi</p><script>nosuch()</script></body></html>")
    errors, _ = chromium_load(no_csp, tmp_path)
    assert errors == ["script error: Uncaught ReferenceError: nosuch is not defined"]


@pytest.mark.slow
@needs_chromium
def test_report_renders_in_chromium_without_errors(trained_run, tmp_path):
    errors, shot = chromium_load(trained_run / "report.html", tmp_path)
    assert errors == []
    assert shot.shape == (2000, 1280)
    assert shot.std() > 20, "the screenshot is (nearly) blank"
    Image.fromarray(shot.astype(np.uint8)).save(tmp_path / "report-screenshot.png")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["grid", "losses", "dataset", "augment", "features", "gradcam", "rf", "filters", "confusion"],
)
def test_every_run_figure_of_a_real_run(kind, trained_run, tmp_path):
    from cnnlab.viz import save_figure
    from cnnlab.viz.runs import run_figure

    out = save_figure(run_figure(kind, trained_run, top_n=8), tmp_path / f"{kind}.png", dpi=50)
    pixels = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert out.stat().st_size > 1000 and pixels.std() > 5
