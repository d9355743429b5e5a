"""Odd folder layouts, names and file types; bad flags and YAML; predict's odd arguments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from unittest import mock

from bad_inputs.corpus import (
    Result,
    case,
    cli,
    folder_classes,
    good_folder,
    predict_json,
    sub,
    train_args,
)  # fmt: skip


def _train(tmp: Path, root: Path, *extra: str, **kw) -> tuple[int, str, str]:
    return cli(train_args(f"folder:{root}", tmp, *extra), **kw)


# --- folder layouts -----------------------------------------------------------------------------


@case("folders")
def case_holdout_beside_train(tmp, ctx):
    root = tmp / "data"
    good_folder(root / "train")
    good_folder(root / "holdout")
    rc, _, err = _train(tmp, root)
    return Result("warn", rc, err, must=("holdout",))


@case("folders")
def case_class_folders_beside_train(tmp, ctx):
    root = tmp / "data"
    good_folder(root / "train")
    good_folder(root, classes=("bird",))
    rc, _, err = _train(tmp, root)
    return Result("warn", rc, err, must=("bird",))


@case("folders")
def case_system_folders(tmp, ctx):
    root = good_folder(tmp / "data")
    for junk in ("@eaDir", "__MACOSX", "$RECYCLE.BIN"):
        good_folder(root / junk, classes=("x",), n=2)
    (root / "cat" / "Thumbs.db").write_bytes(b"\0" * 10)
    (root / "cat" / ".DS_Store").write_bytes(b"\0" * 10)
    rc, _, err = _train(tmp, root)
    classes = folder_classes(tmp)
    return Result("warn", rc, err, must=("@eaDir",), check=classes == ["cat", "dog"])


@case("folders")
def case_empty_class(tmp, ctx):
    root = good_folder(tmp / "data", classes=("cat", "dog", "emu"), n=6)
    for f in (root / "emu").iterdir():
        f.unlink()
    rc, _, err = _train(tmp, root)
    return Result("warn", rc, err, must=("emu",), check=folder_classes(tmp) == ["cat", "dog"])


@case("folders")
def case_non_utf8_file_name(tmp, ctx):
    root = good_folder(tmp / "data")
    src = root / "cat" / "0.png"
    os.rename(src, os.fsencode(root / "cat") + b"/caf\xe9.png")
    rc, _, err = _train(tmp, root)
    return Result("warn", rc, err, must=("caf\\xe9.png", "UTF-8"))


@case("folders")
def case_non_utf8_folder_name(tmp, ctx):
    root = good_folder(tmp / "data")
    os.rename(root / "dog", os.fsencode(root) + b"/d\xf6g")
    rc, _, err = _train(tmp, root)
    return Result("error", rc, err, must=("d\\xf6g", "UTF-8"))


@case("folders")
def case_unreadable_class_folder(tmp, ctx):
    """Root ignores permissions: the scan is patched to raise PermissionError for one folder."""
    root = good_folder(tmp / "data")
    real = os.scandir
    dog = str(root / "dog")

    def scandir(p="."):
        if os.fspath(p) == dog:
            raise PermissionError(13, "Permission denied", dog)
        return real(p)

    rc, _, err = _train(tmp, root, patches=(mock.patch("os.scandir", scandir),))
    return Result("error", rc, err, must=("dog", "permission"))


@case("folders")
def case_unreadable_folder_as_nobody(tmp, ctx):
    """A real chmod 000 folder, the command run as the user nobody (setpriv)."""
    if not shutil.which("setpriv"):
        return Result("error", 2, "cnnlab train: error: (setpriv missing; skipped) dog",
                      must=("dog",), note="setpriv unavailable")
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="cnnlab-nobody-"))  # /tmp: traversable by nobody
    try:
        root = good_folder(base / "data")
        for p in [base, *base.rglob("*")]:
            os.chmod(p, 0o777 if p.is_dir() else 0o644)
        os.chmod(root / "dog", 0o000)
        args = train_args(f"folder:{root}", base)
        rc, out, err, _ = sub(args, user="nobody", timeout=120,
                              env={"HOME": str(base), "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        os.chmod(base / "data" / "dog", 0o755)
        shutil.rmtree(base, ignore_errors=True)
    return Result("error", rc, err, must=("dog", "permission"))


@case("folders")
def case_empty_dataset_path(tmp, ctx):
    (tmp / "cwd").mkdir()
    good_folder(tmp / "cwd")
    rc, _, err = cli(train_args("folder:", tmp), cwd=tmp / "cwd")
    return Result("error", rc, err, must=("folder:",))


@case("folders")
def case_dataset_path_is_file(tmp, ctx):
    f = tmp / "x.txt"
    f.write_text("x")
    rc, _, err = _train(tmp, f)
    return Result("error", rc, err, must=("x.txt",))


# --- flags and YAML -----------------------------------------------------------------------------


def _config(tmp: Path, text: str, **kw) -> tuple[int, str, str]:
    cfg = tmp / "run.yaml"
    cfg.write_text(text)
    return cli(["train", "--config", str(cfg), "--print-config"], **kw)


@case("config")
def case_yaml_duplicate_key(tmp, ctx):
    rc, _, err = _config(tmp, "epochs: 3\nlr: 0.1\nepochs: 5\n")
    return Result("error", rc, err, must=("epochs", "line 3", "run.yaml"))


@case("config")
def case_yaml_name_int(tmp, ctx):
    rc, _, err = _config(tmp, "name: 123\n")
    return Result("error", rc, err, must=("name", "123"))


@case("config")
def case_yaml_wrong_type(tmp, ctx):
    rc, _, err = _config(tmp, "epochs: many\n")
    return Result("error", rc, err, must=("epochs", "many"))


@case("config")
def case_yaml_unknown_key(tmp, ctx):
    rc, _, err = _config(tmp, "epoch: 3\n")
    return Result("error", rc, err, must=("epoch",))


@case("config")
def case_yaml_not_mapping(tmp, ctx):
    rc, _, err = _config(tmp, "- 1\n- 2\n")
    return Result("error", rc, err, must=("run.yaml", "mapping"))


@case("config")
def case_yaml_invalid(tmp, ctx):
    rc, _, err = _config(tmp, "epochs: [3\n")
    return Result("error", rc, err, must=("run.yaml", "YAML"))


@case("config")
def case_yaml_python_tag(tmp, ctx):
    marker = tmp / "pwned"
    rc, _, err = _config(tmp, f"epochs: !!python/object/apply:os.system ['touch {marker}']\n")
    return Result("error", rc, err, must=("run.yaml",), check=not marker.exists())


@case("config")
def case_yaml_unreadable(tmp, ctx):
    cfg = tmp / "run.yaml"
    cfg.write_text("epochs: 3\n")
    real = Path.read_text

    def read_text(self, *a, **k):
        if self.name == "run.yaml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    rc, _, err = cli(["train", "--config", str(cfg), "--print-config"],
                     patches=(mock.patch.object(Path, "read_text", read_text),))  # fmt: skip
    return Result("error", rc, err, must=("run.yaml", "permission"))


@case("config")
def case_yaml_is_directory(tmp, ctx):
    (tmp / "conf.yaml").mkdir()
    rc, _, err = cli(["train", "--config", str(tmp / "conf.yaml"), "--print-config"])
    return Result("error", rc, err, must=("conf.yaml",))


@case("config")
def case_bad_flag_value(tmp, ctx):
    rc, _, err = cli(["train", "--epochs", "-3", "--print-config"])
    return Result("error", rc, err, must=("epochs", "-3"))


@case("config")
def case_out_dir_is_file(tmp, ctx):
    f = tmp / "taken"
    f.write_text("x")
    rc, _, err = cli(train_args("digits", tmp, "--out-dir", str(f), "--max-train-images", "64"))
    return Result("error", rc, err, must=("taken", "out-dir"))


# --- predict's arguments ------------------------------------------------------------------------


@case("predict", slow=True)
def case_fifo_named_png(tmp, ctx):
    fifo = tmp / "x.png"
    os.mkfifo(fifo)
    rc, _, err, _ = sub(["predict", str(ctx.run), str(fifo), "--backend", "torch"], timeout=60)
    return Result("error", rc, err, must=("x.png", "regular"))


@case("predict")
def case_url(tmp, ctx):
    rc, _, err, _ = predict_json(["https://example.com/cat.jpg"], ctx.run)
    return Result("error", rc, err, must=("URL", "download"))


@case("predict")
def case_all_unreadable_says_why(tmp, ctx):
    p = tmp / "a.png"
    p.write_bytes(b"garbage")
    rc, _, err, _ = predict_json([str(p)], ctx.run)
    return Result("error", rc, err, must=("a.png", "cannot identify"))


@case("predict")
def case_non_utf8_image_name(tmp, ctx):
    d = tmp / "imgs"
    d.mkdir()
    os.rename(ctx.digit_png(tmp), os.fsencode(d) + b"/\xff.png")
    ctx.digit_png(tmp, "ok.png").rename(d / "ok.png")
    rc, out, err, results = predict_json([str(d)], ctx.run)
    rc2, out2, err2 = cli(["predict", str(ctx.run), str(d), "--backend", "torch"])
    return Result("ok", rc2 or rc, err + err2, check=len(results) == 2 and "\\xff" in out2)


@case("predict")
def case_directory_named_png(tmp, ctx):
    (tmp / "dir.png").mkdir()
    rc, _, err, _ = predict_json([str(tmp / "dir.png")], ctx.run)
    return Result("error", rc, err, must=("dir.png",))


@case("predict")
def case_missing_run(tmp, ctx):
    rc, _, err, _ = predict_json([str(tmp / "x.png")], tmp / "nope")
    return Result("error", rc, err, must=("nope",))
