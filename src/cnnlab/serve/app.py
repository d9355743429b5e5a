"""The Starlette application of ``cnnlab serve``: the page, ``/predict``, ``/gradcam``, ``/model``.

Routes:

- ``GET /``: the page (:mod:`cnnlab.serve.page`);
- ``POST /predict``: images as ``multipart/form-data`` (any number of file fields) or one image
  as the raw request body; answers ``cnnlab predict --format json``'s entries (``image``,
  ``top_k``) per image, the class names, the model and timings. An upload that is refused gets
  an ``error`` entry instead; the status is 200 when at least one image was classified, else
  the refusal's (413 too large, 422 not an image);
- ``POST /gradcam``: one image (same forms); the Grad-CAM overlay of its top class as a PNG
  data URL (PyTorch models; 409 for an ``.onnx`` file);
- ``GET /model``: the model card; ``GET /health``: liveness and queue figures.

Every error is JSON ``{"error": "..."}`` with one line saying what was wrong; nothing a client
sends is used as a file-system path, and no bad request can stop the process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cnnlab.serve.batching import MicroBatcher, QueueFull
from cnnlab.serve.model import ServedModel
from cnnlab.serve.page import csp_header, render_page
from cnnlab.serve.uploads import Limits, RequestError, decode_upload, label

log = logging.getLogger("cnnlab.serve")
# Uploads up to this size are decoded on the event loop (well under a millisecond for a few
# images of this size); larger ones in a worker thread, so the loop keeps serving others.
INLINE_DECODE_BYTES = 64 * 1024
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status, headers={**SECURITY_HEADERS, **(headers or {})})


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_large = "the request body of {:,} bytes is over the limit of {:,} (the server's --max-mb)"
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"bad Content-Length header {declared[:40]!r}") from None
        if size > limit:
            raise RequestError(413, too_large.format(size, limit))
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(413, too_large.format(total, limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploads(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """``(label, bytes)`` of each uploaded image: multipart file fields, else the raw body."""
    body = await _read_body(request, limits.max_request_bytes)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        return [(label(None, 0), body)]

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(
            max_files=limits.max_images + 1, max_fields=limits.max_images + 16
        ) as form:
            files = [
                (label(v.filename, i), await v.read())
                for i, v in enumerate(v for _, v in form.multi_items() if isinstance(v, UploadFile))
            ]
    except HTTPException as exc:  # Starlette's own multipart errors (too many parts, malformed)
        raise RequestError(400, f"malformed multipart body: {exc.detail}") from None
    if not files:
        raise RequestError(422, "the multipart body has no file field; attach image files")
    return files


def _check_count(n: int, limits: Limits) -> None:
    if n > limits.max_images:
        raise RequestError(
            413, f"{n} images in one request is over the limit of {limits.max_images} "
            "(the server's --max-images); send them in several requests"
        )  # fmt: skip


def create_app(
    source: str,
    *,
    backend: str = "auto",
    top_k: int = 5,
    max_batch: int = 32,
    window_ms: float = 5.0,
    max_queue: int = 256,
    limits: Limits | None = None,
    served: ServedModel | None = None,
) -> Starlette:
    """The ``cnnlab serve`` application for a run directory, checkpoint or ``.onnx`` file.

    Args:
        source: ``runs/NAME``, a ``.safetensors`` checkpoint or an exported ``.onnx`` file.
        backend: inference backend, as ``cnnlab predict --backend``.
        top_k: classes reported per image.
        max_batch: images per forward pass at most (requests are joined up to it).
        window_ms: how long a request waits for others to join its batch.
        max_queue: images waiting at most; beyond it requests get 503 with Retry-After.
        limits: request size, pixel and count limits.
        served: an already loaded :class:`ServedModel` (tests reuse one).

    Example:
        >>> from starlette.testclient import TestClient  # doctest: +SKIP
        >>> with TestClient(create_app("runs/digits-simple_cnn")) as client:  # doctest: +SKIP
        ...     client.get("/health").json()["status"]
        'ok'
    """
    limits = limits or Limits()
    model = served or ServedModel(source, backend=backend, top_k=top_k)
    batcher = MicroBatcher(
        model.probs, max_batch=max_batch, window_ms=window_ms, max_queue=max_queue
    )
    page = render_page(model.card, limits)
    page_headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp_header()}

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=page_headers)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "queued_images": batcher.waiting,
                "batches": batcher.batches,
                "images": batcher.images,
            },
            headers=SECURITY_HEADERS,
        )

    async def model_info(request: Request) -> Response:
        return JSONResponse(model.card, headers=SECURITY_HEADERS)

    async def decode_all(files: list[tuple[str, bytes]]) -> list[np.ndarray | RequestError]:
        def work() -> list[np.ndarray | RequestError]:
            out: list[np.ndarray | RequestError] = []
            for name, data in files:
                try:
                    out.append(decode_upload(data, name, model.input_size, limits.max_pixels))
                except RequestError as exc:
                    out.append(exc)
            return out

        if sum(len(data) for _, data in files) <= INLINE_DECODE_BYTES:
            return work()  # small images: a thread hop would cost more than the decoding
        return await run_in_threadpool(work)

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        files = await _uploads(request, limits)
        _check_count(len(files), limits)
        decoded = await decode_all(files)
        t_decoded = time.perf_counter()
        good = [i for i, d in enumerate(decoded) if not isinstance(d, RequestError)]
        entries: list[dict[str, Any]] = [{} for _ in files]
        timings: dict[str, Any] = {"decode_ms": round((t_decoded - start) * 1000, 3)}
        if good:
            result = await batcher.submit(np.stack([decoded[i] for i in good]))
            for row, i in enumerate(good):
                entries[i] = model.top_k(result.probs[row], files[i][0])
            timings.update(
                queue_ms=round(result.queue_ms, 3),
                model_ms=round(result.model_ms, 3),
                batch_size=result.batch_size,
            )
        for i, d in enumerate(decoded):
            if isinstance(d, RequestError):
                entries[i] = {"image": files[i][0], "error": d.reason, "status": d.status}
        timings["total_ms"] = round((time.perf_counter() - start) * 1000, 3)
        status = 200 if good else max(d.status for d in decoded if isinstance(d, RequestError))
        body = {
            "predictions": entries,
            "class_names": model.class_names,
            "model": model.card["name"],
            "backend": model.card["backend"],
            "timings": timings,
        }
        if not good:
            body["error"] = "; ".join(d.reason for d in decoded if isinstance(d, RequestError))
        return JSONResponse(body, status, headers=SECURITY_HEADERS)

    async def gradcam(request: Request) -> Response:
        if not model.has_gradcam:
            return _error(409, "Grad-CAM needs the PyTorch model; serve the run directory")
        files = await _uploads(request, limits)
        if len(files) != 1:
            raise RequestError(422, f"Grad-CAM explains one image per request, got {len(files)}")
        name, data = files[0]
        x = await run_in_threadpool(decode_upload, data, name, model.input_size, limits.max_pixels)
        out = await run_in_threadpool(model.gradcam_png, x)
        return JSONResponse({"image": name, **out}, headers=SECURITY_HEADERS)

    async def on_request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return _error(exc.status, exc.reason)

    async def on_queue_full(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QueueFull)
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reason = {404: f"no such page {request.url.path!r}; the API is POST /predict, "
                       "POST /gradcam, GET /model, GET /health",
                  405: f"{request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))  # fmt: skip
        return _error(exc.status_code, reason, dict(exc.headers or {}))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("cnnlab serve: internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
            Route("/gradcam", gradcam, methods=["POST"]),
            Route("/model", model_info, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            RequestError: on_request_error,
            QueueFull: on_queue_full,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
        lifespan=lifespan,
    )
    app.state.model = model
    app.state.batcher = batcher
    return app


__all__ = ["Limits", "create_app"]
