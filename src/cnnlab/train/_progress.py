"""What a run prints: a rich progress bar per epoch and one line per epoch (plain with --quiet)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainPrinter:
    """Prints a run's progress; ``quiet`` keeps it to plain log lines (no bar, no colors)."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(highlight=False)
        self._progress: Progress | None = None
        self._task: Any = None
        self._start = 0.0

    def log(self, message: str) -> None:
        """Print one line (rich markup is stripped in quiet mode)."""
        if self.quiet:
            from rich.text import Text

            print(Text.from_markup(message).plain, flush=True)
        else:
            self.console.print(message, soft_wrap=True)  # never wrap paths mid-line

    def start_epoch(self, epoch: int, epochs: int, steps: int, lr: float = 0.0) -> None:
        """Open the progress bar of ``epoch`` (1-based) of ``epochs``, ``steps`` batches long."""
        self._start = time.perf_counter()
        if self.quiet or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]:.2e}"),
            TextColumn("{task.fields[ips]:,.0f} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, loss="-", lr=lr, ips=0.0)

    def step(self, done: int, loss: float, lr: float, images: int) -> None:
        """Advance the bar to ``done`` batches; ``images`` seen so far this epoch."""
        if self._progress is None:
            return
        ips = images / max(1e-9, time.perf_counter() - self._start)
        self._progress.update(self._task, completed=done, loss=f"{loss:.4f}", lr=lr, ips=ips)

    def end_epoch(self, row: dict[str, Any], epochs: int, best: bool) -> None:
        """Close the bar and print the epoch's one-line summary."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        mark = " *" if best else ""
        self.log(
            f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  "
            f"lr {row['lr']:.2e}  {row['images_per_s']:,.0f} img/s  "
            f"{row['epoch_time_s']:.1f}s{mark}"
        )

    def close(self) -> None:
        """Stop a bar left open by an exception."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class SilentPrinter(TrainPrinter):
    """The printer of every torchrun process but rank 0: prints nothing."""

    def __init__(self) -> None:
        super().__init__(quiet=True)

    def log(self, message: str) -> None:
        """Print nothing."""

    def start_epoch(self, epoch: int, epochs: int, steps: int, lr: float = 0.0) -> None:
        """Open no bar."""

    def end_epoch(self, row: dict[str, Any], epochs: int, best: bool) -> None:
        """Print nothing."""
