"""Progress of a training run, wherever its output goes (standard error by default).

- ``verbose=0``: nothing.
- ``verbose=1`` (the default): on a terminal, a live line refreshed up to ten times a
  second (epoch, step, loss, time left), ending in one line per epoch; when the stream
  is not a terminal (a pipe, a log file, CI, ``nohup``, a notebook's captured output),
  one line per epoch, as ``verbose=2`` (Keras' ``verbose=2`` style), so a long run is
  never silent.
- ``verbose=2``: one line per epoch, also on a terminal.
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


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class Progress:
    """Writes the progress of a fit to ``stream`` (standard error by default).

    Args:
        epochs: epochs in the run.
        steps: steps per epoch.
        verbose: 0 nothing; 1 a live line on a terminal, else one line per epoch;
            2 one line per epoch.
        stream: where to write; its ``isatty()`` decides what ``verbose=1`` shows.
    """

    def __init__(
        self,
        epochs: int,
        steps: int,
        verbose: int,
        stream: TextIO | None = None,
        *,
        first_epoch: int = 0,
    ) -> None:
        """``epochs`` to run now, numbered from ``first_epoch + 1`` (a resumed fit)."""
        self.stream = stream if stream is not None else sys.stderr
        self.live = verbose == 1 and _isatty(self.stream)
        self.per_epoch = verbose >= 1  # off a terminal, verbose=1 behaves as verbose=2
        self.epochs = epochs
        self.last_epoch = first_epoch + epochs
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
            f"\repoch {epoch}/{self.last_epoch}  step {step}/{self.steps}  loss {loss:.4f}  "
            f"left {_fmt_time(left)}   "
        )
        self.stream.flush()

    def epoch(self, epoch: int, summary: str) -> None:
        """Finish an epoch's line."""
        if not self.per_epoch:
            return
        prefix = "\r" if self.live else ""
        self.stream.write(
            f"{prefix}epoch {epoch}/{self.last_epoch}  {summary}\x1b[K\n"
            if self.live
            else f"epoch {epoch}/{self.last_epoch}  {summary}\n"
        )
        self.stream.flush()
