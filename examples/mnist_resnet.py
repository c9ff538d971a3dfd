"""Example: a small residual network (ResNet) on MNIST, channels-last, float32.

    conv(16, 3x3) -> batch norm -> ReLU                                  28x28x16
    residual block: [conv(32, 3x3, stride 2) -> BN -> ReLU -> conv(32, 3x3) -> BN]
                    + [conv(32, 1x1, stride 2) -> BN] (projection)  -> ReLU  14x14x32
    residual block: [conv(32, 3x3) -> BN -> ReLU -> conv(32, 3x3) -> BN] + identity
                    -> ReLU                                               14x14x32
    residual block: [conv(64, 3x3, stride 2) -> BN -> ReLU -> conv(64, 3x3) -> BN]
                    + [conv(64, 1x1, stride 2) -> BN] (projection)  -> ReLU  7x7x64
    global average pooling -> dense 10 (softmax)

the blocks of He et al. 2016 ("Deep Residual Learning for Image Recognition"), each
``fnn.specs.residual(body, shortcut)``. Trained with Adam, a cosine-decayed learning
rate and random shifts of up to 2 pixels on 55,000 training images; the epoch kept is
the one with the lowest loss on the other 5,000 (a validation split of the training
images). The 10,000 test images are used once, at the end.

MNIST is read from --data DIR, else $FNN_DATA_DIR, else ~/.cache/fnn; get it with
`python -m fnn demo --download`.

Run: python examples/mnist_resnet.py [--quick] [--epochs N] [--data DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import fnn
from fnn import specs

Array = np.ndarray[Any, Any]

EPOCHS = 12
"""Training epochs of the default run."""


def load(data: str | None) -> tuple[Array, Array, Array, Array]:
    """MNIST as float32 images in [0, 1] (n, 28, 28, 1) and int64 labels."""
    (X_train, y_train), (X_test, y_test) = fnn.datasets.load_mnist(data)

    def prep(X: Array) -> Array:
        return (X.reshape(len(X), 28, 28, 1) / np.float32(255)).astype(np.float32)

    return prep(X_train), y_train.astype(np.int64), prep(X_test), y_test.astype(np.int64)


def block(channels: int, stride: int = 1, project: bool = False) -> list[specs.LayerSpec]:
    """A basic residual block and the ReLU after the sum; ``project``: a 1x1 convolution
    and batch norm on the shortcut, where the block changes the shape."""
    body: list[specs.LayerSpec] = [
        specs.conv2d(channels, 3, stride=stride, padding="same"),
        specs.batch_norm(),
        specs.activation("relu"),
        specs.conv2d(channels, 3, padding="same"),
        specs.batch_norm(),
    ]
    shortcut: list[specs.LayerSpec] = []
    if project:
        shortcut = [specs.conv2d(channels, 1, stride=stride), specs.batch_norm()]
    return [specs.residual(body, shortcut), specs.activation("relu")]


def architecture() -> fnn.Architecture:
    """The network of the module docstring."""
    return fnn.sequential(
        (28, 28, 1),
        [
            specs.conv2d(16, 3, padding="same"),
            specs.batch_norm(),
            specs.activation("relu"),
            *block(32, stride=2, project=True),
            *block(32),
            *block(64, stride=2, project=True),
            specs.global_avg_pool2d(),
            specs.dense(10),
        ],
        output="softmax",
        dtype=np.float32,
    )


def main(
    quick: bool = False,
    data: str | None = None,
    verbose: int = 1,
    epochs: int | None = None,
    out: str | None = None,
) -> dict[str, float]:
    """Train, keep the epoch with the lowest validation loss, then test once.

    Args:
        quick: 2,000 training and 1,000 test images, 3 epochs (for the test suite).
        data: folder with the MNIST IDX files (default: $FNN_DATA_DIR, else the cache).
        verbose: fit's progress (0 silent, 1 live line or a line per epoch, 2 lines).
        epochs: training epochs (default :data:`EPOCHS`; 1 with ``quick``).
        out: save the selected network (and its History) to this file.
    """
    X_all, y_all, X_test, y_test = load(data)
    if quick:
        X_all, y_all, X_test, y_test = X_all[:2000], y_all[:2000], X_test[:1000], y_test[:1000]
    epochs = epochs if epochs is not None else (3 if quick else EPOCHS)
    rng = np.random.default_rng(0)
    # a stratified validation split of the training images: model selection uses it only
    X_train, X_val, y_train, y_val = fnn.datasets.train_test_split(
        X_all, y_all, test_size=1 / 12, rng=rng, stratify=True
    )
    batch_size = 128
    steps = epochs * -(-len(X_train) // batch_size)
    opt = fnn.adam(fnn.schedules.CosineDecay(3e-3, decay_steps=steps))
    net = fnn.init(architecture(), rng=rng)
    history: fnn.History | None = None
    best: tuple[float, fnn.Network, int] | None = None
    start = time.perf_counter()
    for e in range(epochs):
        net, history = fnn.fit(
            net,
            opt,
            fnn.datasets.random_shifts(X_train, rng=rng),
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
        f"mnist resnet after {epochs} epochs: kept epoch {best_epoch} (validation accuracy "
        f"{val_acc:.4f}), test accuracy {acc:.4f} ({seconds:.1f}s training)"
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a small residual network on MNIST, keep the epoch with the lowest "
        "loss on a validation split of the training images, and report test accuracy.",
        epilog="Without MNIST: `python -m fnn demo --download` fetches it into ~/.cache/fnn.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 training images, 3 epochs (a smoke test)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the MNIST IDX files (default: $FNN_DATA_DIR, else ~/.cache/fnn)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, metavar="N", help=f"training epochs (default {EPOCHS})"
    )
    parser.add_argument("--out", metavar="FILE", help="save the trained network to FILE (.npz)")
    parser.add_argument(
        "--verbose", type=int, choices=[0, 1, 2], default=1, help="fit's progress (default 1)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    try:
        main(args.quick, args.data, args.verbose, args.epochs, args.out)
    except FileNotFoundError as e:
        raise SystemExit(f"mnist_resnet.py: {e}") from None
