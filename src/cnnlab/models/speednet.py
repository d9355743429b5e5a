"""SpeedNet: a small airbench-style network for fast CIFAR-10 training (``--model speednet``).

The design follows airbench94 (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
arXiv 2404.00498, github.com/KellerJordan/cifar10-airbench), which itself descends from David
Page's "How to train your ResNet" (myrtle.ai, 2018) and tysam-code's hlb-CIFAR10:

* **Patch-whitening stem** (Page 2018; airbench): a frozen 2x2 convolution whose filters are the
  eigenvectors of the covariance of 2x2 training patches, scaled by ``1/sqrt(eigenvalue)``, and
  their negatives (so a following GELU keeps both signs): 2 * C * 2 * 2 = 24 channels for RGB.
  Fitted from training images by :meth:`SpeedNet.init_whitening` (``cnnlab train
  --whiten-init``); only its bias trains.
* **Conv -> max-pool -> BN -> GELU, conv -> BN -> GELU** blocks at three resolutions (airbench's
  ``ConvGroup``): pooling right after the first conv makes the second conv 4x cheaper.
* **Identity (dirac) initialisation** of every 3x3 convolution (airbench; cf. Zagoruyko & Komodakis
  2017 "DiracNets"): the first ``in_channels`` filters start as the identity map, so the deep
  stack starts close to a shallow one and trains quickly without residual connections.
* **Batch norm with a frozen unit scale** (airbench): only the shift (bias) learns; momentum 0.4
  in PyTorch's convention (airbench's 0.6 = weight of the old running value).
* **Global max-pool, bias-free linear head, logits scaled by 1/9** (airbench's ``Mul(1/9)``),
  which keeps the initial softmax soft under the large learning rates the recipe uses.

Widths are chosen for a CPU: airbench94's 64/256/256 costs ~118 M multiply-adds per 32x32
image, the default 32/64/128 here ~20 M (``cnnlab summary speednet``); see
``benchmarks/speedrun.py`` for what each width trains to on two cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.layers.blocks import ConvNormAct
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import register_model

_WHITEN_KERNEL = 2


def _frozen_scale_bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    """BatchNorm2d whose scale stays 1 (not trained); only the shift learns."""
    bn = nn.BatchNorm2d(channels, momentum=momentum, eps=1e-12)
    bn.weight.requires_grad_(False)
    return bn


def dirac_init_(conv: nn.Conv2d) -> nn.Conv2d:
    """Make the first ``min(out, in)`` filters of ``conv`` the identity map (torch.nn.init.dirac_).

    The remaining filters keep their (Kaiming-uniform) initialisation; the bias, if any, is 0.

    Example:
        >>> conv = dirac_init_(nn.Conv2d(4, 4, 3, padding=1, bias=False))
        >>> x = torch.randn(1, 4, 5, 5)
        >>> bool(torch.allclose(conv(x), x))
        True
    """
    w = conv.weight.data  # (out, in, kh, kw)
    n = min(w.shape[0], w.shape[1])
    torch.nn.init.dirac_(w[:n])
    if conv.bias is not None:
        conv.bias.data.zero_()
    return conv


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (airbench's ConvGroup).

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        bn_momentum: PyTorch batch-norm momentum (weight of the new batch statistics).
        dirac: identity-initialise both convolutions (:func:`dirac_init_`).

    Example:
        >>> ConvGroup(8, 16)(torch.zeros(2, 8, 16, 16)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(
        self, in_channels: int, out_channels: int, bn_momentum: float = 0.4, dirac: bool = True
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _frozen_scale_bn(out_channels, bn_momentum)
        self.act = nn.GELU()
        self.block2 = ConvNormAct(
            out_channels, out_channels, 3,
            norm_layer=lambda c: _frozen_scale_bn(c, bn_momentum), act_layer=nn.GELU,
        )
        if dirac:
            dirac_init_(self.conv1)
            dirac_init_(self.block2[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))  # (B, out, H/2, W/2)
        return self.block2(x)


class SpeedNet(ImageClassifier):
    """Whitening stem, three :class:`ConvGroup` blocks, global max-pool, scaled linear head.

    Shapes at 32x32 with widths (32, 64, 128): (B, 3, 32, 32) -> whiten 2x2 -> (B, 24, 31, 31)
    -> block 1 -> (B, 32, 15, 15) -> block 2 -> (B, 64, 7, 7) -> block 3 -> (B, 128, 3, 3) ->
    max -> (B, 128) -> logits (B, num_classes). Minimum input: 9x9 (the last block sees
    1x1; batch norm then needs batches of 2+ images in training).

    Args:
        num_classes: outputs.
        in_channels: image channels.
        widths: channels of the three blocks.
        bn_momentum: PyTorch batch-norm momentum.
        dirac: identity-initialise the 3x3 convolutions.
        logit_scale: multiplier of the logits (airbench: 1/9).

    Example:
        >>> SpeedNet()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        bn_momentum: float = 0.4,
        dirac: bool = True,
        logit_scale: float = 1 / 9,
    ) -> None:
        super().__init__(num_classes, in_channels, min_input_size=9, default_input_size=32)
        widths = tuple(widths)
        if len(widths) != 3 or not all(isinstance(w, int) and w >= 1 for w in widths):
            raise ValueError(f"widths must be three positive integers, got {widths!r}")
        if not 0.0 < bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1], got {bn_momentum!r}")
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {logit_scale!r}")
        self.widths = widths
        self.logit_scale = float(logit_scale)
        whiten_width = 2 * in_channels * _WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, _WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # fitted by init_whitening, then frozen
        nn.init.zeros_(self.whiten.bias)
        self.act = nn.GELU()
        chans = (whiten_width, *widths)
        self.blocks = nn.Sequential(
            *(ConvGroup(chans[i], chans[i + 1], bn_momentum, dirac) for i in range(3))
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Fit the stem to normalized float images (N, C, H, W): whitened 2x2 patches.

        The filters become ``V / sqrt(lambda + eps)`` and ``-V / sqrt(lambda + eps)`` for the
        eigen-decomposition ``cov = V diag(lambda) V^T`` of the (uncentred) patch covariance,
        so the stem's first half maps the patches of ``images`` to coordinates of covariance
        ~ identity (exactly ``lambda / (lambda + eps)``).

        Example:
            >>> net = SpeedNet()
            >>> net.init_whitening(torch.randn(16, 3, 8, 8))
        """
        c, k = self.in_channels, _WHITEN_KERNEL
        if images.ndim != 4 or images.shape[1] != c or not images.is_floating_point():
            raise ValueError(
                f"init_whitening needs float images (N, {c}, H, W), got "
                f"{tuple(images.shape)} {images.dtype}"
            )
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)  # (P, C*k*k)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps).unsqueeze(1)).flip(0)
        filters = filters.reshape(c * k * k, c, k, k)
        w = self.whiten.weight
        w.copy_(torch.cat([filters, -filters]).to(dtype=w.dtype, device=w.device))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.whiten(x)))  # (B, widths[2], h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)  # (B, widths[2])
        if pre_logits:
            return x
        return self.fc(x) * self.logit_scale  # (B, num_classes)


@register_model
def speednet(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    dirac: bool = True,
    bn_momentum: float = 0.4,
) -> SpeedNet:
    """An airbench-style net sized for CPUs (whitening stem, 3 conv groups, ~20 M MACs at 32 px).

    Example:
        >>> speednet(widths=(16, 32, 64))(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return SpeedNet(num_classes, in_channels, widths, bn_momentum, dirac)


@register_model
def speednet_small(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = (16, 32, 64),
    dirac: bool = True,
    bn_momentum: float = 0.4,
) -> SpeedNet:
    """:func:`speednet` at half width (16/32/64, ~6.8 M MACs at 32 px): ``--preset cifar10-fast``.

    Example:
        >>> speednet_small()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return SpeedNet(num_classes, in_channels, widths, bn_momentum, dirac)
