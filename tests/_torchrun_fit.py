"""Run by tests/test_distributed.py under torchrun: ``fit(**json)`` with one injected event.

Usage: ``torchrun ... tests/_torchrun_fit.py OPTIONS_JSON MODE`` where MODE is one of

- ``watch:ROOT``: every rank but 0 refuses (raises on) any file write under ROOT, so a run
  that finishes proves that only rank 0 wrote files;
- ``kill-rank1:K``: on the first attempt, rank 1 SIGKILLs itself after epoch K was saved;
- ``kill-all:K``: rank 0 SIGKILLs torchrun and every worker after epoch K was saved;
- ``raise-rank1:K``: rank 1 raises at the barrier after epoch K (the others are waiting);
- ``none``.

The event fires at the K-th barrier of the loop, which follows the save of epoch K.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def _install_watch(root: str) -> None:
    root = os.path.realpath(root)
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under(path: object) -> bool:
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        return isinstance(path, str) and os.path.realpath(path).startswith(root)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[:3]
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & writes)
            if writing and under(path):
                raise RuntimeError(f"rank {os.environ['RANK']} wrote {path}")
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "shutil.rmtree"):
            if args and under(args[0]):
                raise RuntimeError(f"rank {os.environ['RANK']} changed {args[0]} ({event})")

    sys.addaudithook(hook)
    try:  # the watch itself must work, or a run passing it would prove nothing
        Path(root, "probe").write_text("x")
    except RuntimeError:
        return
    sys.exit("the write watch did not catch a write")


def main() -> None:
    options = json.loads(sys.argv[1])
    mode, _, arg = sys.argv[2].partition(":")
    rank = int(os.environ["RANK"])
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if mode == "watch" and rank != 0:
        _install_watch(arg)

    from cnnlab.train import distributed, fit

    barrier = distributed.barrier
    calls = [0]

    def hooked_barrier() -> None:
        barrier()
        calls[0] += 1
        if mode == "none" or mode == "watch" or calls[0] != int(arg) or not first_attempt:
            return
        if mode == "kill-rank1" and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "kill-all" and rank == 0:
            agent = os.getppid()
            os.kill(agent, signal.SIGKILL)
            for pid in _children(agent):
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "raise-rank1" and rank == 1:
            raise RuntimeError("injected failure on rank 1")

    distributed.barrier = hooked_barrier
    result = fit(**options)
    if rank == 0:
        print("RESULT " + json.dumps({"run_dir": str(result.run_dir),
                                      "metrics": result.metrics}), flush=True)


def _children(parent: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(entry))
    return out


if __name__ == "__main__":
    main()
