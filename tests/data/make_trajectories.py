"""Pin a few training trajectories, so speed work can prove it changed no result.

Run once (before optimising) with ``python tests/data/make_trajectories.py``; it writes
``tests/data/trajectories.npz``, which ``tests/test_trajectories.py`` compares against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import fnn

CASES: dict[str, dict[str, Any]] = {
    "sgd_momentum_f64": {
        "opt": lambda: fnn.sgd(0.05, momentum=0.9, nesterov=True),
        "dtype": np.float64,
        "hidden": "tanh",
        "output": "softmax",
        "dropout": 0.0,
    },
    "adam_f32_dropout": {
        "opt": lambda: fnn.adam(1e-2),
        "dtype": np.float32,
        "hidden": "relu",
        "output": "softmax",
        "dropout": 0.2,
    },
    "adamw_masked_f64": {
        "opt": lambda: fnn.chain(
            fnn.clip_by_global_norm(1.0), fnn.adamw(1e-2, decay_mask=fnn.weights_only)
        ),
        "dtype": np.float64,
        "hidden": "gelu",
        "output": "sigmoid",
        "dropout": 0.0,
    },
    "rmsprop_f32": {
        "opt": lambda: fnn.rmsprop(1e-3, momentum=0.5),
        "dtype": np.float32,
        "hidden": "elu",
        "output": "identity",
        "dropout": 0.0,
    },
    "adagrad_f64": {
        "opt": lambda: fnn.adagrad(0.1),
        "dtype": np.float64,
        "hidden": "relu",
        "output": "softmax",
        "dropout": 0.1,
    },
}


def run(name: str) -> tuple[fnn.Network, fnn.History]:
    c = CASES[name]
    X, y = fnn.datasets.make_spirals(240, n_classes=3, rng=0)
    if c["output"] == "sigmoid":
        y = (y == 0).astype(np.int64)
    elif c["output"] == "identity":
        y = np.stack([np.sin(3 * X[:, 0]), X[:, 1] ** 2], axis=1)
    n_out = {"softmax": 3, "sigmoid": 1, "identity": 2}[c["output"]]
    arch = fnn.mlp(
        [2, 32, 32, n_out],
        hidden=c["hidden"],
        output=c["output"],
        dropout=c["dropout"],
        dtype=c["dtype"],
    )
    net = fnn.init(arch, rng=0)
    return fnn.fit(
        net, c["opt"](), X.astype(c["dtype"]), y, epochs=5, batch_size=16, rng=0, verbose=0
    )


def main() -> None:
    out: dict[str, Any] = {}
    for name in CASES:
        net, h = run(name)
        out[f"{name}/params"] = np.asarray(fnn.tree.ravel(net))
        out[f"{name}/loss"] = np.asarray(h.train_loss)
    np.savez(Path(__file__).with_name("trajectories.npz"), **out)


if __name__ == "__main__":
    main()
