"""Every registered model: forward and backward at 28x28 gray, 32x32 RGB and 224x224 RGB; exact
minimum input sizes; the uniform API; initialization; bad input; figures from the papers."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

from cnnlab.inspect import summary
from cnnlab.layers.blocks import BasicBlock, Bottleneck
from cnnlab.models import create, list_models, model_options

# Thinner versions of the heavy networks, so that the whole zoo trains a step in seconds on a
# CPU: the depth and every layer type stay, only widths shrink. Full-width VGG/AlexNet/ResNet/
# MobileNet-v2 forward passes are checked against torchvision in test_models_compat.py.
THIN: dict[str, dict] = {
    "alexnet": {"hidden_features": 32},
    "vgg": {"width_divisor": 16, "hidden_features": 32},
    "resnet": {"base_channels": 8},
    "mobilenet": {"width_mult": 0.25},
    "shufflenet_v1": {"width_mult": 0.5},
}
SIZES = [(1, 28), (3, 32), (3, 224)]  # (channels, height = width)
NUM_CLASSES = 7


pytestmark = pytest.mark.usefixtures("one_thread")


def thin_options(name: str) -> dict:
    for prefix, options in THIN.items():
        if name.startswith(prefix):
            return dict(options)
    return {}


@functools.cache
def _built(name: str, in_channels: int, small_input: bool) -> nn.Module:
    extra = {"small_input": True} if small_input else {}
    return create(name, NUM_CLASSES, in_channels, **thin_options(name), **extra)


def build(name: str, in_channels: int = 3, size: int | None = None, small_input: bool = False):
    """A fresh copy of thin ``name``; ``small_input=True`` where ``size`` is below its minimum."""
    model = _built(name, in_channels, small_input)
    if size is not None and size < model.min_input_size:
        model = _built(name, in_channels, True)
    return copy.deepcopy(model)


def test_every_issue_family_is_registered() -> None:
    expected = {
        "simple_cnn", "simple_cnn_dropout", "simple_cnn_bn", "lenet5", "alexnet", "nin",
        "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v1",
        "mobilenet_v2", "shufflenet_v1",
        *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    }  # fmt: skip
    assert expected <= set(list_models())


@pytest.mark.slow
@pytest.mark.parametrize("channels,size", SIZES, ids=[f"{c}x{s}" for c, s in SIZES])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build(name, channels, size)
    model.train()
    x = torch.randn(2, channels, size, size)
    y_hat = model(x)
    assert y_hat.shape == (2, NUM_CLASSES)
    assert torch.isfinite(y_hat).all()
    nn.functional.cross_entropy(y_hat, torch.tensor([0, 1])).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None]  # (speednet freezes some by design)
    assert not no_grad  # every layer takes part in the forward pass
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)


def _runs(model: nn.Module, size: int) -> bool:
    """Whether torch itself can run the network at ``size`` (our input check bypassed)."""
    x = torch.zeros(1, model.in_channels, size, size)
    try:
        with torch.no_grad():
            model.forward_head(model.forward_features(x))
    except RuntimeError:
        return False
    return True


def _variants() -> list[tuple[str, bool]]:
    return [
        (name, small)
        for name in list_models()
        for small in (False, True)
        if not small or "small_input" in model_options(name)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name,small_input", _variants())
def test_min_input_size_is_exact(name: str, small_input: bool) -> None:
    model = build(name, small_input=small_input).eval()
    low = model.min_input_size
    assert _runs(model, low)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, low, low)).shape == (1, NUM_CLASSES)
    if low > 1:  # one pixel less: torch would fail deep inside; we say so up front
        assert not _runs(model, low - 1)
        with pytest.raises(ValueError, match=f"at least {low}x{low} pixels, got {low - 1}x"):
            model(torch.zeros(1, 3, low - 1, low))
    assert model.default_input_size >= low


def test_small_input_hint_in_error() -> None:
    model = build("vgg11")
    with pytest.raises(ValueError, match="small_input=True"):
        model(torch.zeros(1, 3, 28, 28))


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_uniform_api(name: str) -> None:
    model = build(name, in_channels=1, size=32).eval()
    assert (model.num_classes, model.in_channels) == (NUM_CLASSES, 1)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        y_hat = model(x)
        features = model.forward_features(x)
        assert features.ndim == 4 and features.shape[0] == 3
        assert torch.allclose(model.forward_head(features), y_hat, atol=1e-6)
        pre = model.forward_head(features, pre_logits=True)
    assert pre.ndim == 2 and pre.shape[0] == 3
    head = model.get_classifier()  # a Linear, or NiN's last block of convs
    first = next(m for m in head.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    assert first.weight.shape[1] == pre.shape[1]  # pre-logits are what the classifier reads
    model.reset_classifier(4)
    assert model.num_classes == 4
    with torch.no_grad():
        assert model(x).shape == (3, 4)


@pytest.mark.parametrize("name", list_models())
def test_bad_input_channels_and_rank(name: str) -> None:
    model = build(name, in_channels=3, size=32)
    with pytest.raises(ValueError, match="in_channels=3 but the input has 1 channels"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="4-D image batch"):
        model(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"floating-point images, got dtype torch.uint8"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        create("resnet18", num_classes=0)
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) widht_mult.*width_mult"):
        create("mobilenet_v2", widht_mult=0.5)
    with pytest.raises(ValueError, match="groups must be one of 1, 2, 3, 4, 8; got 5"):
        create("shufflenet_v1", groups=5)
    with pytest.raises(ValueError, match="width_mult must be a positive number, got -1"):
        create("mobilenet_v1", width_mult=-1)
    with pytest.raises(ValueError, match="width_divisor must be >= 1, got 0"):
        create("vgg11", width_divisor=0)
    with pytest.raises(ValueError, match="unknown model name 'resnet19'.*resnet18"):
        create("resnet19")


def test_initialization_follows_torchvision() -> None:
    torch.manual_seed(0)
    model = create("resnet18", base_channels=32)
    conv = model.layer3[0].conv1  # 64 -> 128 channels, 3x3
    fan_out = conv.out_channels * 9
    # Kaiming normal, fan_out mode: std = sqrt(2 / fan_out).
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    vgg = create("vgg11", width_divisor=8, hidden_features=512)
    fc = vgg.classifier[3]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05)  # N(0, 0.01) linears
    assert torch.all(fc.bias == 0)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual(name: str) -> None:
    model = create(name, base_channels=8, zero_init_residual=True).eval()
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    last_bns = [b.bn2 if isinstance(b, BasicBlock) else b.bn3 for b in blocks]
    assert all(torch.all(bn.weight == 0) for bn in last_bns)
    # Each block now starts as relu(shortcut(x)); a block without projection is relu(x).
    block = next(b for b in blocks if b.downsample is None)
    x = torch.randn(1, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


def test_small_input_stems() -> None:
    resnet = create("resnet18", small_input=True)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, nn.Identity)
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        assert resnet.forward_features(x).shape[-1] == 4  # 32 / 8 (three stride-2 stages)
        vgg = create("vgg11", width_divisor=16, small_input=True)
        assert vgg.forward_features(x).shape[-1] == 2  # 32 / 16 (four pools)


def test_googlenet_aux_outputs_in_training_only() -> None:
    model = create("googlenet", aux_logits=True)
    x = torch.randn(2, 3, 64, 64)
    logits, aux2, aux1 = model.train()(x)
    assert logits.shape == aux2.shape == aux1.shape == (2, 10)
    model.reset_classifier(3)
    assert [t.shape for t in model(x)] == [(2, 3)] * 3
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3)


def _paper_macs(name: str, **options) -> tuple[int, int]:
    with torch.device("meta"):
        model = create(name, num_classes=1000, **options)
    totals = summary(model, (1, 3, 224, 224)).totals
    return totals.params, totals.macs


def test_mobilenet_v1_matches_the_paper() -> None:
    # Howard et al. 2017, Table 8: 1.0 MobileNet-224 has 569 M mult-adds and 4.2 M parameters.
    params, macs = _paper_macs("mobilenet_v1")
    assert macs == pytest.approx(569e6, rel=0.005)
    assert params == pytest.approx(4.2e6, rel=0.02)


@pytest.mark.slow
@pytest.mark.parametrize(
    "groups,width,mflops",
    # Zhang et al. 2017, Table 2 (complexity of ShuffleNet 1x for g = 1..8) and Table 3 (0.5x
    # and 2x with g = 3). The paper's FLOPs are multiply-adds.
    [
        (1, 1.0, 143),
        (2, 1.0, 140),
        (3, 1.0, 137),
        (4, 1.0, 133),
        (8, 1.0, 137),
        (3, 0.5, 38),
        (3, 2.0, 524),
    ],  # fmt: skip
)
def test_shufflenet_v1_matches_the_paper(groups: int, width: float, mflops: int) -> None:
    _, macs = _paper_macs("shufflenet_v1", groups=groups, width_mult=width)
    assert macs / 1e6 == pytest.approx(mflops, rel=0.02)
