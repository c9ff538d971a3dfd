"""Write ``tests/data/checkpoint_v1.npz``: a checkpoint as fnn wrote it before
checkpoints kept the generator's state, the validation split and the best parameters
(format version 1), so ``tests/test_resume.py`` can check that such files still load.

Run with the fnn of that time on the path (commit b3a3a5f)::

    git archive b3a3a5f fnn | tar -x -C /tmp/oldfnn
    PYTHONPATH=/tmp/oldfnn python tests/data/make_checkpoint_v1.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fnn


def main() -> None:
    X, y = fnn.datasets.make_moons(60, noise=0.3, rng=0)
    net = fnn.init(fnn.mlp([2, 6, 1], output="sigmoid", dropout=0.1), rng=0)
    net, h = fnn.fit(
        net,
        fnn.adam(1e-2),
        X,
        y,
        epochs=3,
        rng=np.random.default_rng(0),
        validation_split=0.25,
        early_stopping=fnn.EarlyStopping(patience=5),
        verbose=0,
    )
    fnn.save(Path(__file__).with_name("checkpoint_v1.npz"), net, opt_state=h.opt_state, history=h)


if __name__ == "__main__":
    main()
