"""Tampered checkpoints and ONNX files, malicious pickles, kill -9, full disks, CSV outputs."""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import torch

from bad_inputs.corpus import Result, case, cli, good_folder, predict_json, train_args


def edit_header(path: Path, fn) -> None:
    """Rewrite a safetensors file's ``cnnlab`` metadata with ``fn(meta) -> meta`` (None: drop)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["cnnlab"])
    new = fn(meta)
    header["__metadata__"]["cnnlab"] = json.dumps(new)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    body = data[8 + n :]
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _run_predict(ctx, run: Path, *extra: str) -> tuple[int, str, str, list]:
    img = ctx.digit_png(run.parent)
    return predict_json([str(img), *extra], run)


# --- checkpoints --------------------------------------------------------------------------------


@case("checkpoints")
def case_edited_class_names(tmp, ctx):
    run = ctx.fresh_run(tmp)
    edit_header(run / "best.safetensors", lambda m: {**m, "class_names": ["cat", "dog", "emu"]})
    rc, _, err, results = _run_predict(ctx, run)
    return Result("error", rc, err, must=("best.safetensors", "--trust-unsigned"))


@case("checkpoints")
def case_removed_digest(tmp, ctx):
    run = ctx.fresh_run(tmp)
    edit_header(run / "best.safetensors", lambda m: {k: v for k, v in m.items()
                                                     if k not in ("sha256", "digest")})
    rc, _, err, results = _run_predict(ctx, run)
    return Result("error", rc, err, must=("best.safetensors", "--trust-unsigned"))


@case("checkpoints")
def case_flipped_weight_byte(tmp, ctx):
    run = ctx.fresh_run(tmp)
    p = run / "best.safetensors"
    b = bytearray(p.read_bytes())
    b[-5] ^= 0xFF
    p.write_bytes(bytes(b))
    rc, _, err, results = _run_predict(ctx, run)
    return Result("error", rc, err, must=("best.safetensors", "integrity"))


@case("checkpoints")
def case_truncated_checkpoint(tmp, ctx):
    run = ctx.fresh_run(tmp)
    p = run / "best.safetensors"
    p.write_bytes(p.read_bytes()[:100])
    rc, _, err, results = _run_predict(ctx, run)
    return Result("error", rc, err, must=("best.safetensors",))


@case("checkpoints")
def case_garbage_pretrained(tmp, ctx):
    g = tmp / "junk.safetensors"
    g.write_bytes(os.urandom(4096))
    rc, _, err = cli(train_args("digits", tmp, "--pretrained", str(g),
                                "--max-train-images", "64"))  # fmt: skip
    return Result("error", rc, err, must=("junk.safetensors",))


@case("checkpoints")
def case_model_weights_mismatch_unsigned(tmp, ctx):
    """Metadata naming another model (as a --trust-unsigned user would meet it)."""
    run = ctx.fresh_run(tmp)
    edit_header(run / "best.safetensors",
                lambda m: {**m, "model": {"name": "lenet", "kwargs": {"num_classes": 3}}})
    img = ctx.digit_png(tmp)
    rc, _, err = cli(["predict", str(run), str(img), "--backend", "torch", "--trust-unsigned"])
    if "unrecognized arguments" in err:  # the flag does not exist (before the fix)
        rc, _, err = cli(["predict", str(run), str(img), "--backend", "torch"])
    return Result("error", rc, err, must=("best.safetensors", "lenet"))


@case("checkpoints")
def case_enormous_input_size_unsigned(tmp, ctx):
    run = ctx.fresh_run(tmp)
    edit_header(run / "best.safetensors", lambda m: {**m, "input_size": [1, 300000, 300000]})
    img = ctx.digit_png(tmp)
    argv = ["predict", str(run), str(img), "--backend", "torch"]
    rc, _, err = cli([*argv, "--trust-unsigned"])
    if "unrecognized arguments" in err:
        # before the fix: torch.empty of 90 GB; guard this process with an allocation limit
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (16 * 2**30, hard))
        try:
            rc, _, err = cli(argv)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return Result("error", rc, err, must=("input_size", "300000"))


# --- ONNX ---------------------------------------------------------------------------------------


def _export(ctx, tmp: Path) -> Path:
    run = ctx.fresh_run(tmp)
    rc, out, err = cli(["export", str(run), "--format", "onnx", "--out", str(tmp / "m.onnx")])
    if rc != 0:
        raise RuntimeError(err)
    return tmp / "m.onnx"


def _edit_onnx(path: Path, fn) -> None:
    import onnx

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props = fn(props, proto)
    del proto.metadata_props[:]
    for k, v in props.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(proto, str(path))


@case("onnx")
def case_onnx_edited_class_names(tmp, ctx):
    m = _export(ctx, tmp)

    def edit(props, proto):
        meta = json.loads(props["cnnlab"])
        meta["class_names"] = ["cat", "dog", "emu"]
        return {**props, "cnnlab": json.dumps(meta), "class_names": json.dumps(meta["class_names"])}

    _edit_onnx(m, edit)
    img = ctx.digit_png(tmp)
    rc, _, err = cli(["predict", str(m), str(img)])
    return Result("error", rc, err, must=("m.onnx", "--trust-unsigned"))


@case("onnx")
def case_onnx_input_size_disagrees(tmp, ctx):
    m = _export(ctx, tmp)

    def edit(props, proto):
        meta = json.loads(props["cnnlab"])
        meta["input_size"] = [3, 64, 64]
        return {k: v for k, v in {**props, "cnnlab": json.dumps(meta),
                                  "input_size": json.dumps(meta["input_size"])}.items()
                if k != "cnnlab_digest"}

    _edit_onnx(m, edit)
    img = ctx.digit_png(tmp)
    rc, _, err = cli(["predict", str(m), str(img), "--trust-unsigned"])
    if "unrecognized arguments" in err:
        rc, _, err = cli(["predict", str(m), str(img)])
    return Result("error", rc, err, must=("m.onnx", "input_size"))


@case("onnx")
def case_onnx_garbage(tmp, ctx):
    m = tmp / "g.onnx"
    m.write_bytes(os.urandom(2000))
    img = ctx.digit_png(tmp)
    rc, _, err = cli(["predict", str(m), str(img)])
    return Result("error", rc, err, must=("g.onnx",))


# --- pickles ------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@case("pickles")
def case_malicious_pth_pretrained(tmp, ctx):
    marker = tmp / "PWNED"
    evil = tmp / "evil.pth"
    torch.save({"weight": _Payload(str(marker))}, evil)
    rc, _, err = cli(train_args("digits", tmp, "--pretrained", str(evil),
                                "--max-train-images", "64"))  # fmt: skip
    return Result("error", rc, err, must=("evil.pth",), check=not marker.exists())


@case("pickles")
def case_malicious_train_state(tmp, ctx):
    marker = tmp / "PWNED"
    rc, _, err = cli(train_args("digits", tmp, "--max-train-images", "64", "--name", "r"))
    run = tmp / "runs" / "r"
    torch.save({"epoch": _Payload(str(marker))}, run / "train_state.pt")
    before = (run / "last.safetensors").read_bytes()
    rc, _, err = cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    same = (run / "last.safetensors").read_bytes() == before
    return Result("error", rc, err, must=("train_state.pt",), check=not marker.exists() and same)


# --- run lifecycle ------------------------------------------------------------------------------


def _kill_in_first_epoch(tmp: Path) -> Path:
    """Start a training run, SIGKILL it during its first epoch; returns the run directory."""
    root = good_folder(tmp / "data", n=40, size=32)
    args = train_args(f"folder:{root}", tmp, "--name", "k", "--epochs", "50",
                      "--image-size", "32", "--batch-size", "2", "--model", "resnet18")
    args.remove("--quiet")
    p = subprocess.Popen([sys.executable, "-m", "cnnlab", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    run = tmp / "runs" / "k"
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "data.json").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return run


@case("lifecycle", slow=True)
def case_kill9_first_epoch_then_resume(tmp, ctx):
    run = _kill_in_first_epoch(tmp)
    rc, _, err = cli(["train", "--resume", str(run)])
    # the message must not send the user in a circle: it says to start again, with the command
    return Result("error", rc, err, must=("start", "again", "k"),
                  check="continue it with --resume" not in err)


@case("lifecycle")
def case_name_taken_by_unfinished_run(tmp, ctx):
    """A run directory with no finished epoch, reused by --name: don't point at --resume."""
    (tmp / "runs" / "r").mkdir(parents=True)
    (tmp / "runs" / "r" / "config.yaml").write_text("epochs: 1\n")
    rc, _, err = cli(train_args("digits", tmp, "--max-train-images", "64", "--name", "r"))
    return Result("error", rc, err, must=("r",), check="--resume" not in err)


@case("lifecycle")
def case_resume_finished_run(tmp, ctx):
    cli(train_args("digits", tmp, "--max-train-images", "64", "--name", "r"))
    run = tmp / "runs" / "r"
    before = (run / "last.safetensors").read_bytes()
    rc, out, err = cli(["train", "--resume", str(run)])
    same = (run / "last.safetensors").read_bytes() == before
    said = "already finished all 1 epochs; raise --epochs" in out and "epochs 2-1" not in out
    return Result("ok", rc, err, check=same and said and rc == 0)


@case("lifecycle")
def case_stale_tmp_files_removed(tmp, ctx):
    cli(train_args("digits", tmp, "--max-train-images", "64", "--name", "r"))
    run = tmp / "runs" / "r"
    stale = [run / ".last.safetensors.abc123.tmp", run / ".train_state.pt.x9.tmp"]
    for s in stale:
        s.write_bytes(b"half")
    rc, out, err = cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    gone = not any(s.exists() for s in stale)
    return Result("ok", rc, err, check=gone and rc == 0)


@case("lifecycle")
def case_viz_given_checkpoint_file(tmp, ctx):
    rc, _, err = cli(["viz", "curves", str(ctx.run / "best.safetensors"), "--out", str(tmp / "c.png")])
    if "invalid choice" in err or "unrecognized" in err:
        rc, _, err = cli(["viz", str(ctx.run / "best.safetensors")])
    return Result("error", rc, err, must=("best.safetensors", "parent"))


@case("lifecycle")
def case_report_given_checkpoint_file(tmp, ctx):
    rc, _, err = cli(["report", str(ctx.run / "best.safetensors")])
    return Result("error", rc, err, must=("best.safetensors", "parent"))


@case("lifecycle")
def case_full_disk_during_training(tmp, ctx):
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 14:  # 2 per atomic write: config, data, summary, epoch 1's 4; then full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    rc, _, err = cli(train_args("digits", tmp, "--max-train-images", "64", "--name", "r",
                                "--epochs", "2"),
                     patches=(mock.patch("os.fsync", fsync),))  # fmt: skip
    run = tmp / "runs" / "r"
    from cnnlab.checkpoint import read_checkpoint

    try:
        kept = read_checkpoint(run / "last.safetensors")[1]["epoch"] == 1
    except (OSError, ValueError):
        kept = False
    leftovers = list(run.glob(".*.tmp")) if run.is_dir() else []
    return Result("error", rc, err, must=("space",), check=kept and not leftovers)


# --- outputs ------------------------------------------------------------------------------------


@case("outputs")
def case_csv_formula_class_name(tmp, ctx):
    root = tmp / "data"
    good_folder(root, classes=('=HYPERLINK("http://x","y")', "+cmd", "ok"), n=8)
    rc, _, err = cli(train_args(f"folder:{root}", tmp, "--name", "r", "--eval-split", "test"))
    texts = [p.read_text() for p in (tmp / "runs" / "r").rglob("*.csv")]
    cells = [c for t in texts for line in t.splitlines() for c in line.split(",")]
    bad = [c for c in cells if c.strip('"')[:1] in ("=", "+", "-", "@") and
           not _number(c.strip('"'))]
    return Result("ok", rc, err, check=rc == 0 and bool(texts) and not bad,
                  note=f"unescaped cells: {bad[:3]}")


def _number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
