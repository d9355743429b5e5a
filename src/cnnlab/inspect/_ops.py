"""One recorded torch operation, its normalized name, and helpers to read its arguments.

The inspector sees every torch function called during the forward pass (through a
``TorchFunctionMode``, see ``_hooks.py``): ``torch.conv2d``, ``F.relu``, ``Tensor.add`` (what
``x + y`` calls), ``torch.cat`` ... Each call becomes an :class:`OpCall`. The metric tables
(``macs.py``, ``receptive.py``) are keyed by the call's normalized name, e.g. ``x += y``
(``Tensor.__iadd__``) and ``torch.add`` both become ``"add"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

# Dunder methods that are the same arithmetic as a named op: ``__iadd__`` (x += y) and
# ``__radd__`` (1 + x) are additions, ``__truediv__`` a division ...
_DUNDER = {
    "add": "add", "iadd": "add", "radd": "add",
    "sub": "sub", "isub": "sub", "rsub": "sub",
    "mul": "mul", "imul": "mul", "rmul": "mul",
    "truediv": "div", "itruediv": "div", "rtruediv": "div", "div": "div",
    "matmul": "matmul", "rmatmul": "matmul", "imatmul": "matmul",
    "pow": "pow", "ipow": "pow", "rpow": "pow", "neg": "neg",
}  # fmt: skip

# Calls that do no arithmetic by definition: metadata, views, copies, allocation and mode
# switches. They cost 0 MACs and are never reported as "not counted".
FREE_OPS = frozenset(
    """
    dim size shape dtype device ndim layout is_cuda is_meta is_contiguous numel stride
    storage_offset data_ptr requires_grad grad_fn data names is_sparse is_quantized T mT H
    view view_as reshape reshape_as flatten unflatten squeeze unsqueeze permute transpose t
    movedim swapaxes swapdims contiguous expand expand_as chunk split unbind narrow select
    getitem setitem len iter bool format repr hash clone detach to type float double half
    bfloat16 cpu cuda identity
    empty empty_like zeros zeros_like ones ones_like full full_like new_zeros new_ones new_empty
    new_full new_tensor tensor arange fill zero copy set_grad_enabled get_device element_size
    item tolist numpy
    """.split()
)


def op_name(func: Any) -> str:
    """Return the normalized name of a torch callable.

    ``Tensor.__iadd__`` -> ``"add"``, ``Tensor.relu_`` -> ``"relu"``, the getter of ``Tensor.shape``
    -> ``"shape"``, ``F.max_pool2d`` with ``return_indices=True`` -> ``"max_pool2d"``.

    Example:
        >>> op_name(torch.Tensor.__iadd__), op_name(torch.relu_)
        ('add', 'relu')
    """
    name = getattr(func, "__name__", None)
    if name == "__get__":  # a property getter: Tensor.shape.__get__ -> "shape"
        name = getattr(getattr(func, "__self__", None), "__name__", None)
    if not name:
        return type(func).__name__
    if name.startswith("__") and name.endswith("__"):
        inner = name[2:-2]
        return _DUNDER.get(inner, inner)
    if name.endswith("_") and not name.startswith("_"):  # in-place variant: relu_ -> relu
        name = name[:-1]
    return name.removesuffix("_with_indices").lstrip("_")


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Yield every tensor inside nested tuples, lists and dicts (outputs, arguments).

    Example:
        >>> len(list(iter_tensors((torch.zeros(1), {"a": [torch.ones(2)]}))))
        2
    """
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from iter_tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from iter_tensors(item)


@dataclass
class OpCall:
    """One torch call seen during the forward pass.

    Attributes:
        name: normalized name (see :func:`op_name`).
        args: positional arguments as passed.
        kwargs: keyword arguments as passed.
        out: the returned value (a tensor, a tuple of tensors, ...).
    """

    name: str
    args: tuple
    kwargs: dict
    out: Any

    def arg(self, index: int, key: str, default: Any = None) -> Any:
        """Argument by position ``index`` or by keyword ``key``, else ``default``.

        Example:
            >>> OpCall("conv2d", (1, 2), {"stride": 2}, None).arg(3, "stride", 1)
            2
        """
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(key, default)

    @property
    def input(self) -> torch.Tensor | None:
        """The first tensor argument (the data input of nearly every op)."""
        return next(iter_tensors((self.args, self.kwargs)), None)

    @property
    def inputs(self) -> list[torch.Tensor]:
        """Every tensor argument, in order."""
        return list(iter_tensors((self.args, self.kwargs)))

    @property
    def outputs(self) -> list[torch.Tensor]:
        """Every tensor the call returned."""
        return list(iter_tensors(self.out))

    @property
    def output(self) -> torch.Tensor | None:
        """The first tensor returned (the value; ``max_pool2d`` may also return indices)."""
        return next(iter_tensors(self.out), None)
