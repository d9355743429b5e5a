"""Inspection of any ``nn.Module``: summary table, MACs/FLOPs, memory, receptive field, trace.

Example:
    >>> from torch import nn
    >>> from cnnlab.inspect import summary
    >>> s = summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 32, 32))
    >>> s.totals.params
    224
"""

from cnnlab.inspect._hooks import ForwardError
from cnnlab.inspect.summary import Row, Summary, Totals, summary

__all__ = ["ForwardError", "Row", "Summary", "Totals", "summary"]
