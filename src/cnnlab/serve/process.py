"""Run ``cnnlab serve`` in a child process on 127.0.0.1 for as long as a ``with`` block lasts.

For tests, benchmarks and notebooks: the server is a real uvicorn process (real sockets, real
HTTP parsing), it listens on the loopback interface only, and it is always stopped on leaving
the block, also when the block raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_subprocess(
    model: str | os.PathLike,
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start ``python -m cnnlab serve MODEL --host 127.0.0.1 --port P ARGS``; yield its base URL.

    Waits until ``GET /health`` answers (at most ``timeout`` seconds); on leaving, sends SIGTERM
    (uvicorn shuts down gracefully), then SIGKILL after 10 s.

    Raises:
        RuntimeError: the server exited or did not answer in time (its output is in the message).

    Example:
        >>> with serve_in_subprocess("runs/digits-simple_cnn") as url:  # doctest: +SKIP
        ...     print(url)
        http://127.0.0.1:40123
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "cnnlab", "serve", os.fspath(model), "--host", LOOPBACK]
    cmd += ["--port", str(port), *args]
    out = tempfile.TemporaryFile()  # the server's output, shown if it fails to start
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                out.seek(0)
                text = out.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"cnnlab serve exited with code {proc.returncode}: {text}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if json.load(r).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cnnlab serve did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
