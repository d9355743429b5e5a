"""Inspection of any ``nn.Module``: summary table, MACs/FLOPs, memory, receptive field, trace.

* :func:`summary` -- per-layer shapes, parameters, MACs/FLOPs, memory, receptive field;
* :func:`receptive_field` -- the gradient support of a central unit, checked against the
  analytic receptive field;
* :func:`trace` -- print each layer's output shape as an input flows through.

Example:
    >>> from torch import nn
    >>> from cnnlab.inspect import summary
    >>> s = summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 32, 32))
    >>> s.totals.params
    224
"""

from cnnlab.inspect._hooks import ForwardError
from cnnlab.inspect._render import human_count
from cnnlab.inspect.empirical import ReceptiveField, receptive_field
from cnnlab.inspect.summary import Row, Summary, Totals, summary
from cnnlab.inspect.trace import trace

__all__ = [
    "ForwardError",
    "ReceptiveField",
    "Row",
    "Summary",
    "Totals",
    "human_count",
    "receptive_field",
    "summary",
    "trace",
]
