"""The API every zoo model shares: ``forward_features`` / ``forward_head`` / ``forward``.

``forward_features`` maps images ``(B, C_in, H, W)`` to the last feature map ``(B, C, h, w)``;
``forward_head`` pools it and applies the classifier (``pre_logits=True`` stops right before the
last layer, which is what transfer learning replaces through :meth:`reset_classifier`).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_int


def _is_tracing() -> bool:
    """True while TorchScript tracing or torch.compile/export trace the model."""
    compiler = getattr(torch, "compiler", None)
    compiling = getattr(compiler, "is_compiling", None)
    return torch.jit.is_tracing() or bool(compiling and compiling())


class ImageClassifier(nn.Module):
    """Base class of the zoo: uniform attributes, a cheap input check, replaceable head.

    Subclasses pass ``min_input_size`` (smallest height/width the network accepts) and
    ``default_input_size`` (the size it was designed for: 224 for ImageNet nets, 32 or 28 for the
    course's small nets and for ``small_input=True``), implement ``forward_features`` and
    ``forward_head`` and name their final layer in ``classifier_name``.

    Example:
        >>> from cnnlab.models import create
        >>> net = create("simple_cnn")
        >>> net.forward_head(net.forward_features(torch.zeros(1, 3, 32, 32))).shape
        torch.Size([1, 10])
    """

    # Dotted path of the final layer that maps features to ``num_classes`` outputs.
    classifier_name: str = "fc"

    def __init__(
        self, num_classes: int, in_channels: int, min_input_size: int, default_input_size: int
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, min_value=1)
        self.in_channels = check_int("in_channels", in_channels, min_value=1)
        self.min_input_size = min_input_size
        self.default_input_size = default_input_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, in_channels, H, W)``."""
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` for a wrong rank, channel count, dtype or too small an image.

        Only the shape is read (no data), so the check costs nothing next to the forward pass.
        """
        if _is_tracing():
            return
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{name} expects a 4-D image batch (B, {self.in_channels}, H, W), got {shape}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} was built for in_channels={self.in_channels} but the input has "
                f"{x.shape[1]} channels (shape {tuple(x.shape)}); build it with "
                f"in_channels={x.shape[1]} or convert the images"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{name} expects floating-point images, got dtype {x.dtype}; convert them, "
                "e.g. x.float() / 255 for uint8 pixels"
            )
        height, width = x.shape[-2], x.shape[-1]
        if height < self.min_input_size or width < self.min_input_size:
            raise ValueError(
                f"{name} needs images of at least {self.min_input_size}x{self.min_input_size} "
                f"pixels, got {height}x{width} (shape {tuple(x.shape)}); resize the images"
                + self._small_input_hint()
            )

    def _small_input_hint(self) -> str:
        if getattr(self, "small_input", True):
            return ""
        return ", or build the model with small_input=True (3x3 stride-1 stem) for small images"

    def get_classifier(self) -> nn.Module:
        """The final layer (``Linear``, or a 1x1 ``Conv2d`` for NiN).

        Example:
            >>> from cnnlab.models import create
            >>> create("simple_cnn").get_classifier()
            Linear(in_features=128, out_features=10, bias=True)
        """
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialized one with ``num_classes`` outputs.

        Example:
            >>> from cnnlab.models import create
            >>> net = create("simple_cnn")
            >>> net.reset_classifier(5)
            >>> net(torch.zeros(1, 3, 32, 32)).shape
            torch.Size([1, 5])
        """
        check_int("num_classes", num_classes, min_value=1)
        old = self.get_classifier()
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(
                old.in_channels,
                num_classes,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                bias=old.bias is not None,
            )
        else:  # pragma: no cover - every zoo model ends in Linear or Conv2d
            raise TypeError(f"cannot replace a classifier of type {type(old).__name__}")
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        parent_name, _, child = self.classifier_name.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, child, new)
        self.num_classes = num_classes


def init_weights(module: nn.Module, linear_std: float | None = 0.01) -> None:
    """Initialize like torchvision: Kaiming-normal (fan_out) convs, BN 1/0, N(0, std) linears.

    Kaiming (He et al. 2015): std = sqrt(2 / fan) keeps the activation variance constant through
    ReLU layers; fan_out = out_channels * kh * kw keeps the gradients' variance constant instead.
    ``linear_std=None`` keeps PyTorch's default Linear init (uniform +-1/sqrt(fan_in)).

    Example:
        >>> init_weights(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
