"""Parameter counts per module, each parameter counted once (tied/shared weights too).

A parameter is charged to the first module, in ``named_modules()`` order, that registers it;
every later module sharing it shows 0 for it and is listed in :attr:`ParamCount.shared`. Totals
come from the root (``model.parameters()`` yields each tensor once), so tied weights (an
embedding reused as output projection, one conv applied twice) are never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from cnnlab.inspect.memory import unique_bytes


@dataclass
class ParamCount:
    """Parameter counts of a model.

    Attributes:
        owned: module path -> (trainable, frozen) parameters it owns (first registration).
        shared: module path -> parameters it registers that an earlier module already owns.
        trainable: total trainable parameters (``requires_grad=True``), each tensor once.
        frozen: total frozen parameters.
        param_bytes: bytes of all distinct parameters.
        buffer_bytes: bytes of all distinct buffers (batch-norm running statistics ...).
    """

    owned: dict[str, tuple[int, int]] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)
    trainable: int = 0
    frozen: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0

    @property
    def total(self) -> int:
        """Trainable + frozen."""
        return self.trainable + self.frozen


def count_params(model: nn.Module) -> ParamCount:
    """Count parameters per owning module and in total.

    Example:
        >>> lin = nn.Linear(3, 2)
        >>> tied = nn.Sequential(lin, nn.ReLU(), lin)
        >>> count_params(tied).total, count_params(tied).owned["0"]
        (8, (8, 0))
    """
    result = ParamCount()
    seen: set[int] = set()
    for name, module in model.named_modules(remove_duplicate=False):
        trainable = frozen = shared = 0
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                shared += p.numel()
                continue
            seen.add(id(p))
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        if name not in result.owned:
            result.owned[name] = (trainable, frozen)
        if shared:
            result.shared[name] = result.shared.get(name, 0) + shared
    distinct = list({id(p): p for p in model.parameters()}.values())
    result.trainable = sum(p.numel() for p in distinct if p.requires_grad)
    result.frozen = sum(p.numel() for p in distinct if not p.requires_grad)
    result.param_bytes = unique_bytes(distinct)
    result.buffer_bytes = unique_bytes(model.buffers())
    return result
