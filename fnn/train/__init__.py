"""Training: a pure ``train_step``, ``fit`` with the options users expect from Keras'
``fit`` and scikit-learn's MLP, ``evaluate``, and the immutable ``History``.

``fit`` validates its inputs once, then runs every step on private buffers (see
:mod:`fnn._engine`) with the same kernels as ``train_step`` and the four pure
functions; what it returns, and what callbacks and errors carry, are fresh, read-only
values. Training that produces a non-finite loss, gradient norm or update
stops at once with :class:`TrainingDiverged`, which carries the last finite parameters.

One concept per module: :mod:`~fnn.train.step` (``train_step``), :mod:`~fnn.train.fit`
(``fit`` and its options), :mod:`~fnn.train.history` (the record of a fit),
:mod:`~fnn.train.callbacks` (what ``fit`` calls after every epoch) and
:mod:`~fnn.train.evaluation` (``evaluate``). ``fnn.training`` re-exports them.
"""

from __future__ import annotations

from fnn.train.callbacks import Callback, EarlyStopping, FitState
from fnn.train.evaluation import evaluate
from fnn.train.fit import fit
from fnn.train.history import EpochRecord, FitHistory, History, Split, TrainingDiverged
from fnn.train.step import train_step

__all__ = [
    "Callback",
    "EarlyStopping",
    "EpochRecord",
    "FitHistory",
    "FitState",
    "History",
    "Split",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "train_step",
]
