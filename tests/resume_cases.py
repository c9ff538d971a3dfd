"""The runs that ``tests/test_resume.py`` interrupts and resumes, shared by the test and
the new process that resumes them (``python -m tests.resume_cases CASE CHECKPOINT OUT``:
load CHECKPOINT, continue the run of CASE to its end, save the result to OUT)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import fnn

EPOCHS = 14
"""Epochs of the uninterrupted run."""
SAVED_AT = 6
"""The epoch after which a callback saves the checkpoint the new process resumes from."""
SEED = 5

FEATURES: dict[str, set[str]] = {
    "plain": set(),
    "validation_split": {"validation_split"},
    "reduce_on_plateau": {"reduce_on_plateau"},
    "early_stopping": {"early_stopping"},
    "dropout": {"dropout"},
    "all": {"validation_split", "reduce_on_plateau", "early_stopping", "dropout"},
    # a fit of SAVED_AT epochs whose returned parameters are the last ones (early
    # stopping with restore_best returns the best epoch's: save those from a callback)
    "all_but_early_stopping": {"validation_split", "reduce_on_plateau", "dropout"},
}
CASES: tuple[str, ...] = tuple(c for c in FEATURES if c != "all_but_early_stopping")


def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return fnn.datasets.make_moons(120, noise=0.3, rng=0)


def network(case: str) -> fnn.Network:
    dropout = 0.2 if "dropout" in FEATURES[case] else 0.0
    return fnn.init(fnn.mlp([2, 8, 8, 1], output="sigmoid", dropout=dropout), rng=0)


def optimizer() -> fnn.Optimizer:
    return fnn.adam(0.05)


def options(case: str) -> dict[str, Any]:
    """``fit``'s keywords for ``case`` (besides epochs, rng, history, opt_state)."""
    o: dict[str, Any] = {"batch_size": 16, "verbose": 0}
    features = FEATURES[case]
    if "validation_split" in features:
        o["validation_split"] = 0.25
    if "reduce_on_plateau" in features:
        # a large threshold: the scale is cut before and after the checkpoint
        o["reduce_on_plateau"] = fnn.ReduceOnPlateau(factor=0.5, patience=1, threshold=0.15)
    # the best epoch comes before the checkpoint, the stop after it
    if case == "early_stopping":
        o["early_stopping"] = fnn.EarlyStopping(patience=5, min_delta=0.06, restore_best=True)
    if case == "all":
        o["early_stopping"] = fnn.EarlyStopping(patience=7, restore_best=True)
    return o


def resume(case: str, checkpoint: str) -> tuple[fnn.Network, fnn.History]:
    """The rest of the run of ``case``, from a checkpoint saved after epoch SAVED_AT."""
    ck = fnn.load(checkpoint)
    X, y = data()
    assert ck.history is not None and ck.rng is not None and ck.opt_state is not None
    return fnn.fit(
        ck.params,
        optimizer(),
        X,
        y,
        epochs=EPOCHS - SAVED_AT,
        rng=ck.rng,
        history=ck.history,
        opt_state=ck.opt_state,
        **options(case),
    )


def main(argv: list[str]) -> None:
    case, checkpoint, out = argv
    params, history = resume(case, checkpoint)
    fnn.save(out, params, opt_state=history.opt_state, history=history)


if __name__ == "__main__":
    main(sys.argv[1:])
