"""Progress wherever output goes: a live line on a terminal, a line per epoch elsewhere."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fnn
from fnn.progress import Progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Closed(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def run(stream: io.StringIO, verbose: int, epochs: int = 3, steps: int = 4) -> list[str]:
    p = Progress(epochs, steps, verbose, stream=stream)
    for e in range(1, epochs + 1):
        for s in range(1, steps + 1):
            p.step(e, s, 0.5)
        p.epoch(e, f"loss 0.{e}")
    return stream.getvalue().split("\n")


@pytest.mark.parametrize("verbose", [1, 2])
def test_off_a_terminal_one_plain_line_per_epoch(verbose: int) -> None:
    lines = run(io.StringIO(), verbose)
    assert lines == ["epoch 1/3  loss 0.1", "epoch 2/3  loss 0.2", "epoch 3/3  loss 0.3", ""]


def test_verbose_0_writes_nothing_anywhere() -> None:
    assert run(io.StringIO(), 0) == [""]
    assert run(Terminal(), 0) == [""]


def test_on_a_terminal_verbose_1_draws_a_live_line_then_ends_each_epoch() -> None:
    out = run(Terminal(), 1)
    assert "\repoch 1/3  step 1/4  loss 0.5000  left " in out[0]  # the live line
    assert out[0].endswith("\repoch 1/3  loss 0.1\x1b[K")  # overwritten by the summary
    assert len(out) == 4 and out[-1] == ""


def test_on_a_terminal_verbose_2_is_plain_lines() -> None:
    assert run(Terminal(), 2)[:3] == [
        "epoch 1/3  loss 0.1",
        "epoch 2/3  loss 0.2",
        "epoch 3/3  loss 0.3",
    ]


def test_a_stream_whose_isatty_fails_counts_as_not_a_terminal() -> None:
    assert run(Closed(), 1)[0] == "epoch 1/3  loss 0.1"


def test_fit_with_the_default_verbose_logs_each_epoch_when_piped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    X, y = fnn.datasets.make_moons(64, noise=0.1, rng=0)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=0)
    fnn.fit(net, fnn.sgd(0.1), X, y.astype(np.float64), epochs=3, rng=0)  # verbose=1
    err = capsys.readouterr().err.splitlines()  # pytest's capture is not a terminal
    assert [line.split("  ")[0] for line in err] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("loss " in line for line in err)
