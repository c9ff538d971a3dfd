"""``python -m fnn demo``: train on real data, show progress, print what was reached.

1. make_moons (1000 points, generated): a 2-16-16-1 ReLU network.
2. The UCI digits shipped with fnn (1797 8x8 images, no download): a 64-128-10 network,
   tested on a held-out quarter (>= 0.95 test accuracy, in about a second).
3. MNIST (60,000 28x28 images), when its files are found (``--data DIR``,
   ``$FNN_DATA_DIR`` or ``~/.cache/fnn``) or fetched with ``--download``: a
   784-256-128-10 network for a few epochs (about 98% test accuracy).

Each run prints what it trained on, the test accuracy reached and the time it took.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from fnn import datasets, metrics, schedules
from fnn.datasets.mnist import DownloadError, default_cache_dir
from fnn.network import init, mlp, predict
from fnn.optim import adam
from fnn.training import fit

__all__ = ["DemoError", "digits", "mnist", "moons", "run"]

HOW_TO_GET_MNIST = (
    "`python -m fnn demo --download` fetches it (11 MB) into ~/.cache/fnn, "
    "or set FNN_DATA_DIR to a folder with the IDX files"
)


class DemoError(RuntimeError):
    """MNIST was asked for (``--data`` or ``--download``) and could not be had."""


def _quiet(verbose: int) -> int:
    # the small runs take about a second: a line per epoch (off a terminal) would be
    # noise, so they show progress only when asked for explicitly (verbose=2)
    return 2 if verbose == 2 else 0


def moons(verbose: int = 1) -> float:
    """A 2-16-16-1 ReLU network on make_moons(1000, noise=0.2); returns test accuracy."""
    X, y = datasets.make_moons(1000, noise=0.2, rng=1)
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X, y, test_size=0.2, rng=1, stratify=True
    )
    epochs = 100
    net = init(mlp([2, 16, 16, 1], hidden="relu", output="sigmoid"), rng=1)
    opt = adam(schedules.CosineDecay(1e-2, decay_steps=epochs * 25))
    print("moons: 1000 generated points (800 to train), MLP 2-16-16-1, Adam, 100 epochs")
    start = time.perf_counter()
    net, _ = fit(
        net, opt, X_train, y_train, epochs=epochs, batch_size=32, rng=1, verbose=_quiet(verbose)
    )
    acc = metrics.accuracy(y_test, predict(net, X_test))
    print(f"moons: test accuracy {acc:.3f} on 200 held-out points in {_since(start)}")
    return acc


def digits(verbose: int = 1) -> float:
    """A 64-128-10 ReLU network on the shipped UCI digits; returns test accuracy."""
    X, y = datasets.load_digits()
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X / 16, y, test_size=0.25, rng=0, stratify=True
    )
    epochs = 40
    net = init(mlp([64, 128, 10], hidden="relu", output="softmax"), rng=1)
    opt = adam(schedules.CosineDecay(3e-3, decay_steps=epochs * -(-len(X_train) // 32)))
    print(
        f"digits: {len(X)} real 8x8 images shipped with fnn ({len(X_train)} to train), "
        f"MLP 64-128-10, Adam, {epochs} epochs"
    )
    start = time.perf_counter()
    net, _ = fit(
        net, opt, X_train, y_train, epochs=epochs, batch_size=32, rng=1, verbose=_quiet(verbose)
    )
    acc = metrics.accuracy(y_test, predict(net, X_test))
    print(f"digits: test accuracy {acc:.3f} on {len(X_test)} held-out images in {_since(start)}")
    return acc


def mnist(
    data: str | None = None,
    epochs: int = 5,
    verbose: int = 1,
    *,
    download: bool = False,
) -> float | None:
    """A 784-256-128-10 network on MNIST; returns test accuracy, or None when MNIST is
    not found and was not asked for.

    Raises:
        DemoError: ``data`` was given or ``download`` asked for, and MNIST could not be
            read or fetched (the message is one line).
    """
    asked = data is not None or download
    try:
        (X, y), (Xt, yt) = datasets.load_mnist(data, download=download, progress=True)
    except FileNotFoundError:
        where = data or os.environ.get("FNN_DATA_DIR") or str(default_cache_dir())
        if asked:
            raise DemoError(f"mnist: no MNIST files in {where}; {HOW_TO_GET_MNIST}") from None
        print(f"mnist: not found in {where}; {HOW_TO_GET_MNIST}")
        return None
    except (DownloadError, OSError) as e:
        raise DemoError(f"mnist: download failed, are you offline? {one_line(e)}") from None
    except ValueError as e:
        raise DemoError(f"mnist: {one_line(e)}") from None
    X = (X.reshape(len(X), -1) / np.float32(255)).astype(np.float32)
    Xt = (Xt.reshape(len(Xt), -1) / np.float32(255)).astype(np.float32)
    net = init(mlp([784, 256, 128, 10], output="softmax", dropout=0.2, dtype=np.float32), rng=0)
    opt = adam(schedules.CosineDecay(1e-3, decay_steps=epochs * -(-len(X) // 128)))
    print(
        f"mnist: {len(X)} images to train, MLP 784-256-128-10 (ReLU, dropout 0.2), float32, "
        f"Adam, {epochs} epoch{'s' if epochs != 1 else ''}"
    )
    start = time.perf_counter()
    net, _ = fit(net, opt, X, y, epochs=epochs, batch_size=128, rng=0, verbose=verbose)
    acc = metrics.accuracy(yt, predict(net, Xt))
    print(f"mnist: test accuracy {acc:.4f} on {len(Xt)} test images in {_since(start)}")
    return acc


def run(
    data: str | None = None,
    mnist_epochs: int = 5,
    verbose: int = 1,
    *,
    download: bool = False,
) -> dict[str, float]:
    """Run the demo; returns the test accuracies reached, by data set.

    Raises:
        DemoError: MNIST was asked for and could not be had (after the other runs).
    """
    if isinstance(mnist_epochs, bool) or not isinstance(mnist_epochs, int) or mnist_epochs < 1:
        raise ValueError(f"mnist_epochs must be an int >= 1, got {mnist_epochs!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    out = {"moons": moons(verbose), "digits": digits(verbose)}
    acc = mnist(data, mnist_epochs, verbose, download=download)
    if acc is not None:
        out["mnist"] = acc
    print(
        "next: read the tour in README.md, or run `python examples/mnist_mlp.py --help`"
        if acc is not None
        else "next: `python -m fnn demo --download` trains on MNIST (98% in about a minute)"
    )
    return out


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:.1f}s"


def one_line(e: BaseException) -> str:
    """``str(e)`` with its whitespace runs (newlines included) made single spaces."""
    return " ".join(str(e).split())


def main(data: str | None, mnist_epochs: int, verbose: int, download: bool) -> int:
    """The ``demo`` command: 0 on success, 1 when MNIST was asked for and not had."""
    try:
        run(data, mnist_epochs, verbose, download=download)
    except DemoError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    return 0
