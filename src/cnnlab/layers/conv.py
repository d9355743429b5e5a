"""Standard, dilated and transposed convolutions with checked arguments and TF-style "same".

The classes subclass ``torch.nn.Conv2d`` / ``Conv3d`` / ``ConvTranspose2d``, so their parameters,
state dicts and ``isinstance`` checks stay those of torch (a torchvision ``state_dict`` loads
as-is). What they add: every constructor argument and every input is checked up front with a
``ValueError`` naming the argument, the value and what is valid, and ``padding="same"`` works
for any kernel, stride and dilation, splitting an odd total padding like TensorFlow (the extra
pixel goes right/bottom). See ``cnnlab.layers.shapes`` for the size formulas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab._validate import check_choice, check_divisible, check_input, check_int, check_tuple
from cnnlab.layers.shapes import check_fits, conv_transpose_output_size, same_pad_f

PaddingArg = int | tuple[int, ...] | str
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_conv_args(
    n_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...],
    padding: PaddingArg,
    dilation: int | tuple[int, ...],
    groups: int,
    padding_mode: str,
) -> PaddingArg:
    """Check a convolution's constructor arguments; return the padding as a tuple or string."""
    check_int("in_channels", in_channels, min_value=1)
    check_int("out_channels", out_channels, min_value=1)
    check_tuple("kernel_size", kernel_size, n_dims, min_value=1)
    check_tuple("stride", stride, n_dims, min_value=1)
    check_tuple("dilation", dilation, n_dims, min_value=1)
    check_int("groups", groups, min_value=1)
    check_divisible("in_channels", in_channels, "groups", groups)
    check_divisible("out_channels", out_channels, "groups", groups)
    check_choice("padding_mode", padding_mode, _PADDING_MODES)
    if isinstance(padding, str):
        return check_choice("padding", padding, ("same", "valid"))
    return check_tuple("padding", padding, n_dims, min_value=0)


class _SameConvMixin:
    """Shared forward of :class:`Conv2d` and :class:`Conv3d`: input checks and "same" padding.

    Mixed into ``nn.Conv2d``/``nn.Conv3d``, which provide the attributes used here.
    """

    _n_dims: int

    def _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                   groups, bias, padding_mode) -> None:
        """Check the arguments, then build the torch conv; "same" pads in :meth:`forward`."""
        padding = _check_conv_args(self._n_dims, in_channels, out_channels, kernel_size, stride,
                                   padding, dilation, groups, padding_mode)
        # torch refuses "same" with stride > 1; we build with 0 and pad in forward instead
        super().__init__(in_channels, out_channels, kernel_size, stride,  # type: ignore[call-arg]
                         0 if padding == "same" else padding, dilation, groups, bias, padding_mode)
        if padding == "same":
            self.padding = "same"  # as torch's own "same" does

    def _check(self, x: torch.Tensor) -> None:
        check_input(x, ndim=self._n_dims + 2, channels=self.in_channels,
                    layout=_LAYOUTS[self._n_dims])
        if self.padding != "same":
            padding = (0,) * self._n_dims if self.padding == "valid" else self.padding
            check_fits(tuple(x.shape[2:]), self.kernel_size, padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if self.padding != "same":
            return self._conv_forward(x, self.weight, self.bias)
        pad = same_pad_f(x.shape[2:], self.kernel_size, self.stride, self.dilation)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        x = F.pad(x, pad, mode=mode)  # (N, C, *padded spatial)
        conv = F.conv2d if self._n_dims == 2 else F.conv3d
        # (N, C_out, *ceil(n / s))
        return conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Conv2d(_SameConvMixin, nn.Conv2d):
    """2-D convolution (cross-correlation) with checked arguments and TF-style ``"same"``.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: step between windows.
        padding: zeros added on each side (int or tuple), ``"valid"`` (none) or ``"same"``
            (output ``ceil(n / stride)``; odd total padding puts the extra pixel right/bottom).
        dilation: spacing between kernel taps (atrous convolution).
        groups: split channels into this many independent groups (must divide both counts).
        bias: add a learnable bias per output channel.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Example:
        >>> Conv2d(3, 8, kernel_size=4, stride=2, padding="same")(torch.zeros(1, 3, 7, 7)).shape
        torch.Size([1, 8, 4, 4])
    """

    _n_dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias, padding_mode)


class Conv3d(_SameConvMixin, nn.Conv3d):
    """3-D convolution over ``(N, C, D, H, W)`` with the same arguments as :class:`Conv2d`.

    Example:
        >>> Conv3d(1, 4, kernel_size=3, padding="same")(torch.zeros(2, 1, 5, 8, 8)).shape
        torch.Size([2, 4, 5, 8, 8])
    """

    _n_dims = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias, padding_mode)


class DilatedConv2d(Conv2d):
    """Dilated (atrous) convolution: kernel taps ``dilation`` pixels apart, size kept by default.

    A ``k×k`` kernel with dilation ``d`` sees ``d*(k - 1) + 1`` pixels per side with only ``k²``
    weights, so stacking them grows the receptive field exponentially (Yu & Koltun 2016,
    https://arxiv.org/abs/1511.07122).

    Example:
        >>> DilatedConv2d(4, 4, kernel_size=3, dilation=2)(torch.zeros(1, 4, 9, 9)).shape
        torch.Size([1, 4, 9, 9])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        dilation: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = "same",
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)


class ConvTranspose2d(nn.ConvTranspose2d):
    """Transposed convolution (deconvolution) with checked arguments and output-size control.

    Its output size is ``(n - 1)*s - 2p + d*(k - 1) + output_padding + 1``. A strided conv maps
    ``s`` different input sizes to the same output size, so the transpose needs to be told which
    one to produce: give ``output_padding`` here, or an ``output_size`` (fixed in the constructor
    or per call in ``forward``) and the output padding is derived and checked.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as for
            :class:`Conv2d` (padding must be ints: it crops the output).
        output_padding: extra pixels added at the end of each spatial dimension (< stride or
            < dilation).
        output_size: default spatial size ``(H, W)`` of the output, or None.

    Example:
        >>> up = ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1, output_size=(28, 28))
        >>> up(torch.zeros(1, 8, 14, 14)).shape
        torch.Size([1, 4, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        output_size: int | tuple[int, int] | None = None,
    ) -> None:
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int or a tuple of 2 ints for a transposed "
                             f"convolution, got {padding!r}; use output_size to fix the size")
        _check_conv_args(2, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, "zeros")
        op = check_tuple("output_padding", output_padding, 2, min_value=0)
        s, d = check_tuple("stride", stride, 2), check_tuple("dilation", dilation, 2)
        for i in range(2):
            if op[i] >= max(s[i], d[i]):
                raise ValueError(f"output_padding={output_padding!r} must be smaller than "
                                 f"stride={stride!r} or dilation={dilation!r}; valid: "
                                 f"0..{max(s[i], d[i]) - 1} in spatial dimension {i}")
        self.output_size = (None if output_size is None
                            else check_tuple("output_size", output_size, 2, min_value=1))
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation)

    def allowed_output_sizes(self, input_size: tuple[int, int]) -> list[range]:
        """The output sizes reachable from ``input_size``, one ``range`` per spatial dimension.

        Example:
            >>> ConvTranspose2d(1, 1, 3, stride=2, padding=1).allowed_output_sizes((14, 14))
            [range(27, 29), range(27, 29)]
        """
        # output_padding = 0 gives the smallest size; like torch, allow up to stride - 1 more
        smallest = conv_transpose_output_size(tuple(input_size), self.kernel_size, self.stride,
                                              self.padding, 0, self.dilation).size
        return [range(lo, lo + s) for lo, s in zip(smallest, self.stride)]

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        check_input(x, ndim=4, channels=self.in_channels)
        target = output_size if output_size is not None else self.output_size
        if target is None:
            for n, k, s, p, op, d in zip(x.shape[2:], self.kernel_size, self.stride,
                                         self.padding, self.output_padding, self.dilation):
                if isinstance(n, int) and (n - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
                    # the padding crops everything: let the formula explain it
                    conv_transpose_output_size(tuple(x.shape[2:]), self.kernel_size,
                                               self.stride, self.padding, self.output_padding,
                                               self.dilation)
            return super().forward(x)
        target = tuple(target)[-2:]  # torch also accepts (N, C, H, W)
        allowed = self.allowed_output_sizes(tuple(x.shape[2:]))
        for i, (t, r) in enumerate(zip(target, allowed)):
            if t not in r:
                raise ValueError(
                    f"output_size={tuple(target)!r} cannot be reached from input size "
                    f"{tuple(x.shape[2:])} in spatial dimension {i}; valid sizes there: "
                    f"{r.start}..{r.stop - 1}"
                )
        return super().forward(x, output_size=list(target))  # (N, C_out, *target)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.output_size is None else f"{text}, output_size={self.output_size}"


__all__ = ["Conv2d", "Conv3d", "ConvTranspose2d", "DilatedConv2d"]
