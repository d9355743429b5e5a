"""Bounded background prefetch: gather the next batches in a thread while the step runs.

A batch gathered from a memory-mapped store costs page-cache copies (or disk reads); a thread is
enough to overlap them with the training step, because ``index_select`` releases the GIL while
it copies. The queue holds at most ``depth`` batches, so memory stays bounded; the order is the
order of the input, so results do not depend on the thread's timing. DataLoader workers would
also work, but each would map the store and pickle every batch back through a pipe -- for a
source that is already a tensor, a thread does the same job with one copy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced up to ``depth`` ahead by a background thread.

    Exceptions raised while producing an item are re-raised here, at that item. Closing the
    generator early (``break``) stops the thread.

    Example:
        >>> list(prefetch((i * i for i in range(5)), depth=2))
        [0, 1, 4, 9, 16]
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth!r}")
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="cnnlab-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def gather_batches(
    images: Any, labels: Any, batches: Iterable[Any]
) -> Iterator[tuple[Any, Any]]:
    """``(images[idx], labels[idx])`` for each index tensor of ``batches`` (lazily).

    Example:
        >>> import torch
        >>> x, y = torch.arange(6).view(6, 1), torch.arange(6)
        >>> [b[1].tolist() for b in gather_batches(x, y, [torch.tensor([0, 2])])]
        [[0, 2]]
    """
    for idx in batches:
        idx = idx.to(images.device)
        yield images.index_select(0, idx), labels.index_select(0, idx)
