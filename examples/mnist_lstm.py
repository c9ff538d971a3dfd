"""Example: MNIST read row by row by an LSTM, float32.

Each image is a sequence of 28 steps of 28 pixels (its rows, top to bottom):

    LSTM(128) (last hidden state) -> dense 10 (softmax)

trained with Adam, a cosine-decayed learning rate and gradient clipping on 55,000
training images; the epoch kept is the one with the lowest loss on the other 5,000 (a
validation split of the training images). The 10,000 test images are used once, at
the end. The LSTM follows PyTorch's ``nn.LSTM`` (gate order, both biases,
initialisation), so its weights compare one to one.

NumPy's BLAS runs on one thread here unless OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS)
is set: the LSTM's products, one per step, are small (128 x 128 by 128 x 512), and a
second BLAS thread waiting for a busy core costs more than it gives.

MNIST is read from --data DIR, else $FNN_DATA_DIR, else ~/.cache/fnn; get it with
`python -m fnn demo --download`.

Run: python examples/mnist_lstm.py [--quick] [--epochs N] [--seed S] [--data DIR]
     [--out FILE]
"""

from __future__ import annotations

import os

# before NumPy loads its BLAS (see the module docstring); a value the user set is kept
if "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse
import time
from typing import Any

import numpy as np

import fnn
from fnn import specs

Array = np.ndarray[Any, Any]
UNITS = 128
EPOCHS = 12


def load(data: str | None) -> tuple[Array, Array, Array, Array]:
    """MNIST as float32 sequences (n, 28 steps, 28 pixels) in [0, 1] and int64 labels."""
    (X_train, y_train), (X_test, y_test) = fnn.datasets.load_mnist(data)

    def prep(X: Array) -> Array:
        return (X.reshape(len(X), 28, 28) / np.float32(255)).astype(np.float32)

    return prep(X_train), y_train.astype(np.int64), prep(X_test), y_test.astype(np.int64)


def architecture() -> fnn.Architecture:
    """The network of the module docstring."""
    return fnn.sequential(
        (28, 28),  # 28 steps (rows) of 28 features (pixels)
        [specs.lstm(UNITS), specs.dense(10)],
        output="softmax",
        dtype=np.float32,
    )


def main(
    quick: bool = False,
    data: str | None = None,
    verbose: int = 1,
    epochs: int | None = None,
    seed: int = 0,
    out: str | None = None,
) -> dict[str, float]:
    """Train, keep the epoch with the lowest validation loss, then test once.

    Args:
        quick: 3,000 training and 1,000 test images, 3 epochs (for the test suite).
        data: folder with the MNIST IDX files (default: $FNN_DATA_DIR, else the cache).
        verbose: fit's progress (0 silent, 1 live line or a line per epoch, 2 lines).
        epochs: training epochs (default 12; 3 with ``quick``).
        seed: seeds the split, the initial weights and the batch order.
        out: save the selected network (and its History) to this file.
    """
    X_all, y_all, X_test, y_test = load(data)
    if quick:
        X_all, y_all, X_test, y_test = X_all[:3000], y_all[:3000], X_test[:1000], y_test[:1000]
    epochs = epochs if epochs is not None else (3 if quick else EPOCHS)
    rng = np.random.default_rng(seed)
    # a stratified validation split of the training images: model selection uses it only
    X_train, X_val, y_train, y_val = fnn.datasets.train_test_split(
        X_all, y_all, test_size=1 / 12, rng=rng, stratify=True
    )
    batch_size = 128
    steps = epochs * -(-len(X_train) // batch_size)
    opt = fnn.chain(
        fnn.clip_by_global_norm(1.0),
        fnn.adam(fnn.schedules.CosineDecay(2e-3, decay_steps=steps)),
    )
    net = fnn.init(architecture(), rng=rng)
    history: fnn.History | None = None
    best: tuple[float, fnn.Network, int] | None = None
    start = time.perf_counter()
    for e in range(epochs):
        net, history = fnn.fit(
            net,
            opt,
            X_train,
            y_train,
            epochs=1,
            batch_size=batch_size,
            rng=rng,
            validation_data=(X_val, y_val),
            metrics=["accuracy"],
            history=history,
            verbose=verbose,
        )
        val_loss = history.records[-1].val_loss
        assert val_loss is not None
        if best is None or val_loss < best[0]:
            best = (val_loss, net, e + 1)
    seconds = time.perf_counter() - start
    assert best is not None and history is not None
    _, net, best_epoch = best
    val_acc = history.records[best_epoch - 1].val_metrics["accuracy"]
    acc = fnn.metrics.accuracy(y_test, fnn.predict(net, X_test))
    print(
        f"mnist lstm({UNITS}) after {epochs} epochs: kept epoch {best_epoch} (validation "
        f"accuracy {val_acc:.4f}), test accuracy {acc:.4f} ({seconds:.1f}s training)"
    )
    if out is not None:
        path = fnn.save(out, net, history=history)
        print(f"saved the network to {path}")
    return {"test_accuracy": acc, "val_accuracy": val_acc, "seconds": seconds}


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def seed_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train an LSTM on MNIST read row by row (28 steps of 28 pixels), keep the "
        "epoch with the lowest loss on a validation split of the training images, and report "
        "test accuracy.",
        epilog="Without MNIST: `python -m fnn demo --download` fetches it into ~/.cache/fnn.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3,000 training images, 3 epochs (a smoke test)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the MNIST IDX files (default: $FNN_DATA_DIR, else ~/.cache/fnn)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help=f"training epochs (default {EPOCHS}, 3 with --quick)",
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0, metavar="S", help="random seed (default 0)"
    )
    parser.add_argument("--out", metavar="FILE", help="save the trained network to FILE (.npz)")
    parser.add_argument(
        "--verbose", type=int, choices=[0, 1, 2], default=1, help="fit's progress (default 1)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    try:
        main(args.quick, args.data, args.verbose, args.epochs, args.seed, args.out)
    except FileNotFoundError as e:
        raise SystemExit(f"mnist_lstm.py: {e}") from None
