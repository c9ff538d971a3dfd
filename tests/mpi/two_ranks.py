"""Run under mpiexec by tests/test_distributed.py: a data-parallel fit whose result
rank 0 saves, for comparison with the serial run in the test process."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

import fnn
from fnn import distributed

TRAIN: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 25,  # on 2 ranks: shards of 13 and 12 rows (unequal)
    "rng": 3,
    "metrics": ["accuracy"],
    "verbose": 0,
}
"""The data-parallel fit's settings, which the serial run in the test repeats."""


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = fnn.datasets.make_spirals(150, n_classes=3, rng=0)
    w = np.random.default_rng(1).uniform(0.2, 2.0, len(y))
    return X, y, w


def architecture() -> fnn.Architecture:
    return fnn.mlp([2, 16, 16, 3], output="softmax", dropout=0.2)


def network() -> fnn.Network:
    return fnn.init(architecture(), rng=distributed.rank() + 7)  # per rank: rank 0's wins


SEQUENCE_TRAIN: dict[str, Any] = {
    "epochs": 2,
    "batch_size": 25,  # shards of rows 0-12 and 13-24 of each batch (no shuffling)
    "rng": 3,
    "shuffle": False,
    "metrics": ["accuracy"],
    "verbose": 0,
}
"""The data-parallel fit of a token network, repeated serially by the test."""


def sequence_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (50, 6), targets with ignored positions (every one of rows 13-24: the
    second rank's first shard counts nothing) and sample weights."""
    rng = np.random.default_rng(2)
    X = rng.integers(0, 9, (50, 6))
    y = rng.integers(0, 9, (50, 6))
    y[rng.random(y.shape) < 0.3] = -100
    y[13:25] = -100
    w = rng.uniform(0.2, 2.0, 50)
    return X, y, w


def sequence_network() -> fnn.Network:
    arch = fnn.sequential(
        (None,),
        [
            fnn.specs.embedding(9, 5),
            fnn.specs.positional_embedding(8),
            fnn.specs.layer_norm(),
            fnn.specs.dense(9),
        ],
        output="softmax",
    )
    return fnn.init(arch, rng=7)


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    X, y, w = data()
    if mode == "sequence":
        Xs, ys, ws = sequence_data()
        net, h = distributed.fit(
            sequence_network(), fnn.adamw(1e-2), Xs, ys, sample_weight=ws, **SEQUENCE_TRAIN
        )
        distributed.save(out, net, opt_state=h.opt_state, history=h)
    elif mode == "train":
        net, h = distributed.fit(network(), fnn.adamw(1e-2), X, y, sample_weight=w, **TRAIN)
        distributed.save(out, net, opt_state=h.opt_state, history=h)
        assert fnn.tree.allclose(net, distributed.broadcast(net), rtol=0, atol=0)
        # each rank ran fnn's kernels on one thread (the default of distributed.fit)
        assert "FNN_NUM_THREADS" in os.environ or fnn.get_num_threads() == 1
    elif mode in ("full", "resume"):
        # a run saved mid-fit from a callback, resumed under mpiexec by a new launch
        opts: dict[str, Any] = {
            **TRAIN,
            "epochs": 4,
            "validation_split": 0.2,
            "early_stopping": fnn.EarlyStopping(patience=3),
            "reduce_on_plateau": fnn.ReduceOnPlateau(factor=0.5, patience=0, threshold=0.3),
        }
        checkpoint = out + ".at2.npz"
        if mode == "full":

            def save_at_2(history: fnn.History, state: fnn.training.FitState) -> None:
                if len(history.records) == 2:  # on every rank: distributed.save is collective
                    distributed.save(
                        checkpoint,
                        state.params,
                        opt_state=state.opt_state,
                        history=history,
                        rng=state.rng,
                    )

            opts["rng"] = np.random.default_rng(3)
            net, h = distributed.fit(
                network(), fnn.adamw(1e-2), X, y, callbacks=[save_at_2], **opts
            )
        else:
            ck = fnn.load(checkpoint)
            assert ck.history is not None and ck.rng is not None
            opts.update(epochs=2, rng=ck.rng, history=ck.history, opt_state=ck.opt_state)
            net, h = distributed.fit(ck.params, fnn.adamw(1e-2), X, y, **opts)
        distributed.save(out, net, opt_state=h.opt_state, history=h)
    elif mode == "fail":
        # rank 1 gets bad data: every rank must stop with an error, none may hang
        if distributed.rank() == 1:
            X = X.copy()
            X[0, 0] = np.nan
        try:
            distributed.fit(network(), fnn.sgd(0.1), X, y, epochs=1, rng=0, verbose=0)
        except (ValueError, RuntimeError) as e:
            print(f"rank {distributed.rank()} stopped: {type(e).__name__}: {e}", flush=True)
            sys.exit(3)
        sys.exit(0)
    elif mode == "diverge":
        reg = fnn.init(fnn.mlp([2, 16, 1]), rng=0)  # MSE: gradients grow without bound
        try:
            distributed.fit(reg, fnn.sgd(1e6), X, X[:, 0] * 1e3, epochs=50, rng=0, verbose=0)
        except FloatingPointError as e:
            print(f"rank {distributed.rank()} diverged: {e}", flush=True)
            sys.exit(4)


if __name__ == "__main__":
    main()
