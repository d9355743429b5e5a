"""Build every bad input in a temporary folder, run the command on it, classify what happened.

Each case is a function ``case(tmp, ctx) -> Result`` registered with :func:`case` under a kind
(images, folders, config, checkpoints, onnx, pickles, predict, lifecycle, outputs). A case runs
the real CLI (``cnnlab.cli.main`` in this process, or ``python -m cnnlab`` in a subprocess for
hangs, memory and kill -9) and says what a correct outcome is:

* ``error``: exit 2, one line on stderr naming the file/argument (``must`` substrings), no traceback;
* ``warn``: exit 0 and a warning line on stderr with the ``must`` substrings;
* ``ok``: exit 0 and the case's own check of the output holds (e.g. the pixel values).

:func:`classify` turns a result into one of ``OUTCOMES``. ``classify.py`` prints the table;
``tests/test_bad_inputs.py`` asserts every case ends the way it should.

Unreadable files and folders: the tests run as root, which ignores permission bits, so a case
that needs one runs its command as the user ``nobody`` via ``setpriv`` when the folder is
world-traversable, and otherwise patches ``open``/``os.scandir`` to raise ``PermissionError``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

OUTCOMES = ("clear error", "skip with warning", "handled correctly", "unclear message",
            "crash", "silently wrong")  # fmt: skip


MEMORY_BUDGET_MB = 1500  # peak RSS a command may take on a small bad input


@dataclass
class Result:
    """What a command did with one bad input."""

    expect: str  # "error", "warn" or "ok"
    rc: int | None  # None: it hung (killed at the timeout)
    stderr: str
    stdout: str = ""
    must: tuple[str, ...] = ()  # substrings the error/warning must contain
    check: bool = True  # the case's own check of the outcome (data unchanged, values right...)
    note: str = ""
    peak_rss_mb: float | None = None


@dataclass
class Case:
    name: str
    kind: str
    fn: Callable[[Path, Any], Result]
    slow: bool = False


CASES: list[Case] = []


def case(kind: str, slow: bool = False) -> Callable:
    def register(fn: Callable) -> Callable:
        CASES.append(Case(fn.__name__.removeprefix("case_"), kind, fn, slow))
        return fn

    return register


def classify(r: Result) -> str:
    """One of OUTCOMES for a result."""
    if r.rc is None or "Traceback" in r.stderr or r.rc not in (0, 2):
        return "crash"
    if r.peak_rss_mb is not None and r.peak_rss_mb > MEMORY_BUDGET_MB:
        return "crash"  # memory exhaustion from a small input
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    named = all(m.lower() in r.stderr.lower() for m in r.must)
    if r.expect == "error":
        if r.rc == 0:
            return "silently wrong"
        errs = [ln for ln in lines if ": error: " in ln]
        return "clear error" if len(errs) == 1 and named and r.check else "unclear message"
    if r.rc == 2:
        return "unclear message"
    if r.expect == "warn":
        warned = any("warning" in ln.lower() for ln in lines)
        if warned and named and r.check:
            return "skip with warning"
        return "silently wrong" if r.check or not warned else "unclear message"
    return "handled correctly" if r.check else "silently wrong"


# --- running commands ---------------------------------------------------------------------------


def cli(argv: list[str], cwd: Path | None = None, patches: tuple = ()) -> tuple[int, str, str]:
    """Run ``cnnlab.cli.main(argv)`` here; an exception escaping main counts as a traceback."""
    import warnings

    from cnnlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        if cwd is not None:
            os.chdir(cwd)
            stack.callback(os.chdir, old)
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("default")
        warnings.showwarning = lambda m, c, f, ln, file=None, line=None: print(
            f"warning: {m}", file=sys.stderr
        )
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            traceback.print_exc(file=err)
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def sub(argv: list[str], timeout: float = 120, user: str | None = None,
        env: dict | None = None) -> tuple[int | None, str, str, float]:  # fmt: skip
    """Run ``python -m cnnlab argv`` in a subprocess; returns rc (None on timeout), out, err and
    the child's peak RSS in MB."""
    import resource
    import tempfile

    # RUSAGE_CHILDREN's ru_maxrss is the largest of ALL children this test process ever waited
    # for (earlier training runs included), so the child writes its own peak (VmHWM) at exit.
    peak_file = Path(tempfile.mkstemp(prefix="cnnlab-peak-")[1])
    cmd = [sys.executable, "-c", _PEAK_RUNNER, *argv]
    if user is not None:
        import pwd

        uid = pwd.getpwnam(user).pw_uid
        gid = pwd.getpwnam(user).pw_gid
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNLAB_PEAK_FILE": str(peak_file),
                **(env or {})}  # fmt: skip
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = None, str(exc.stdout or ""), str(exc.stderr or "")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        peak_kb = float(peak_file.read_text() or "nan")
    except (OSError, ValueError):
        peak_kb = float("nan")
    finally:
        peak_file.unlink(missing_ok=True)
    if peak_kb != peak_kb:  # killed before atexit (e.g. by the OOM killer)
        # A new maximum over all children can only have come from this child.
        peak_kb = after if after > before else 0.0
    return rc, out, err, peak_kb / 1024


# Runs ``python -m cnnlab ARGS`` and writes the process's own peak RSS (kB) at exit: VmHWM, the
# high-water mark of this program's own address space. (RUSAGE_SELF's ru_maxrss is no good here:
# Linux carries it over exec, so it includes the forking test process's size.)
_PEAK_RUNNER = """
import atexit, os, runpy, sys
def _peak():
    try:
        with open("/proc/self/status") as status:
            hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(os.environ["CNNLAB_PEAK_FILE"], "w") as f:
            f.write(hwm)
    except (OSError, StopIteration):
        pass
atexit.register(_peak)
sys.argv = ["cnnlab", *sys.argv[1:]]
runpy.run_module("cnnlab", run_name="__main__", alter_sys=True)
"""


# --- shared inputs ------------------------------------------------------------------------------


class Context:
    """Inputs several cases share, made once: a tiny run, a digit folder, a trained folder run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._run: Path | None = None
        self._folder_run: Path | None = None

    @property
    def run(self) -> Path:
        """A hand-trained run directory (1 x 32 x 32, classes zero/one/two)."""
        if self._run is None:
            from _utils import make_run

            self._run = make_run(self.root / "shared-run")
        return self._run

    def fresh_run(self, tmp: Path) -> Path:
        dst = tmp / "run"
        shutil.copytree(self.run, dst)
        return dst

    def digit_png(self, tmp: Path, name: str = "digit.png") -> Path:
        from _utils import write_digit_pngs

        (p, _), *_ = write_digit_pngs(tmp / "digits", n=1)
        return p.rename(tmp / name)


def good_folder(root: Path, classes=("cat", "dog"), n: int = 6, size: int = 12) -> Path:
    """A small valid image folder PATH/<class>/<n PNGs>."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = rng.integers(0, 80, (size, size, 3)) + (170 * k) % 176
            Image.fromarray(a.astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def train_args(dataset: str, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", dataset, "--epochs", "1", "--image-size", "12",
            "--batch-size", "8", "--out-dir", str(tmp / "runs"), "--quiet", "--no-report",
            "--eval-split", "none", "--cache-dir", str(tmp / "cache"), *extra]  # fmt: skip


def folder_classes(tmp: Path) -> list[str]:
    """The class names of the only run under tmp/runs (from data.json), or []."""
    runs = sorted((tmp / "runs").glob("*/data.json")) if (tmp / "runs").is_dir() else []
    return json.loads(runs[0].read_text()).get("class_names", []) if runs else []


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grayscale 8-bit PNG declaring ``width`` x ``height``; ``rows`` the raw IDAT payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if rows is None:
        rows = b""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))  # fmt: skip


def predict_json(argv_tail: list[str], run: Path, **kw) -> tuple[int, str, str, list]:
    rc, out, err = cli(["predict", str(run), *argv_tail, "--format", "json",
                        "--backend", "torch"], **kw)  # fmt: skip
    try:
        results = json.loads(out) if rc == 0 else []
    except json.JSONDecodeError:
        results = []
    return rc, out, err, results


def decoded(path: Path, input_size=(1, 8, 8)) -> np.ndarray | str:
    """decode_image's array, or the error text."""
    from cnnlab.data import decode_image

    try:
        return decode_image(path, list(input_size)).numpy()
    except Exception as exc:  # noqa: BLE001 - the case classifies it
        return f"{type(exc).__name__}: {exc}"


# Importing the case modules registers their cases.
from bad_inputs import cases_files, cases_images, cases_runs  # noqa: E402, F401
