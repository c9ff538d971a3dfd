"""Write ``tests/data/decay_v2/``: checkpoints as fnn wrote them while weight decay lived
inside the optimizers (format version 2 and before: ``Adam.weight_decay``, the ``AdamW``
transform with state ``(AdamState, mask)``), and ``continued.npz``, the parameters each
run reached after two more epochs in that fnn, so ``tests/test_decay_migration.py`` can
check that such files load into today's layout and resume to the same bits.

Run with the fnn of that time on the path (commit 2ac88c0)::

    git archive 2ac88c0 fnn | tar -x -C /tmp/oldfnn
    PYTHONPATH=/tmp/oldfnn python tests/data/make_decay_v2.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import fnn

HERE = Path(__file__).with_name("decay_v2")

CASES: dict[str, Callable[[], fnn.Optimizer]] = {
    "adamw_clip_schedule_mask": lambda: fnn.chain(
        fnn.clip_by_global_norm(1.0),
        fnn.adamw(fnn.schedules.WarmupCosine(1e-2, 3, 30), decay_mask=fnn.weights_only),
    ),
    "adamw_zero_decay_mask": lambda: fnn.adamw(1e-2, weight_decay=0.0, decay_mask=fnn.weights_only),
    "sgd_nesterov_decay": lambda: fnn.sgd(0.05, 0.9, True, weight_decay=1e-2),
    "masked_decay_then_adam_decay": lambda: fnn.chain(
        fnn.add_decayed_weights(1e-3, fnn.weights_only), fnn.adam(1e-2, weight_decay=1e-2)
    ),
    "rmsprop_decay": lambda: fnn.rmsprop(1e-2, weight_decay=1e-2, momentum=0.5, centered=True),
    "adagrad_decay": lambda: fnn.adagrad(0.1, weight_decay=1e-2),
    "adam_no_decay": lambda: fnn.adam(1e-2),
}


def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return fnn.datasets.make_spirals(60, n_classes=3, rng=0)


def main() -> None:
    X, y = data()
    continued: dict[str, Any] = {}
    for name, make in CASES.items():
        net = fnn.init(fnn.mlp([2, 6, 3], output="softmax"), rng=0)
        net, h = fnn.fit(net, make(), X, y, epochs=2, batch_size=16, rng=0, verbose=0)
        # a History on one of them, so a version-2 file (split and generator) is among them
        extra: dict[str, Any] = {}
        if name == "adamw_clip_schedule_mask":
            extra = {"history": h, "rng": np.random.default_rng(3)}
        fnn.save(HERE / f"{name}.npz", net, opt_state=h.opt_state, **extra)
        more, _ = fnn.fit(
            net, make(), X, y, epochs=2, batch_size=16, rng=7, opt_state=h.opt_state, verbose=0
        )
        continued[name] = np.asarray(more.flat)
    np.savez(HERE / "continued.npz", **continued)


if __name__ == "__main__":
    main()
