"""``cnnlab viz ...`` and ``cnnlab report``: figures and reports from the command line."""

from __future__ import annotations

import numpy as np
import pytest
from _utils import make_run_dir
from PIL import Image

from cnnlab.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = make_run_dir(tmp_path_factory.mktemp("cli"))
    (run / "eval" / "test").mkdir(parents=True)
    (run / "eval" / "test" / "metrics.json").write_text('{"accuracy": 0.5, "split": "test"}')
    (run / "eval" / "test" / "confusion.csv").write_text(
        "true\\predicted,cat,dog,eel\ncat,2,0,0\ndog,1,1,0\neel,0,1,1\n")
    return run


def _image_file(path, size=(20, 24)):
    arr = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["curves"], ["confusion"], ["filters"], ["features", "{img}", "--layer", "features.0.0"],
    ["gradcam", "{img}", "--class", "dog"], ["gradcam", "{img}", "--class", "2"],
    ["rf", "{img}", "--unit", "1,2", "--layer", "features.1"],
])
def test_viz_run_figures(argv, run_dir, tmp_path, capsys):
    img = str(_image_file(tmp_path / "photo.png"))
    args = [a.replace("{img}", img) for a in argv]
    out = tmp_path / f"{argv[0]}.png"
    assert main(["viz", args[0], str(run_dir), *args[1:], "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert f"wrote {out}" in capsys.readouterr().out


def test_viz_default_output_goes_to_the_run_figures_folder(run_dir):
    assert main(["viz", "curves", str(run_dir)]) == 0
    assert (run_dir / "figures" / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize(("argv", "message"), [
    (["viz", "curves", "/no/such/run"], "run directory '/no/such/run' does not exist"),
    (["viz", "gradcam", "RUN", "{img}", "--class", "wolf"], "class must be a class name or an index"),
    (["viz", "features", "RUN", "{img}", "--layer", "nope"], "layer 'nope' is not a layer"),
    (["viz", "gradcam", "RUN", "/no/photo.png"], "image file '/no/photo.png' does not exist"),
    (["viz", "grid", "RUN"], "cnnlab-data"),  # the dataset is not on this machine: say which
    (["viz", "curves", "RUN", "--out", "x.jpeg"], "out must end in one of"),
    (["viz", "conv", "--size", "3", "--kernel", "5"], "kernel"),
    (["viz", "pool", "--kernel", "2", "--padding", "2"], "padding must be at most"),
])
def test_viz_errors_are_one_clear_line(argv, message, run_dir, tmp_path, capsys):
    img = str(_image_file(tmp_path / "photo.png"))
    argv = [a.replace("RUN", str(run_dir)).replace("{img}", img) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_viz_explain_png_and_gif(tmp_path, capsys):
    png = tmp_path / "conv.png"
    assert main(["viz", "conv", "--size", "5", "--kernel", "3", "--stride", "2", "--padding", "1",
                 "--dilation", "2", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    gif = tmp_path / "pool.gif"
    assert main(["viz", "pool", "--size", "4", "--mode", "avg", "--gif", "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 4
    svg = tmp_path / "deconv.svg"
    assert main(["viz", "deconv", "--stride", "2", "--out", str(svg)]) == 0
    assert "<svg" in svg.read_text()
    assert "4 frames" in capsys.readouterr().out


def test_report_command(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    html = out.read_text()
    assert "Confusion matrix" in html and "data:image/png;base64," in html
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_cli_kinds_match_the_library():
    from cnnlab.cli.viz import RUN_KINDS
    from cnnlab.viz.runs import IMAGE_FIGURES, RUN_FIGURES

    assert tuple(RUN_KINDS) == RUN_FIGURES
    assert set(IMAGE_FIGURES) <= set(RUN_KINDS)
