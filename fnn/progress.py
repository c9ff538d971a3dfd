"""A live progress line for long training runs.

Shown on standard error when it is a terminal and ``verbose=1``; one line per epoch with
``verbose=2`` (for logs); nothing with ``verbose=0``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Writes the progress of a fit."""

    def __init__(self, epochs: int, steps: int, verbose: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        live = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self.live = bool(live)
        self.per_epoch = verbose >= 2 or self.live
        self.epochs = epochs
        self.steps = steps
        self.start = time.perf_counter()
        self.last = 0.0
        self.done_steps = 0

    def step(self, epoch: int, step: int, loss: float) -> None:
        """Refresh the live line at most ten times a second."""
        self.done_steps += 1
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last < 0.1 and step < self.steps:
            return
        self.last = now
        elapsed = now - self.start
        total = self.epochs * self.steps
        left = elapsed / self.done_steps * (total - self.done_steps)
        self.stream.write(
            f"\repoch {epoch}/{self.epochs}  step {step}/{self.steps}  loss {loss:.4f}  "
            f"left {_fmt_time(left)}   "
        )
        self.stream.flush()

    def epoch(self, epoch: int, summary: str) -> None:
        """Finish an epoch's line."""
        if not self.per_epoch:
            return
        prefix = "\r" if self.live else ""
        self.stream.write(
            f"{prefix}epoch {epoch}/{self.epochs}  {summary}\x1b[K\n"
            if self.live
            else f"epoch {epoch}/{self.epochs}  {summary}\n"
        )
        self.stream.flush()
