"""One process's share of an epoch: the index order split across the ranks of a distributed run.

The convention of ``torch.utils.data.DistributedSampler``: every rank draws the same epoch order
(same seed), the order is padded by repeating its first indices up to a multiple of the world
size, and rank ``r`` takes ``order[r::world]``. Each rank then gathers only its own rows from
the store, so a run on N processes reads every image of an epoch once in total.
"""

from __future__ import annotations

import torch

from cnnlab._validate import check_int


def shard_order(
    order: torch.Tensor, rank: int, world_size: int, *, pad: bool = True
) -> torch.Tensor:
    """The part of an epoch's index ``order`` that process ``rank`` of ``world_size`` reads.

    Args:
        order: the epoch's sample indices (1-D), identical on every rank.
        rank: this process's rank, in [0, world_size).
        world_size: number of processes.
        pad: repeat the first indices so that every rank gets the same count (as
            DistributedSampler does; ranks must run the same number of steps); False drops
            nothing and gives the first ``len(order) % world_size`` ranks one more index.

    Returns:
        ``order[rank::world_size]`` of the (padded) order.

    Example:
        >>> shard_order(torch.arange(10), 1, 4).tolist()
        [1, 5, 9]
        >>> shard_order(torch.arange(10), 3, 4).tolist()
        [3, 7, 1]
    """
    check_int("world_size", world_size, min_value=1)
    check_int("rank", rank, min_value=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size ({world_size}), got {rank}")
    order = order.flatten()
    if pad and len(order) % world_size:
        extra = world_size - len(order) % world_size
        reps = -(-extra // max(1, len(order)))
        order = torch.cat([order, order.repeat(reps)[:extra]])
    return order[rank::world_size]
