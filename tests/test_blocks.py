"""Composite blocks: shapes, parameter counts derived by hand, the residual/shortcut semantics."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from cnnlab.layers import (
    BasicBlock,
    Bottleneck,
    ConvNormAct,
    Inception,
    InvertedResidual,
    NiNBlock,
    ShuffleNetUnit,
    VGGBlock,
)
from cnnlab.layers.shuffle import channel_shuffle


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- ConvNormAct --------------------------------------------------------------------------------


def test_conv_norm_act_layout_and_bias_rule() -> None:
    block = ConvNormAct(3, 8, kernel_size=3)
    conv, bn, act = block
    assert conv.bias is None  # a norm follows: its mean subtraction would cancel a bias
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU) and act.inplace
    assert conv.padding == (1, 1)
    assert list(block.state_dict()) == [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]  # fmt: skip  (torchvision Conv2dNormActivation's names)
    plain = ConvNormAct(3, 8, kernel_size=3, norm_layer=None, act_layer=None)
    assert len(plain) == 1 and plain[0].bias is not None
    assert n_params(plain) == 3 * 8 * 9 + 8


@pytest.mark.parametrize("kernel,dilation,stride", [(1, 1, 1), (3, 1, 1), (5, 1, 2), (3, 2, 1)])
def test_conv_norm_act_default_padding_keeps_size(kernel: int, dilation: int, stride: int) -> None:
    block = ConvNormAct(4, 6, kernel, stride=stride, dilation=dilation)
    y = block(torch.randn(2, 4, 10, 10))
    assert y.shape == (2, 6, 10 // stride, 10 // stride)


def test_conv_norm_act_takes_any_norm_and_activation() -> None:
    block = ConvNormAct(4, 8, 3, norm_layer=partial(nn.GroupNorm, 2), act_layer=nn.GELU)
    assert isinstance(block[1], nn.GroupNorm) and isinstance(block[2], nn.GELU)
    assert block(torch.randn(1, 4, 6, 6)).shape == (1, 8, 6, 6)


def test_norm_by_name() -> None:
    block = ConvNormAct(4, 8, 3, norm_layer="group")
    assert isinstance(block[1], nn.GroupNorm) and block[0].bias is None
    assert len(ConvNormAct(4, 8, 3, norm_layer="none")) == 2  # conv (with bias) + act
    assert isinstance(BasicBlock(8, 8, norm_layer="instance").bn1, nn.InstanceNorm2d)
    assert isinstance(VGGBlock(1, 3, 8, norm_layer="batch")[1], nn.BatchNorm2d)
    with pytest.raises(ValueError, match="'batchy'"):
        ConvNormAct(4, 8, 3, norm_layer="batchy")


def test_conv_norm_act_bad_groups() -> None:
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=8"):
        ConvNormAct(8, 9, 3, groups=3)


# --- VGG, NiN, Inception ------------------------------------------------------------------------


def test_vgg_block() -> None:
    block = VGGBlock(2, 3, 16)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    assert n_params(block) == (3 * 16 * 9 + 16) + (16 * 16 * 9 + 16)
    assert block(torch.randn(1, 3, 32, 32)).shape == (1, 16, 16, 16)
    with_bn = VGGBlock(1, 3, 16, norm_layer=nn.BatchNorm2d)
    assert [type(m) for m in with_bn] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert with_bn[0].bias is None


def test_nin_block() -> None:
    block = NiNBlock(3, 8, kernel_size=5, stride=1, padding=2)
    assert [m.kernel_size for m in block if isinstance(m, nn.Conv2d)] == [(5, 5), (1, 1), (1, 1)]
    assert n_params(block) == (3 * 8 * 25 + 8) + 2 * (8 * 8 + 8)
    assert block(torch.randn(2, 3, 12, 12)).shape == (2, 8, 12, 12)


def test_inception_concatenates_four_branches() -> None:
    block = Inception(192, 64, 96, 128, 16, 32, 32).eval()
    x = torch.randn(1, 192, 28, 28)
    y = block(x)
    assert y.shape == (1, 64 + 128 + 32 + 32, 28, 28)
    with torch.no_grad():  # the channel order is branch 1, 2, 3, 4
        assert torch.equal(y[:, :64], block.branch1(x))
        assert torch.equal(y[:, 64:192], block.branch2(x))
        assert torch.equal(y[:, 192:224], block.branch3(x))
        assert torch.equal(y[:, 224:], block.branch4(x))
    # 5x5 (paper) vs 3x3 (torchvision): the branch-3 conv weights differ by 16*32*(25-9).
    paper = Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=5)
    tv = Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=3)
    assert n_params(paper) - n_params(tv) == 16 * 32 * (25 - 9)
    with pytest.raises(ValueError, match="branch3_kernel_size must be one of 3, 5; got 7"):
        Inception(8, 1, 1, 1, 1, 1, 1, branch3_kernel_size=7)


# --- Residual blocks ----------------------------------------------------------------------------


def test_basic_block_projection_rules() -> None:
    assert BasicBlock(16, 16).downsample is None
    down = BasicBlock(16, 32, stride=2).downsample
    assert down[0].kernel_size == (1, 1) and down[0].stride == (2, 2)
    assert BasicBlock(16, 16, projection=True).downsample is not None
    with pytest.raises(ValueError, match="projection=False needs stride=1"):
        BasicBlock(16, 32, projection=False)
    y = BasicBlock(16, 32, stride=2)(torch.randn(2, 16, 9, 9))
    assert y.shape == (2, 32, 5, 5)  # padded 3x3 stride 2: ceil(9 / 2)


def test_basic_block_is_relu_of_sum() -> None:
    torch.manual_seed(0)
    block = BasicBlock(8, 8).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        assert torch.allclose(block(x), torch.relu(branch + x))
        block.zero_init_last()
        assert torch.equal(block(x), torch.relu(x))  # starts as the identity (then ReLU)


def test_basic_block_without_norm_has_biases() -> None:
    block = BasicBlock(4, 8, norm_layer=None)
    assert block.conv1.bias is not None and isinstance(block.bn1, nn.Identity)
    assert n_params(block) == (4 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (4 * 8 + 8)


def test_bottleneck() -> None:
    block = Bottleneck(64, 16)  # 64 -> 16 -> 16 -> 64: no projection needed
    assert block.downsample is None and block.out_channels == 64
    assert n_params(block) == (64 * 16 + 16 * 16 * 9 + 16 * 64) + 2 * (16 + 16 + 64)
    assert block.conv2.stride == (1, 1)
    strided = Bottleneck(64, 32, stride=2)
    assert strided.conv2.stride == (2, 2) and strided.conv1.stride == (1, 1)  # ResNet v1.5
    assert strided(torch.randn(1, 64, 8, 8)).shape == (1, 128, 4, 4)
    block.eval().zero_init_last()
    x = torch.randn(1, 64, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


# --- MobileNetV2, ShuffleNet --------------------------------------------------------------------


def test_inverted_residual() -> None:
    block = InvertedResidual(16, 16, stride=1, expand_ratio=6)
    assert block.use_res_connect
    # 1x1 expand (16->96, BN), depthwise 3x3 (96, BN), 1x1 project (96->16, BN)
    assert n_params(block) == (16 * 96 + 2 * 96) + (96 * 9 + 2 * 96) + (96 * 16 + 2 * 16)
    with torch.no_grad():  # linear bottleneck: zero the last BN and only the input remains
        block.conv[-1].weight.zero_()
        x = torch.randn(2, 16, 7, 7)
        assert torch.equal(block.eval()(x), x)
    no_expand = InvertedResidual(16, 24, stride=2, expand_ratio=1)
    assert not no_expand.use_res_connect and len(no_expand.conv) == 3
    assert no_expand(torch.randn(1, 16, 7, 7)).shape == (1, 24, 4, 4)
    with pytest.raises(ValueError, match="stride must be one of 1, 2; got 3"):
        InvertedResidual(16, 16, stride=3)


def test_shufflenet_unit_shapes_and_concat_shortcut() -> None:
    torch.manual_seed(0)
    add = ShuffleNetUnit(240, 240, stride=1, groups=3)
    assert add(torch.randn(2, 240, 8, 8)).shape == (2, 240, 8, 8)
    concat = ShuffleNetUnit(24, 240, stride=2, groups=3, first_groups=1).eval()
    assert concat.conv1[0].groups == 1 and concat.conv3[0].groups == 3
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        y = concat(x)
    assert y.shape == (2, 240, 4, 4)
    # The first in_channels outputs are the average-pooled input (after the final ReLU).
    pooled = nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    assert torch.allclose(y[:, :24], torch.relu(pooled))


def test_shufflenet_unit_bad_channels() -> None:
    with pytest.raises(ValueError, match="out_channels must equal in_channels=240"):
        ShuffleNetUnit(240, 480, stride=1, groups=3)
    with pytest.raises(ValueError, match="out_channels must exceed in_channels=240"):
        ShuffleNetUnit(240, 240, stride=2, groups=3)
    with pytest.raises(ValueError, match="groups=8 must divide bottleneck channels"):
        ShuffleNetUnit(240, 240, stride=1, groups=8)  # 240 / 4 = 60 bottleneck channels


def test_channel_shuffle_lets_groups_talk() -> None:
    """Perturb input group 0 only: with the shuffle every output group changes, without it
    (groups=1 makes channel_shuffle the identity) the grouped convs keep it in group 0."""
    torch.manual_seed(0)
    # 48 channels, 3 groups of 16; bottleneck 12 = 3 groups of 4 (>= 3, so a shuffle can send
    # one channel of group 0 to every group).
    unit = ShuffleNetUnit(48, 48, stride=1, groups=3).eval()
    x = torch.randn(1, 48, 6, 6)
    x2 = x.clone()
    x2[:, :16] += 1.0  # input group 0 of 3

    def changed_groups() -> list[bool]:
        with torch.no_grad():
            delta = (unit(x2) - unit(x)).abs()
        return [bool(delta[:, g * 16 : (g + 1) * 16].max() > 1e-6) for g in range(3)]

    assert changed_groups() == [True, True, True]
    unit.groups = 1
    assert changed_groups() == [True, False, False]
    assert channel_shuffle(torch.arange(4.0).view(1, 4, 1, 1), 1).flatten().tolist() == [
        0.0, 1.0, 2.0, 3.0
    ]  # fmt: skip
