"""Micro-batching: concurrent requests joined into one forward pass, with a bounded queue.

A CNN on a CPU classifies 32 images in one call much faster than in 32 calls (one pass over the
weights, wide matrix products), so the server does not run each request alone. Requests put
their images on a queue; one worker takes the first waiting request, keeps collecting for at most
``window_ms`` (or until ``max_batch`` images are gathered), runs the model once in a worker
thread (the event loop keeps accepting connections meanwhile), and hands each request its rows.
Under load the queue fills while the model runs, so batches form without waiting at all.

The queue holds at most ``max_queue`` images; a request that does not fit is refused at once
(:class:`QueueFull`, answered 503 with ``Retry-After``) instead of waiting without bound.

Why our own: Starlette/uvicorn have no request batching, and the serving frameworks that do
(TorchServe, Triton, Ray Serve) are whole servers, far more than this extra installs.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
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
        fn: uint8 ``(B, C, H, W)`` -> ``(B, K)`` probabilities; run in one worker thread.
        max_batch: images per forward pass at most.
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
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.batches = 0  # forward passes run
        self.images = 0  # images classified
        self.last_model_s = 0.0  # duration of the latest forward pass

    @property
    def waiting(self) -> int:
        """Images queued and not yet in a forward pass."""
        return self._waiting

    async def start(self) -> None:
        """Start the worker (in the running event loop)."""
        self._wake = asyncio.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cnnlab-model")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; requests still queued get a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._waiting = 0
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def submit(self, x: np.ndarray) -> BatchResult:
        """Queue ``x`` (``(n, C, H, W)`` uint8) and wait for its probabilities.

        Raises:
            QueueFull: the queue cannot take ``n`` more images now.
            RuntimeError: the worker is not running.
        """
        if self._task is None or self._wake is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        n = len(x)
        if self._waiting + n > self.max_queue:
            raise QueueFull(self.retry_after())
        job = _Job(x, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._waiting += n
        self._wake.set()
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
            if job.future.done():  # the client went away while waiting
                continue
            jobs.append(job)
            n += len(job.x)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            if not self._jobs:
                self._wake.clear()
                await self._wake.wait()
            # Wait up to the window for more requests, unless a full batch is already here.
            deadline = self._jobs[0].queued_at + self.window_s
            while self._waiting < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            jobs = self._take()
            if not jobs:
                continue
            x = np.concatenate([j.x for j in jobs]) if len(jobs) > 1 else jobs[0].x
            start = time.perf_counter()
            try:
                probs = await loop.run_in_executor(self._pool, self.fn, x)
            except Exception as exc:  # the model failed on this batch: its requests get it
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            end = time.perf_counter()
            self.last_model_s = end - start
            self.batches += 1
            self.images += len(x)
            row = 0
            for j in jobs:
                n = len(j.x)
                if not j.future.done():
                    j.future.set_result(
                        BatchResult(
                            probs[row : row + n],
                            (start - j.queued_at) * 1000,
                            (end - start) * 1000,
                            len(x),
                        )
                    )
                row += n
