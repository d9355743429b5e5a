"""ShuffleNet v1 (Zhang, Zhou, Lin & Sun 2017, "ShuffleNet: An Extremely Efficient CNN").

Grouped 1x1 convolutions make the pointwise layers cheap; a channel shuffle after the first of
them lets information cross the groups.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_choice
from cnnlab.layers.blocks import ConvNormAct, ShuffleNetUnit
from cnnlab.models._base import ImageClassifier, init_weights
from cnnlab.models._registry import register_model

# Paper Table 1: output channels of stages 2, 3, 4 for each number of groups g (at 1x width);
# the groups keep the cost about 140 M multiply-adds at 224 (Table 2).
SHUFFLENET_V1_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
# Units per stage (Table 1): the first of each stage has stride 2.
SHUFFLENET_V1_REPEATS: tuple[int, int, int] = (4, 8, 4)


def _round_to(value: float, multiple: int) -> int:
    """``value`` rounded to the nearest positive multiple of ``multiple``."""
    return max(multiple, int(round(value / multiple)) * multiple)


class ShuffleNetV1(ImageClassifier):
    """A 3x3/2 conv (24 channels) and a 3x3/2 max-pool, three stages of ShuffleNet units, GAP, fc.

    Shapes at 224 with g = 3: (B, C, 224, 224) -> conv (B, 24, 112, 112) -> pool (B, 24, 56, 56)
    -> stage2 (B, 240, 28, 28) -> stage3 (B, 480, 14, 14) -> stage4 (B, 960, 7, 7) -> GAP -> fc.
    Minimum input 1x1 (every strided layer is padded, so sizes halve rounding up).

    Args:
        num_classes: outputs.
        in_channels: image channels.
        groups: groups of the 1x1 convs: 1, 2, 3, 4 or 8 (paper Table 1).
        width_mult: the paper's scale factor s ("ShuffleNet s x"): 0.25, 0.5, 1, 1.5, 2 ...;
            channels are rounded so the groups divide them.
        small_input: stride-1 stem conv and no max-pool, for 28-32 px images.

    Example:
        >>> ShuffleNetV1(num_classes=10, groups=8)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        groups: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=1,
            default_input_size=32 if small_input else 224,
        )
        check_choice("groups", groups, tuple(SHUFFLENET_V1_CHANNELS))
        if not isinstance(width_mult, (int, float)) or width_mult <= 0:
            raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
        self.groups = groups
        self.small_input = small_input
        # Channels are rounded so that the grouped convs split evenly: the stem to a multiple of
        # g (the first branch has out - stem channels), the stages to multiples of 4g (their
        # bottleneck has out/4 channels). At 1x every value of Table 1 is already such a multiple.
        channels = _round_to(24 * width_mult, groups)
        self.stem = ConvNormAct(in_channels, channels, 3, stride=1 if small_input else 2)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        for i, (width, repeats) in enumerate(
            zip(SHUFFLENET_V1_CHANNELS[groups], SHUFFLENET_V1_REPEATS, strict=True)
        ):
            out = _round_to(width * width_mult, 4 * groups)
            units = []
            for j in range(repeats):
                # The very first 1x1 conv sees only 24 channels: the paper does not group it.
                first_groups = 1 if i == 0 and j == 0 else groups
                stride = 2 if j == 0 else 1
                units.append(ShuffleNetUnit(channels, out, stride, groups, first_groups))
                channels = out
            stages.append(nn.Sequential(*units))
        self.stage2, self.stage3, self.stage4 = stages
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x))  # (B, 24, H/4, W/4)
        x = self.stage2(x)  # (B, c2, H/8, W/8)
        x = self.stage3(x)  # (B, c3, H/16, W/16)
        return self.stage4(x)  # (B, c4, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, c4)
        return x if pre_logits else self.fc(x)


@register_model
def shufflenet_v1(
    num_classes: int = 10,
    in_channels: int = 3,
    groups: int = 3,
    width_mult: float = 1.0,
    small_input: bool = False,
) -> ShuffleNetV1:
    """ShuffleNet v1 (Zhang et al. 2017), ``groups`` in 1, 2, 3, 4, 8 (default 3 as the paper).

    Example:
        >>> shufflenet_v1(groups=3, small_input=True)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return ShuffleNetV1(num_classes, in_channels, groups, width_mult, small_input)
