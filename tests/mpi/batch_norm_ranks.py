"""Run under mpiexec by tests/test_distributed_batch_norm.py: a data-parallel fit of a
batch-norm network with dropout, whose result rank 0 saves for comparison with the
serial run in the test process."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import fnn
from fnn import distributed

TRAIN: dict[str, Any] = {
    "epochs": 2,
    # 23 rows in batches of 7, 7, 7 and 2: on 2 ranks, shards of 4 and 3 rows (unequal),
    # then 1 and 1 (batch statistics of 1 row per rank: only the global ones are valid)
    "batch_size": 7,
    "rng": 3,
    "verbose": 0,
}
"""The data-parallel fit's settings, which the serial run in the test repeats."""


def data(kind: str = "mlp") -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    if kind == "flat":  # 22 rows in batches of 7: the last has 1 row, one rank none
        return rng.normal(size=(22, 6, 6, 2)) + 0.5, rng.integers(0, 3, 22)
    if kind in ("cnn", "resnet"):
        return rng.normal(size=(23, 6, 6, 2)) + 0.5, rng.integers(0, 3, 23)
    X = rng.normal(size=(23, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    return X, rng.integers(0, 3, 23)


def architecture(kind: str = "mlp") -> fnn.Architecture:
    if kind == "cnn":  # convolution, batch norm over channels, pooling, dropout
        s = fnn.specs
        return fnn.sequential(
            (6, 6, 2),
            [
                s.conv2d(3, 3, padding="same"),
                s.batch_norm(),
                s.activation("relu"),
                s.max_pool2d(2),
                s.dropout(0.2),
                s.flatten(),
                s.dense(3),
            ],
            output="softmax",
        )
    if kind == "flat":  # a convolution and Flatten, fed an empty shard
        return fnn.sequential(
            (6, 6, 2),
            [fnn.specs.conv2d(3, 3), fnn.specs.flatten(), fnn.specs.dense(3)],
            output="softmax",
        )
    if kind == "resnet":  # batch norm and dropout inside residual and parallel blocks
        s = fnn.specs
        return fnn.sequential(
            (6, 6, 2),
            [
                s.residual(
                    [s.conv2d(3, 3, padding="same"), s.batch_norm(), s.activation("relu")],
                    [s.conv2d(3, 1), s.batch_norm()],
                ),
                s.parallel([[s.conv2d(2, 1), s.dropout(0.2)], [s.batch_norm()]]),
                s.global_avg_pool2d(),
                s.dense(3),
            ],
            output="softmax",
        )
    return fnn.mlp([3, 8, 6, 3], output="softmax", norm="batch", dropout=0.3)


def main() -> None:
    out = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "mlp"
    X, y = data(kind)
    net0 = fnn.init(architecture(kind), rng=distributed.rank() + 7)  # rank 0's wins
    # SGD, not Adam: the dense bias before a batch norm has a gradient that is zero up
    # to rounding, which Adam's normalisation amplifies to ~1e-9 differences between
    # any two summation orders
    net, h = distributed.fit(net0, fnn.sgd(0.1, momentum=0.9), X, y, **TRAIN)
    distributed.save(out, net, opt_state=h.opt_state, history=h)


if __name__ == "__main__":
    main()
