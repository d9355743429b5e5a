"""``StoredImages``: the images of one split as rows of a memory-mapped store, read on demand.

A split of a disk store is not copied out of it (that would be the whole dataset in RAM); it is
the store's image tensor plus the row of each of its samples. Indexing it (``x[idx]``,
``x.index_select(0, idx)``, ``x[a:b]``) gathers just those rows into an ordinary uint8 tensor,
so the code that trains on resident tensors works on it unchanged, one batch in memory at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class StoredImages:
    """Rows ``rows`` of a store's uint8 tensor (M, C, H, W), looking like a (N, C, H, W) tensor.

    Args:
        base: the store's (file-backed) uint8 tensor.
        rows: int64 (N,) row of each image in ``base``.
        sums: int64 (M, C, 2) per-image channel sums and sums of squares (for exact statistics).

    Example:
        >>> base = torch.arange(4 * 2, dtype=torch.uint8).view(4, 1, 1, 2)
        >>> x = StoredImages(base, torch.tensor([3, 1]), np.zeros((4, 1, 2), dtype=np.int64))
        >>> x.shape, x[torch.tensor([1])].flatten().tolist()
        (torch.Size([2, 1, 1, 2]), [2, 3])
    """

    is_stored = True  # what Split and DataBundle test for
    dtype = torch.uint8
    device = torch.device("cpu")
    ndim = 4

    def __init__(self, base: torch.Tensor, rows: torch.Tensor, sums: np.ndarray) -> None:
        self.base = base
        self.rows = rows.to(torch.int64).cpu()
        self.sums = sums

    @property
    def shape(self) -> torch.Size:
        """(N, C, H, W)."""
        return torch.Size((len(self.rows), *self.base.shape[1:]))

    def __len__(self) -> int:
        return len(self.rows)

    def numel(self) -> int:
        """Number of pixel values the view stands for."""
        return int(np.prod(self.shape))

    def size(self, dim: int | None = None) -> Any:
        """Like ``Tensor.size``."""
        return self.shape if dim is None else self.shape[dim]

    def contiguous(self) -> StoredImages:
        """Itself: the rows are gathered into contiguous tensors when read."""
        return self

    def cpu(self) -> StoredImages:
        """Itself (a store lives on the CPU)."""
        return self

    def take_rows(self, index: torch.Tensor) -> StoredImages:
        """A view of the samples at ``index`` (no pixel is read)."""
        return StoredImages(self.base, self.rows[index.cpu()], self.sums)

    @staticmethod
    def concat(views: list[StoredImages]) -> StoredImages:
        """One view of the rows of several views of the same store, in order."""
        if any(v.base is not views[0].base for v in views):
            raise ValueError("StoredImages.concat needs views of one store")
        return StoredImages(views[0].base, torch.cat([v.rows for v in views]), views[0].sums)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """Gather the images at ``index`` into a uint8 tensor (B, C, H, W)."""
        if dim != 0:
            raise ValueError(f"StoredImages.index_select gathers whole images (dim 0), got {dim}")
        return self.base.index_select(0, self.rows[index.cpu()])

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, int):
            return self.base[int(self.rows[key])]
        if isinstance(key, slice):
            return self.base.index_select(0, self.rows[key])
        index = torch.as_tensor(key)
        if index.dtype == torch.bool:
            index = torch.nonzero(index).flatten()
        return self.index_select(0, index)

    def to(self, device: torch.device | str) -> torch.Tensor:
        """Read every image into a resident tensor on ``device``."""
        return self.base.index_select(0, self.rows).to(device)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Exact per-channel mean and population std in [0, 1] units, from the stored sums.

        mean = sum(x) / n, var = sum(x^2) / n - mean^2 over every pixel of the rows (integer
        sums, so the result equals the histogram method of ``channel_stats``).
        """
        s = self.sums[self.rows.numpy()].sum(axis=0)  # (C, 2), exact int64
        n = float(len(self.rows) * self.shape[2] * self.shape[3])
        mean = s[:, 0] / n
        var = np.maximum(s[:, 1] / n - mean**2, 0.0)
        std = np.maximum(np.sqrt(var) / 255.0, 1e-6)
        return tuple(round(float(m) / 255.0, 6) for m in mean), tuple(round(float(v), 6)
                                                                       for v in std)

    def __repr__(self) -> str:
        return f"StoredImages(n={len(self)}, shape={tuple(self.shape[1:])})"
