"""Load on ``cnnlab serve``: throughput and latency at 1, 8 and 32 concurrent clients.

Baseline (ratio 1.0): ``cnnlab predict``'s batch throughput — :func:`cnnlab.prediction.predict`
on the same image files with the same backend, ``--batch-size`` images per forward pass,
decoding included — measured in this run before the load and again after it; the higher of the
two is the baseline (the ratio is never flattered by a slow baseline).

Method: a real server (``python -m cnnlab serve RUN``, uvicorn, one process) on 127.0.0.1 at a
free port. For each client count C, C client threads each keep one request in flight (a closed
loop: a bounded load), posting one image as the raw body of ``POST /predict`` over a kept-alive
HTTP/1.1 connection (stdlib ``http.client``), cycling through the images, for ``--duration``
seconds. Every answer is checked: status 200 and the same top-1 class as ``predict`` gave for
that image; anything else counts as an error, and every request sent must be answered (a lost
request is an error too). Latency is measured per request at the client (p50/p95/p99). The
server's ``/health`` counters give the mean batch its micro-batching formed. The clients run on
the same CPU cores as the server, so they take a share of the machine that ``predict`` has to
itself: the ratio is a lower bound of what a server with its own machine would reach.

    python benchmarks/serve_load.py RUN [--duration 30] [--clients 1 8 32] [--images 512]

With the defaults (3 x 30 s of load, two baselines, server start) a run takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from _machine import cpu_description

from cnnlab.export.backends import load_predictor
from cnnlab.prediction import predict
from cnnlab.serve.process import serve_in_subprocess


def pick_images(folder: Path, n: int) -> list[Path]:
    """``n`` image files from a class-folder tree, taken round-robin over the classes."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir()) or [folder]
    per_class = [sorted(c.glob("*.jpg")) + sorted(c.glob("*.png")) for c in classes]
    out: list[Path] = []
    for i in range(n):
        files = per_class[i % len(per_class)]
        if i // len(per_class) < len(files):
            out.append(files[i // len(per_class)])
    return out


def baseline(run: str, files: list[Path], backend: str, batch_size: int, repeats: int):
    """(images/s of the best of ``repeats`` predict() calls, top-1 class per file)."""
    predictor = load_predictor(run, backend)
    predict(predictor, files[:batch_size], batch_size=batch_size)  # warm-up
    best, top1 = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        results = predict(predictor, files, top_k=1, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
        top1 = {r.source: r.classes[0] for r in results}
    return len(files) / best, top1, predictor.backend


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.load(r)


def load(url: str, bodies: list[tuple[bytes, str]], clients: int, duration: float) -> dict:
    """Closed-loop load: ``clients`` threads, one request in flight each, for ``duration`` s."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    sent = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        i = k * 7919  # each client starts elsewhere in the image list
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            body, want = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            sent[k] += 1
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[k].append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                continue
            latencies[k].append(time.perf_counter() - t0)
            if resp.status != 200:
                errors[k].append(f"HTTP {resp.status}: {data[:200]!r}")
                continue
            got = json.loads(data)["predictions"][0]["top_k"][0]["class"]
            if got != want:
                errors[k].append(f"top-1 {got!r} != predict's {want!r}")
        conn.close()

    before = health(url)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    stop_at[0] = t_start + duration
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    after = health(url)
    lat = sorted(x for per in latencies for x in per) or [float("nan")]
    answered = sum(len(per) for per in latencies)
    all_errors = [e for per in errors for e in per]
    batches = after["batches"] - before["batches"]
    images = after["images"] - before["images"]
    return {
        "clients": clients,
        "requests": answered,
        "lost": sum(sent) - answered,
        "errors": all_errors,
        "rps": answered / elapsed,
        "ips": images / elapsed,
        "p50": 1000 * float(np.percentile(lat, 50)),
        "p95": 1000 * float(np.percentile(lat, 95)),
        "p99": 1000 * float(np.percentile(lat, 99)),
        "mean_batch": images / batches if batches else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run directory (or .onnx file)")
    parser.add_argument("--images", type=int, default=512, help="distinct images (default 512)")
    parser.add_argument("--folder", default="/tmp/cifar10/train", help="class folders of images")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--backend", default="auto", help="as cnnlab predict --backend")
    parser.add_argument("--batch-size", type=int, default=64, help="predict's batch (default 64)")
    parser.add_argument("--max-batch", type=int, default=32, help="server --max-batch")
    parser.add_argument("--window-ms", type=float, default=5.0, help="server --window-ms")
    parser.add_argument("--repeats", type=int, default=3, help="predict timings per baseline")
    args = parser.parse_args()

    files = pick_images(Path(args.folder), args.images)
    print(f"machine: {cpu_description()}")
    print(f"model: {args.run}; {len(files)} images from {args.folder}")
    print(f"load: {args.duration:g} s per client count; server --max-batch {args.max_batch} "
          f"--window-ms {args.window_ms:g}")  # fmt: skip
    ips_before, top1, backend = baseline(
        args.run, files, args.backend, args.batch_size, args.repeats
    )
    print(f"baseline: predict(batch_size={args.batch_size}, backend {backend}) "
          f"{ips_before:.0f} images/s (before the load)")  # fmt: skip
    bodies = [(f.read_bytes(), top1[str(f)]) for f in files]
    server_args = ["--backend", args.backend, "--max-batch", str(args.max_batch)]
    server_args += ["--window-ms", str(args.window_ms), "--max-queue", "1024"]
    rows = []
    with serve_in_subprocess(args.run, server_args) as url:
        load(url, bodies, max(args.clients), min(3.0, args.duration))  # warm-up, not reported
        for c in args.clients:
            rows.append(load(url, bodies, c, args.duration))
            r = rows[-1]
            print(f"  {c} clients: {r['rps']:.0f} req/s, {r['errors'] and len(r['errors'])} errors")
    ips_after, _, _ = baseline(args.run, files, args.backend, args.batch_size, args.repeats)
    base = max(ips_before, ips_after)
    print(f"baseline: {ips_after:.0f} images/s (after the load); used: {base:.0f} images/s\n")
    print("| clients | requests | req/s | images/s | p50 ms | p95 ms | p99 ms | mean batch "
          "| errors | lost | images/s vs predict |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['rps']:.0f} | {r['ips']:.0f} | "
              f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['mean_batch']:.1f} | "
              f"{len(r['errors'])} | {r['lost']} | {r['ips'] / base:.2f} |")  # fmt: skip
    for r in rows:
        for e in r["errors"][:3]:
            print(f"error at {r['clients']} clients: {e}")
    print(f"\nmedian of the rows' ratios: {statistics.median(r['ips'] / base for r in rows):.2f}")


if __name__ == "__main__":
    main()
