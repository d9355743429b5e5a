"""The model registry: create, list_models, register_model and their errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import create, list_models, register_model
from cnnlab.models._registry import _MODELS


def test_create_simple_cnn_gray_32() -> None:
    net = create("simple_cnn", num_classes=10, in_channels=1)
    assert (net.num_classes, net.in_channels) == (10, 1)
    y_hat = net(torch.randn(2, 1, 32, 32))
    assert y_hat.shape == (2, 10)
    assert torch.isfinite(y_hat).all()


def test_simple_cnn_is_the_course_network() -> None:
    net = create("simple_cnn", num_classes=10, in_channels=3)
    # conv 3*32*9+32, conv 32*64*9+64, fc 4096*128+128, fc 128*10+10
    expected = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (4096 * 128 + 128) + (128 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == expected
    feats = net.forward_features(torch.zeros(1, 3, 32, 32))
    assert feats.shape == (1, 64, 8, 8)
    # At 32x32 the adaptive pool is the identity.
    assert torch.equal(net.pool(feats), feats)


def test_variants_differ_as_documented() -> None:
    drop = create("simple_cnn_dropout")
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in drop.modules())
    bn = create("simple_cnn_bn")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 2
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d))


def test_list_models_patterns() -> None:
    names = list_models()
    assert {"simple_cnn", "simple_cnn_bn", "simple_cnn_dropout"} <= set(names)
    assert list_models("simple_cnn_b*") == ["simple_cnn_bn"]
    assert "simple_cnn_dropout" in list_models("dropout")  # no wildcard: substring
    assert list_models("no_such_model*") == []


def test_unknown_name_lists_closest() -> None:
    with pytest.raises(
        ValueError, match=r"unknown model name 'simple_cn'.*closest names: simple_cnn"
    ):
        create("simple_cn")


def test_bad_num_classes_and_kwargs() -> None:
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        create("simple_cnn", num_classes=0)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        create("simple_cnn", in_channels=0)
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) colour.*dropout=0.5"):
        create("simple_cnn_dropout", colour=True)


def test_register_refuses_duplicates_and_bad_signatures() -> None:
    with pytest.raises(ValueError, match="'simple_cnn' is already registered"):

        @register_model(name="simple_cnn")
        def other(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
            return nn.Identity()

    with pytest.raises(ValueError, match="must accept the keyword arguments"):

        @register_model
        def _bad_factory(classes: int = 10) -> nn.Module:
            return nn.Identity()

    assert "_bad_factory" not in _MODELS


def test_input_checks() -> None:
    net = create("simple_cnn", in_channels=1)
    with pytest.raises(ValueError, match="in_channels=1 but the input has 3 channels"):
        net(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 4x4 pixels, got 3x32"):
        net(torch.zeros(1, 1, 3, 32))
    with pytest.raises(ValueError, match="4-D image batch"):
        net(torch.zeros(1, 32, 32))


def test_reset_classifier_and_pre_logits() -> None:
    net = create("simple_cnn")
    x = torch.randn(2, 3, 32, 32)
    assert net.forward_head(net.forward_features(x), pre_logits=True).shape == (2, 128)
    net.reset_classifier(4)
    assert net(x).shape == (2, 4) and net.num_classes == 4
