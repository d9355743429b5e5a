"""One recorded forward pass: module hooks for the tree, a torch function mode for every op.

Forward pre/post hooks on every module give the call tree (which module runs inside which);
a ``TorchFunctionMode`` sees every torch call in between, including the ones written inside a
``forward`` (``out += identity``, ``torch.cat``, ``torch.flatten``, ``F.interpolate``), so each op
is charged to the innermost running module. Along the way the analytic receptive-field numbers
travel with the tensors (``receptive.py``). Hooks are removed and every module's train/eval mode
is restored in ``finally``; if the forward pass fails, the error says which layers ran and where
it failed.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from cnnlab.inspect import receptive
from cnnlab.inspect._geometry import raw_output_size, spatial_dims, window
from cnnlab.inspect._ops import FREE_OPS, OpCall, iter_tensors, op_name
from cnnlab.inspect.macs import cost
from cnnlab.inspect.memory import tensor_bytes


class ForwardError(ValueError):
    """The model's forward pass failed; the message names the failing layer and those that ran."""


@dataclass
class CallRecord:
    """One call of one module during the recorded forward pass.

    Attributes:
        index: position in call order (0 is the root model).
        name: registered module path (``""`` for the root).
        module: the module itself.
        parent: index of the calling module's record (None for the root).
        depth: nesting depth in the call tree (root = 0).
        macs: MACs of the ops run directly by this call (not inside a child call).
        ops: other (element-wise) operations of those ops.
        activation_bytes: bytes of the tensors those ops allocated.
        output_shapes: shapes of the tensors the call returned.
        rf: receptive-field numbers of its first output tensor, if on a spatial path.
        done: whether the call returned.
        finished: position in the order in which calls returned (-1 if it did not).
    """

    index: int
    name: str
    module: nn.Module
    parent: int | None
    depth: int
    macs: int = 0
    ops: int = 0
    activation_bytes: int = 0
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    rf: receptive.TensorRF | None = None
    done: bool = False
    finished: int = -1


@dataclass
class Recording:
    """What one forward pass produced: the call records, uncounted ops, and the model output."""

    records: list[CallRecord]
    not_counted: Counter
    output: Any


class _Recorder(TorchFunctionMode):
    """Charges each torch call's MACs/memory to the running module and propagates RF numbers."""

    def __init__(self, names: dict[int, str]) -> None:
        super().__init__()
        self.names = names
        self.records: list[CallRecord] = []
        self.stack: list[int] = []
        self.not_counted: Counter = Counter()
        self.paused = False
        self.returned = 0
        self.failed_op: str | None = None
        self._rf: dict[int, tuple[weakref.ref, receptive.TensorRF]] = {}

    # receptive-field numbers, keyed by tensor identity (the weakref guards against id reuse)
    def rf_of(self, t: torch.Tensor) -> receptive.TensorRF | None:
        entry = self._rf.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def set_rf(self, t: torch.Tensor, rf: receptive.TensorRF | None) -> None:
        if rf:
            self._rf[id(t)] = (weakref.ref(t), rf)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused or not self.stack:  # outside the model's own forward: not its work
            return func(*args, **kwargs)
        name = op_name(func)
        try:
            out = func(*args, **kwargs)
        except Exception:
            self.failed_op = name
            self._check_too_small(OpCall(name, args, kwargs, None))
            raise
        if isinstance(out, (torch.Tensor, tuple, list)):
            self._on_op(OpCall(name, args, kwargs, out))
        return out

    def _on_op(self, call: OpCall) -> None:
        outputs = call.outputs
        if not outputs:
            return
        record = self.records[self.stack[-1]] if self.stack else None
        counted = cost(call)
        if counted is None:
            counted = (0, 0)
            if call.name not in FREE_OPS:
                self.not_counted[call.name] += 1
        inputs = call.inputs
        fresh = [t for t in outputs if not t._is_view() and not any(t is a for a in inputs)]
        rf = receptive.propagate(call, self.rf_of)
        if rf is not None:
            for t in outputs:
                self.set_rf(t, rf)
        first = outputs[0]
        if first.ndim >= 3 and 0 in first.shape[2:] and first.shape[0] and first.shape[1]:
            # an op that silently returns an empty feature map (slicing, pooling to 0)
            sources = [t for t in inputs if t.numel() > 0 and self.rf_of(t)]
            if sources:
                self._too_small(call.name, tuple(sources[0].shape), tuple(first.shape[2:]))
        if record is not None:
            record.macs += counted[0]
            record.ops += counted[1]
            record.activation_bytes += sum(tensor_bytes(t) for t in fresh)

    def _check_too_small(self, call: OpCall) -> None:
        """After a failed conv/pool: if the input was smaller than the window, say so."""
        if not any(call.name.startswith(p) for p in ("conv", "max_pool", "avg_pool", "lp_pool")):
            return
        try:
            x, n = call.input, spatial_dims(call.name)
            win = window(call)
        except (TypeError, ValueError, AttributeError, IndexError):
            return
        sizes = tuple(x.shape[-n:])
        if call.name.startswith("conv_transpose"):
            return
        out = tuple(
            raw_output_size(size, k, s, p, d)
            for size, k, s, p, d in zip(sizes, win.kernel, win.stride, win.padding, win.dilation)
        )
        if min(out) <= 0:
            self._too_small(call.name, tuple(x.shape), out)

    def _too_small(self, op: str, in_shape: tuple, out_size: tuple) -> None:
        layer = _label(self.records[self.stack[-1]]) if self.stack else "the model"
        raise ValueError(
            f"input too small: the spatial size reaches {max(0, min(out_size))} at layer {layer}, "
            f"op {op} on input of shape {tuple(in_shape)} would give spatial size "
            f"{tuple(max(0, v) for v in out_size)}; valid: a larger input size"
        )

    # module hooks
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        parent = self.stack[-1] if self.stack else None
        depth = 0 if parent is None else self.records[parent].depth + 1
        name = self.names.get(id(module), type(module).__name__)
        self.records.append(CallRecord(len(self.records), name, module, parent, depth))
        self.stack.append(len(self.records) - 1)

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.paused = True
        try:
            record = self.records[self.stack.pop()]
            tensors = list(iter_tensors(output))
            record.output_shapes = [tuple(t.shape) for t in tensors]
            record.rf = self.rf_of(tensors[0]) if tensors else None
            record.done = True
            record.finished = self.returned
            self.returned += 1
        finally:
            self.paused = False


def _label(record: CallRecord) -> str:
    kind = type(record.module).__name__
    return f"'{record.name}' ({kind})" if record.name else f"{kind} (the model)"


def _describe_failure(rec: _Recorder, exc: Exception) -> str:
    ran = [r for r in rec.records if r.done and r.depth > 0]
    chain = " > ".join(_label(rec.records[i]) for i in rec.stack)
    tail = ", ".join(f"{r.name} -> {r.output_shapes[0] if r.output_shapes else '()'}"
                     for r in ran[-5:])
    op = f" in op {rec.failed_op}" if rec.failed_op else ""
    return (
        f"forward pass failed in {chain or 'the model'}{op}: {exc}. "
        f"{len(ran)} layers ran before it" + (f", the last: {tail}" if tail else "")
    )


def record_forward(
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    *,
    train: bool = False,
    on_input: Callable[[torch.Tensor], receptive.TensorRF | None] = receptive.input_rf,
    state: dict[str, torch.Tensor] | None = None,
) -> Recording:
    """Run ``model(*args, **kwargs)`` once under ``torch.no_grad`` and record every call.

    Args:
        model: any module.
        args: positional inputs.
        kwargs: keyword inputs.
        train: run in training mode (default eval, so batch-norm statistics are not updated).
        on_input: initial receptive-field numbers of each input tensor.
        state: parameters and buffers to run with instead of the model's own (through
            ``torch.func.functional_call``; e.g. ``meta`` tensors for a shape-only pass).

    Returns:
        The :class:`Recording`.

    Raises:
        ValueError: the input is too small for the model (names the layer and the size).
        ForwardError: the forward pass failed for another reason (names the layer and those
            that ran before it).
    """
    names = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    rec = _Recorder(names)
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(rec.pre_hook))
            handles.append(module.register_forward_hook(rec.post_hook))
        model.train(train)
        for t in iter_tensors((args, kwargs)):
            rec.set_rf(t, on_input(t))
        with torch.no_grad(), rec:
            try:
                if state is None:
                    output = model(*args, **kwargs)
                else:
                    output = functional_call(model, state, args, kwargs, strict=False)
            except ValueError as exc:
                if str(exc).startswith("input too small"):
                    raise
                raise ForwardError(_describe_failure(rec, exc)) from exc
            except Exception as exc:
                raise ForwardError(_describe_failure(rec, exc)) from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode
    return Recording(rec.records, rec.not_counted, output)
