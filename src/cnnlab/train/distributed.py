"""torch.distributed for ``cnnlab train``: a thin layer over one process (world size 1 = no-op).

``torchrun`` starts one process per device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
(and ``TORCHELASTIC_RESTART_COUNT`` when it restarts a failed group). As in torchvision's
``references/classification/utils.py``, this module reads them, joins the process group (gloo
for CPU tensors, nccl for CUDA ones), picks the process's device from ``LOCAL_RANK``, and offers
the few collectives the loop needs: a barrier, a broadcast of rank 0's decisions, sums of
counts and the gathering of evaluation logits. Every function is a no-op (or the identity) in
a single process, so the training loop is one code path for any world size.

Example:
    >>> world = init_from_env()
    >>> world.world_size, world.is_main
    (1, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# Generous: on a loaded machine, rank 0 may decode the dataset cache while the others wait.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)

# Errors a user can cause, re-raised with the same type on every rank (see on_main).
_PORTABLE = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


@dataclass(frozen=True)
class World:
    """This process's place in the group: rank, world size, local rank (its device index)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_from_env joined the group (and finish() leaves it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def is_initialized() -> bool:
    """A process group exists (torchrun with more than one process, or the caller's own)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that writes the run directory.

    Example:
        >>> is_main_process()
        True
    """
    return get_rank() == 0


def restart_count() -> int:
    """How many times torchrun restarted this group (``TORCHELASTIC_RESTART_COUNT``; 0 if none)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def elastic_run_id() -> str | None:
    """torchrun's rendezvous id (``TORCHELASTIC_RUN_ID``), the same across restarts of a launch."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


def init_from_env() -> World:
    """Join the process group torchrun describes in the environment, or stay a single process.

    With ``WORLD_SIZE`` > 1 (set by torchrun) and no group yet, this initializes one over
    ``env://`` with gloo for CPU tensors and, where CUDA is available, nccl for CUDA tensors
    (``"cpu:gloo,cuda:nccl"``). A group the caller already initialized is used as it is.

    Example:
        >>> init_from_env().rank
        0
    """
    if is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _local_rank(), owns_group=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World(0, 1, _local_rank())
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = _local_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    # torchrun keeps one store for all restarts of a launch, and the group's keys (each rank's
    # gloo address) carry no attempt number: a restarted rank could read a killed peer's stale
    # address and fail with "Connection refused". Each attempt gets its own key prefix.
    store, rank, size = next(dist.rendezvous("env://", timeout=PROCESS_GROUP_TIMEOUT))
    store = dist.PrefixStore(f"cnnlab/attempt_{restart_count()}/", store)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=size,
                            timeout=PROCESS_GROUP_TIMEOUT)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def finish(world: World) -> None:
    """Leave the process group if :func:`init_from_env` joined it."""
    if world.owns_group and is_initialized():
        dist.destroy_process_group()


def _local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def resolve_device(name: str, world: World, single: Callable[[str], torch.device]) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` under torchrun, else ``single(name)``.

    Under torchrun with several processes, ``auto`` and ``cuda`` mean this process's GPU
    (``cuda:LOCAL_RANK``); ``cpu`` trains on the CPU with gloo. An explicit ``cuda:N`` or
    ``mps`` is refused there: each process takes its GPU from LOCAL_RANK.
    """
    if not world.distributed:
        return single(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' is not available here (no CUDA GPU); use --device cpu")
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    raise ValueError(
        f"device {name!r} cannot be used under torchrun with {world.world_size} processes: each "
        "process takes its GPU from LOCAL_RANK; use --device cuda (or auto) or --device cpu"
    )


def barrier() -> None:
    """Wait until every process reaches this point (no-op in a single process)."""
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (pickled by torch.distributed; internal use only).

    Example:
        >>> broadcast_object({"stop": True})
        {'stop': True}
    """
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it (unchanged in a single process)."""
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def on_main(fn: Callable[[], T], *, then_others: bool = False) -> T:
    """Run ``fn`` on rank 0 and give its result to every rank, errors included.

    A user error raised on rank 0 (a bad dataset path, a run name already taken) is raised
    again, with the same type and message, on every rank, so that no process waits forever
    for one that failed. With ``then_others`` each other rank runs ``fn`` itself after rank 0
    succeeded (e.g. loading data once rank 0 has written the decoded cache), instead of
    receiving rank 0's result.

    Example:
        >>> on_main(lambda: 42)
        42
    """
    if not is_initialized():
        return fn()
    result: Any = None
    outcome: tuple[str, Any] = ("ok", None)
    if dist.get_rank() == 0:
        try:
            result = fn()
            outcome = ("ok", None if then_others else result)
        except _PORTABLE as exc:
            outcome = ("error", (type(exc).__name__, str(exc)))
            broadcast_object(outcome)
            raise
        except BaseException as exc:
            broadcast_object(("error", ("RuntimeError", f"rank 0 failed: {exc!r}")))
            raise
    outcome = broadcast_object(outcome)
    if dist.get_rank() == 0:
        return result
    kind, value = outcome
    if kind == "error":
        name, message = value
        cls = next((c for c in _PORTABLE if c.__name__ == name), RuntimeError)
        raise cls(message)
    return fn() if then_others else value


def shard_bounds(n: int, world: World) -> tuple[int, int]:
    """``[start, stop)`` of this rank's contiguous share of ``n`` items, no padding.

    Shares differ by at most one item and cover ``range(n)`` exactly once (unlike
    ``DistributedSampler``, which repeats items to make the shares equal).

    Example:
        >>> shard_bounds(5, World(rank=1, world_size=2))
        (3, 5)
    """
    base, extra = divmod(n, world.world_size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


def gather_rows(local: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """Concatenate every rank's :func:`shard_bounds` share of an (n, ...) CPU tensor, in order.

    Shares are padded to the largest one for ``all_gather`` and the padding is cut off again,
    so every row is counted exactly once.
    """
    if not world.distributed:
        return local
    sizes = [shard_bounds(n, World(r, world.world_size))[1] - shard_bounds(
        n, World(r, world.world_size))[0] for r in range(world.world_size)]
    width = max(sizes)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[: len(local)] = local
    device = torch.device("cuda", torch.cuda.current_device()) if _uses_nccl() else None
    if device is not None:
        padded = padded.to(device)
    parts = [torch.empty_like(padded) for _ in range(world.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s].cpu() for p, s in zip(parts, sizes)])


def reduce_device(device: torch.device) -> torch.device:
    """Where a tensor must live for a collective: CUDA for nccl, else the CPU."""
    return device if device.type == "cuda" and _uses_nccl() else torch.device("cpu")


def _uses_nccl() -> bool:
    return is_initialized() and "nccl" in str(dist.get_backend()) and torch.cuda.is_available()
