"""``python -m fnn demo``: train on built-in data, show progress, print what was reached.

Trains a ReLU MLP on make_moons (no download, no extra install), then, when the MNIST
files are found (``--data``, ``$FNN_DATA_DIR`` or the user cache), a 784-256-128-10
network on MNIST for a few epochs.
"""

from __future__ import annotations

import time

import numpy as np

from fnn import datasets, metrics, schedules
from fnn.network import init, mlp, predict
from fnn.optim import adam
from fnn.training import fit


def moons(verbose: int) -> float:
    X, y = datasets.make_moons(1000, noise=0.2, rng=1)
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X, y, test_size=0.2, rng=1, stratify=True
    )
    epochs = 100
    net = init(mlp([2, 16, 16, 1], hidden="relu", output="sigmoid"), rng=1)
    opt = adam(schedules.CosineDecay(1e-2, decay_steps=epochs * 25))
    print("moons: 1000 points, MLP 2-16-16-1 (ReLU, sigmoid output), Adam, 100 epochs")
    start = time.perf_counter()
    net, _ = fit(net, opt, X_train, y_train, epochs=epochs, batch_size=32, rng=1, verbose=verbose)
    acc = metrics.accuracy(y_test, predict(net, X_test))
    print(f"moons: test accuracy {acc:.3f} in {time.perf_counter() - start:.1f}s")
    return acc


def mnist(data: str | None, epochs: int, verbose: int) -> float | None:
    try:
        (X, y), (Xt, yt) = datasets.load_mnist(data)
    except FileNotFoundError as e:
        print(f"mnist: skipped ({e})")
        return None
    X = (X.reshape(len(X), -1) / np.float32(255)).astype(np.float32)
    Xt = (Xt.reshape(len(Xt), -1) / np.float32(255)).astype(np.float32)
    net = init(mlp([784, 256, 128, 10], output="softmax", dropout=0.2, dtype=np.float32), rng=0)
    opt = adam(schedules.CosineDecay(1e-3, decay_steps=epochs * -(-len(X) // 128)))
    print(
        "mnist: 60000 images, MLP 784-256-128-10 (ReLU, dropout 0.2), float32, Adam, "
        f"{epochs} epochs"
    )
    start = time.perf_counter()
    net, _ = fit(net, opt, X, y, epochs=epochs, batch_size=128, rng=0, verbose=verbose)
    acc = metrics.accuracy(yt, predict(net, Xt))
    print(f"mnist: test accuracy {acc:.4f} in {time.perf_counter() - start:.1f}s")
    return acc


def run(data: str | None = None, mnist_epochs: int = 5, verbose: int = 1) -> dict[str, float]:
    """Run the demo; returns the accuracies reached."""
    out = {"moons_accuracy": moons(verbose)}
    acc = mnist(data, mnist_epochs, verbose)
    if acc is not None:
        out["mnist_accuracy"] = acc
    return out
