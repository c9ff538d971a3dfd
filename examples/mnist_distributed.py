"""The MNIST network trained data-parallel on several MPI ranks.

Run (one BLAS thread per rank; the data folder holds the MNIST IDX files):

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py examples/mnist_distributed.py --data DIR

Every rank loads the same data and seed; each global batch of 256 is split across the
ranks and their gradients averaged with one Allreduce per step. Rank 0 prints the
accuracy reached and the time per step, and, with --out FILE, saves the network there
(nothing is written otherwise).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fnn
from fnn import distributed


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def main(data: str | None, epochs: int, quick: bool, out: str | None = None) -> dict[str, float]:
    (X, y), (Xt, yt) = fnn.datasets.load_mnist(data)
    X = (X.reshape(len(X), -1) / np.float32(255)).astype(np.float32)
    Xt = (Xt.reshape(len(Xt), -1) / np.float32(255)).astype(np.float32)
    if quick:
        X, y, Xt, yt = X[:4096], y[:4096], Xt[:1000], yt[:1000]
    batch = 256
    steps = epochs * -(-len(X) // batch)
    arch = fnn.mlp([784, 256, 128, 10], output="softmax", dropout=0.2, dtype=np.float32)
    net = fnn.init(arch, rng=0)
    opt = fnn.adam(fnn.schedules.CosineDecay(2e-3, decay_steps=steps))
    start = time.perf_counter()
    net, history = distributed.fit(
        net, opt, X, y, epochs=epochs, batch_size=batch, rng=0, verbose=2
    )
    seconds = time.perf_counter() - start
    acc = fnn.metrics.accuracy(yt, fnn.predict(net, Xt))
    per_step = seconds / steps
    if distributed.rank() == 0:
        print(
            f"mnist on {distributed.size()} rank(s): test accuracy {acc:.4f}, "
            f"{per_step * 1e3:.2f} ms per step of {batch} ({seconds:.1f}s)"
        )
    if out is not None:
        path = distributed.save(out, net, opt_state=history.opt_state)  # rank 0 writes
        if distributed.rank() == 0:
            print(f"saved the network and optimizer state to {path}")
    return {"test_accuracy": acc, "ms_per_step": per_step * 1e3}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="MNIST, data-parallel over MPI ranks (launch with mpiexec, see above)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="folder with the MNIST IDX files (default: $FNN_DATA_DIR, else ~/.cache/fnn)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=8, metavar="N", help="epochs (default 8)"
    )
    parser.add_argument("--quick", action="store_true", help="4096 images, for a smoke test")
    parser.add_argument("--out", metavar="FILE", help="save the network and optimizer state")
    args = parser.parse_args()
    try:
        main(args.data, args.epochs, args.quick, args.out)
    except FileNotFoundError as e:
        raise SystemExit(f"mnist_distributed.py: {e}") from None
