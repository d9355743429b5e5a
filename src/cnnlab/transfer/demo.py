"""Offline transfer-learning demonstration on scikit-learn's digits: 0-4 -> 5-9.

The 8x8 digits are pasted at random positions of a 16x16 black canvas ("translated digits"):
on centred digits a few labelled pixels already separate the classes (logistic regression on raw
pixels reaches ~90% with 2 images per class), so no features are needed and nothing can
transfer; with the digit anywhere, a classifier needs position-robust stroke features, which
is what a backbone pretrained on other digits brings.

1. Pretrain ``simple_cnn`` on the digits 0-4 (the source task) and save it as a cnnlab run.
2. Target task: the digits 5-9 (other classes, so a new 5-way head) with only ``per_class``
   labelled training images per class; every other 5-9 image is the target test set.
3. Fine-tune: :func:`load_pretrained` from the source run (the head is replaced because the
   classes differ), ``freeze(model, "backbone")``, train the head. Scratch: the same network
   from random weights, every parameter trainable. Same optimizer, learning rate, batches, steps.

``python benchmarks/transfer_digits.py`` runs it for several seeds; a test runs one seed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.transfer.freeze import freeze
from cnnlab.transfer.optim import param_groups
from cnnlab.transfer.pretrained import load_pretrained

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class DemoResult:
    """Target-test accuracies of the two ways to train on the small target set."""

    source_acc: float  # the pretrained model on the held-out 0-4 images
    finetuned_acc: float  # pretrained backbone (frozen) + new head
    scratch_acc: float  # the same network from random weights, all trainable
    n_target_train: int
    n_target_test: int
    steps: int


def _subset(x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]):
    keep = torch.isin(y, torch.tensor(classes))
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[list(classes)] = torch.arange(len(classes))
    return x[keep], remap[y[keep]]


def _on_canvas(images: torch.Tensor, canvas: int, seed: int) -> torch.Tensor:
    """Paste each (C, s, s) image at a random offset into a black (C, canvas, canvas) image."""
    n, c, s, _ = images.shape
    out = torch.zeros((n, c, canvas, canvas), dtype=images.dtype)
    g = torch.Generator().manual_seed(seed + 100)
    offsets = torch.randint(0, canvas - s + 1, (n, 2), generator=g)
    for i, (top, left) in enumerate(offsets.tolist()):
        out[i, :, top : top + s, left : left + s] = images[i]
    return out


def _fit(model: nn.Module, groups, x, y, steps: int, batch: int, seed: int) -> None:
    """``steps`` Adam steps on random mini-batches (drawn with ``seed``) of (x, y)."""
    opt = torch.optim.Adam(groups)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=g)[:batch]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.eval()(x).argmax(1) == y).float().mean())


def digits_transfer_demo(
    seed: int = 0,
    per_class: int = 5,
    steps: int = 40,
    lr: float = 3e-3,
    pretrain_epochs: int = 8,
    image_size: int = 8,
    work_dir: str | os.PathLike | None = None,
    freeze_spec: str = "backbone",
    model: str = "simple_cnn",
    canvas: int | None = 16,
) -> DemoResult:
    """Pretrain on digits 0-4, then fine-tune vs train from scratch on a few 5-9 images.

    Args:
        seed: seed of the split, the initializations and the batches.
        per_class: labelled target training images per class.
        steps: optimizer steps on the target set (the same budget for both ways).
        lr: Adam learning rate (the same for both ways).
        pretrain_epochs: epochs over the 0-4 training images.
        image_size: images are resized to this square size.
        work_dir: where the source run is saved (default: a temporary folder).
        freeze_spec: what to freeze while fine-tuning (see :func:`cnnlab.transfer.freeze`).
        model: the zoo model used for all three networks.
        canvas: place every digit at a random position of a ``canvas`` x ``canvas`` black
            image ("translated digits"), so that position must not matter to the classifier.

    Example:
        >>> r = digits_transfer_demo(seed=0)  # doctest: +SKIP
        >>> r.finetuned_acc > r.scratch_acc  # doctest: +SKIP
        True
    """
    from cnnlab.checkpoint import save_checkpoint
    from cnnlab.data import channel_stats, load_data, to_float_normalized
    from cnnlab.models import create

    data = load_data("digits", image_size=image_size, seed=seed)
    x_all = torch.cat([data.train.images, data.val.images, data.test.images])
    if canvas is not None:
        x_all = _on_canvas(x_all, canvas, seed)
    n_train = len(data.train)
    mean, std = channel_stats(x_all[:n_train])
    norm = {"mean": list(mean), "std": list(std)}

    def prep(images: torch.Tensor) -> torch.Tensor:
        return to_float_normalized(images, mean, std)

    y_all = torch.cat([data.train.labels, data.val.labels, data.test.labels])
    xs, ys = _subset(prep(x_all[:n_train]), y_all[:n_train], SOURCE_CLASSES)
    xs_test, ys_test = _subset(prep(x_all[n_train:]), y_all[n_train:], SOURCE_CLASSES)

    # 1. the source task
    torch.manual_seed(seed)
    source = create(model, num_classes=len(SOURCE_CLASSES), in_channels=1)
    steps_per_epoch = -(-len(xs) // 64)
    _fit(source, source.parameters(), xs, ys, pretrain_epochs * steps_per_epoch, 64, seed)
    source_acc = _accuracy(source, xs_test, ys_test)

    # 2. the target task: per_class images of each of 5-9 to train on, the rest to test on
    xt, yt = _subset(prep(x_all), y_all, TARGET_CLASSES)
    g = torch.Generator().manual_seed(seed + 1)
    order = torch.randperm(len(yt), generator=g)
    train_idx = torch.cat([order[yt[order] == c][:per_class] for c in range(5)])
    test_mask = torch.ones(len(yt), dtype=torch.bool)
    test_mask[train_idx] = False
    x_tr, y_tr, x_te, y_te = xt[train_idx], yt[train_idx], xt[test_mask], yt[test_mask]
    batch = min(32, len(y_tr))

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(work_dir or tmp) / "digits0-4"
        meta = {
            "model": {"name": model, "kwargs": {"num_classes": 5, "in_channels": 1}},
            "class_names": [str(c) for c in SOURCE_CLASSES],
            "normalization": norm,
            "input_size": [1, image_size, image_size],
        }
        save_checkpoint(run / "best.safetensors", source, meta)

        # 3a. fine-tune: pretrained backbone (frozen) + a new head
        torch.manual_seed(seed + 2)
        tuned = create(model, num_classes=len(TARGET_CLASSES), in_channels=1)
        report = load_pretrained(tuned, run, class_names=[str(c) for c in TARGET_CLASSES])
    assert [k for k, _ in report.skipped] == ["classifier.fc2.weight", "classifier.fc2.bias"]
    freeze(tuned, freeze_spec)
    _fit(tuned, param_groups(tuned, head_lr=lr), x_tr, y_tr, steps, batch, seed + 3)

    # 3b. scratch: the same network, random weights, everything trainable, same budget
    torch.manual_seed(seed + 2)
    scratch = create(model, num_classes=len(TARGET_CLASSES), in_channels=1)
    _fit(scratch, param_groups(scratch, head_lr=lr), x_tr, y_tr, steps, batch, seed + 3)

    return DemoResult(
        source_acc=source_acc,
        finetuned_acc=_accuracy(tuned, x_te, y_te),
        scratch_acc=_accuracy(scratch, x_te, y_te),
        n_target_train=len(y_tr),
        n_target_test=len(y_te),
        steps=steps,
    )
