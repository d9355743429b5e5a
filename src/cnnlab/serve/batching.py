"""Micro-batching: concurrent requests joined into one forward pass, with a bounded queue.

A CNN on a CPU classifies 32 images in one call much faster than in 32 calls (one pass over the
weights, wide matrix products), so the server does not run each request alone. Requests put
their images on a queue; one model thread takes the first waiting request, keeps collecting for
at most ``window_ms`` (or until ``max_batch`` images are gathered), runs the model once, and hands
each request its rows back on the event loop. Under load the queue fills while the model runs,
so batches form without waiting at all, and the model thread starts the next batch at once: it
never waits for the event loop (which is busy parsing requests and writing answers meanwhile).

The queue holds at most ``max_queue`` images; a request that does not fit is refused at once
(:class:`QueueFull`, answered 503 with ``Retry-After``) instead of waiting without bound.

Why our own: Starlette/uvicorn have no request batching, and the serving frameworks that do
(TorchServe, Triton, Ray Serve) are whole servers, far more than this extra installs.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class QueueFull(Exception):
    """The queue has no room for a request's images; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Job:
    x: np.ndarray  # (n, C, H, W) uint8
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchResult:
    """One request's rows of a batch and how they were computed.

    Attributes:
        probs: ``(n, K)`` class probabilities of the request's images.
        queue_ms: from enqueueing to the start of its forward pass.
        model_ms: the forward pass (shared with the batch).
        batch_size: images in that forward pass.
    """

    probs: np.ndarray
    queue_ms: float
    model_ms: float
    batch_size: int


class MicroBatcher:
    """Join concurrent :meth:`submit` calls into batches for ``fn``.

    Args:
        fn: uint8 ``(B, C, H, W)`` -> ``(B, K)`` probabilities; run in one model thread.
        max_batch: images per forward pass at most (one larger request runs alone).
        window_ms: how long the first request of a batch waits for company.
        max_queue: images waiting at most; beyond that :meth:`submit` raises :class:`QueueFull`.

    Example:
        >>> async def demo():
        ...     b = MicroBatcher(lambda x: x.reshape(len(x), -1).astype(float), max_batch=8)
        ...     await b.start()
        ...     outs = await asyncio.gather(*(b.submit(np.full((1, 1, 1, 2), i)) for i in range(3)))
        ...     await b.stop()
        ...     return [o.probs.tolist() for o in outs], b.batches
        >>> asyncio.run(demo())
        ([[[0.0, 0.0]], [[1.0, 1.0]], [[2.0, 2.0]]], 1)
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 32,
        window_ms: float = 5.0,
        max_queue: int = 256,
    ) -> None:
        from cnnlab._validate import check_int

        check_int("max_batch", max_batch, min_value=1)
        check_int("max_queue", max_queue, min_value=1)
        if not window_ms >= 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        self.fn = fn
        self.max_batch = max_batch
        self.window_s = window_ms / 1000
        self.max_queue = max_queue
        self._jobs: collections.deque[_Job] = collections.deque()
        self._waiting = 0  # images in self._jobs
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # forward passes run
        self.images = 0  # images classified
        self.last_model_s = 0.0  # duration of the latest forward pass

    @property
    def waiting(self) -> int:
        """Images queued and not yet in a forward pass."""
        return self._waiting

    async def start(self) -> None:
        """Start the model thread; results are delivered on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cnnlab-model", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the model thread after its current batch; requests still queued get an error."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            left, self._jobs, self._waiting = list(self._jobs), collections.deque(), 0
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        for job in left:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    async def submit(self, x: np.ndarray) -> BatchResult:
        """Queue ``x`` (``(n, C, H, W)`` uint8) and wait for its probabilities.

        Raises:
            QueueFull: the queue cannot take ``n`` more images now.
            RuntimeError: the model thread is not running.
        """
        if self._thread is None or self._stopping:
            raise RuntimeError("MicroBatcher.start() was not called")
        job = _Job(x, asyncio.get_running_loop().create_future())
        with self._cond:
            if self._waiting + len(x) > self.max_queue:
                raise QueueFull(self.retry_after())
            self._jobs.append(job)
            self._waiting += len(x)
            self._cond.notify()
        return await job.future

    def retry_after(self) -> int:
        """Whole seconds until the queue has likely drained (at least 1)."""
        per_batch = max(self.last_model_s, 0.001)
        return max(1, int(np.ceil(per_batch * (self._waiting / self.max_batch + 1))))

    def _take(self) -> list[_Job]:
        """Pop waiting jobs up to ``max_batch`` images (a larger first job goes alone)."""
        jobs, n = [], 0
        while self._jobs and (not jobs or n + len(self._jobs[0].x) <= self.max_batch):
            job = self._jobs.popleft()
            self._waiting -= len(job.x)
            if job.future.cancelled():  # the client went away while waiting
                continue
            jobs.append(job)
            n += len(job.x)
        return jobs

    def _next_batch(self) -> list[_Job] | None:
        """Block until a batch is due (window over or batch full); None when stopping."""
        with self._cond:
            while not self._jobs and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = self._jobs[0].queued_at + self.window_s
            while self._waiting < self.max_batch and not self._stopping:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            return None if self._stopping else self._take()

    def _run(self) -> None:
        assert self._loop is not None
        while (jobs := self._next_batch()) is not None:
            if not jobs:
                continue
            x = np.concatenate([j.x for j in jobs]) if len(jobs) > 1 else jobs[0].x
            start = time.perf_counter()
            try:
                probs = self.fn(x)
            except Exception as exc:  # the model failed on this batch: its requests get it
                self._loop.call_soon_threadsafe(_fail, jobs, exc)
                continue
            end = time.perf_counter()
            self.last_model_s = end - start
            self.batches += 1
            self.images += len(x)
            results, row = [], 0
            for j in jobs:
                n = len(j.x)
                queue_ms = (start - j.queued_at) * 1000
                results.append(
                    BatchResult(probs[row : row + n], queue_ms, (end - start) * 1000, len(x))
                )
                row += n
            self._loop.call_soon_threadsafe(_deliver, jobs, results)


def _deliver(jobs: list[_Job], results: list[BatchResult]) -> None:
    for job, result in zip(jobs, results):
        if not job.future.done():
            job.future.set_result(result)


def _fail(jobs: list[_Job], exc: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)
