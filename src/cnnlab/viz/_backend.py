"""Select matplotlib's non-interactive Agg backend unless the user chose one explicitly.

cnnlab never uses ``matplotlib.pyplot``: every figure is a ``matplotlib.figure.Figure`` created
directly, which no backend can turn into a window. Choosing Agg as well (only when neither the
``MPLBACKEND`` environment variable nor an earlier ``import matplotlib.pyplot`` picked a
backend) keeps third-party code that does call pyplot headless too, while a Jupyter user's inline
backend (set through ``MPLBACKEND``) is left alone.
"""

from __future__ import annotations

import os
import sys

import matplotlib

if not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
