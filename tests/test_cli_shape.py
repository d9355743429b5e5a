"""``cnnlab shape``: the formula with the numbers filled in, the result, and clear errors."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["shape", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (["conv", "--size", "28", "--kernel", "3", "--stride", "2", "--padding", "1"],
         ["floor((28 + 2*1 - 1*(3 - 1) - 1) / 2) + 1 = floor(27 / 2) + 1 = 14", "result: 14"]),
        (["conv", "--size", "32", "--kernel", "5", "--dilation", "2"],
         ["floor((32 + 2*0 - 2*(5 - 1) - 1) / 1) + 1", "result: 24"]),
        (["conv", "--size", "7", "--kernel", "4", "--stride", "2", "--padding", "same"],
         ["out = ceil(7 / 2) = 4", "-> (1, 2)", "result: 4"]),
        (["pool", "--size", "5", "--kernel", "2", "--padding", "1", "--ceil"],
         ["ceil((5 + 2*1 - 1*(2 - 1) - 1) / 2) + 1 = ceil(5 / 2) + 1 = 4", "result: 3"]),
        (["pool", "--size", "28x27", "--kernel", "2"], ["dim 1:", "result: 14x13"]),
        (["deconv", "--size", "14", "--kernel", "3", "--stride", "2", "--padding", "1",
          "--output-padding", "1"], ["(14 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 28", "result: 28"]),
    ],
)
def test_shape_prints_the_formula_with_numbers_and_the_result(capsys, argv, lines):
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    for line in lines:
        assert line in out, (line, out)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["conv", "--size", "3", "--kernel", "5"], ["--kernel=5", "padded input 3", "valid"]),
        (["conv", "--size", "abc", "--kernel", "3"], ["--size", "'abc'", "28x32"]),
        (["conv", "--size", "8", "--kernel", "3", "--stride", "0"], ["--stride", ">= 1", "0"]),
        (["conv", "--size", "8", "--kernel", "3", "--padding", "-1"], ["--padding", "-1"]),
        (["pool", "--size", "8", "--kernel", "3", "--padding", "2"], ["--padding=2", "0..1"]),
        (["deconv", "--size", "4", "--kernel", "3", "--stride", "2", "--output-padding", "2"],
         ["--output-padding=2", "--stride=2", "0..1"]),
        (["conv", "--size", "8", "--kernel", "3", "--ceil"], ["--ceil", "pool only"]),
        (["pool", "--size", "8", "--kernel", "2", "--output-padding", "1"], ["deconv only"]),
        (["pool", "--size", "8", "--kernel", "2", "--padding", "same"], ["--padding", "'same'"]),
    ],
)
def test_bad_values_give_one_clear_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnlab shape: error: ") and err.count("\n") == 1
    for word in words:
        assert word in err, (word, err)


def test_shape_is_listed_in_cnnlab_help(capsys):
    assert main([]) == 0
    assert "shape" in capsys.readouterr().out
