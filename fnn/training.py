"""Training: a pure ``train_step``, ``fit`` with the options users expect from Keras'
``fit`` and scikit-learn's MLP, ``evaluate``, and the immutable ``History``.

``fit`` validates its inputs once, then runs every step on private buffers (see
:mod:`fnn._engine`) with the same kernels as ``train_step`` and the four pure
functions; what it returns, and what callbacks and errors carry, are fresh, read-only
values. Training that produces a non-finite loss, gradient norm or update
stops at once with :class:`TrainingDiverged`, which carries the last finite parameters.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, Required, TypedDict, Unpack

import attrs
import numpy as np

from fnn import metrics as _metrics
from fnn._engine import Engine, NonFinite
from fnn._types import ArrayLike, FloatArray, RNGLike
from fnn._validation import (
    as_generator,
    check_consistent_length,
    check_sample_weight,
    check_targets,
)
from fnn.controllers import EarlyStopping, ReduceOnPlateau, monitored
from fnn.datasets.preprocessing import split_indices
from fnn.layers.base import FRESH, TRAINING, Context, min_batch_rows_of
from fnn.layout import describe_mismatch
from fnn.network import (
    Network,
    backprop_flat,
    check_input,
    check_network,
    forward_pass,
    inference_rows,
    logits_of,
    output_length,
    prepare_targets,
)
from fnn.optim import Optimizer, OptState, check_state_fits
from fnn.progress import Progress
from fnn.tree import read_only

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

Metric = Callable[[Any, Any], float]


@attrs.frozen
class EpochRecord:
    """What one epoch reached.

    Attributes:
        epoch: 1-based epoch number (continuing across resumed runs).
        train_loss: mean training loss over the epoch's batches (weighted by size).
        val_loss: validation loss at the end of the epoch, or None.
        metrics: training metrics over the epoch's batch predictions.
        val_metrics: validation metrics at the end of the epoch.
        learning_rate: the learning rate at the end of the epoch.
        seconds: wall time of the epoch.
    """

    epoch: int
    train_loss: float
    val_loss: float | None
    metrics: Mapping[str, float]
    val_metrics: Mapping[str, float]
    learning_rate: float
    seconds: float


def _index_array(x: Any) -> np.ndarray[Any, Any]:
    return read_only(np.array(x, dtype=np.int64, copy=True))


@attrs.frozen(eq=False)
class Split:
    """The rows of ``X`` that ``fit(..., validation_split=fraction)`` drew once for
    training and for validation (sorted, disjoint, together ``range(n)``)."""

    fraction: float
    train: np.ndarray[Any, Any] = attrs.field(converter=_index_array)
    validation: np.ndarray[Any, Any] = attrs.field(converter=_index_array)

    @property
    def n(self) -> int:
        """The number of rows of the ``X`` the split was drawn for."""
        return len(self.train) + len(self.validation)


@attrs.frozen(eq=False)
class History:
    """An immutable record of a fit, which ``fit(..., history=h)`` continues.

    Attributes:
        records: one :class:`EpochRecord` per epoch.
        opt_state: the optimizer state at the end, to resume from.
        best_epoch: the epoch with the lowest monitored loss, if early stopping ran.
        stopped_early: whether early stopping or a callback ended the fit.
        best_params: the parameters of ``best_epoch``, if early stopping ran with
            ``restore_best`` (so that a resumed fit can still restore them).
        split: the rows drawn for training and validation, if ``validation_split``
            was used (a fit continuing this History uses them again).
    """

    records: tuple[EpochRecord, ...] = ()
    opt_state: OptState | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    best_params: Network | None = None
    split: Split | None = None

    @property
    def train_loss(self) -> list[float]:
        return [r.train_loss for r in self.records]

    @property
    def val_loss(self) -> list[float | None]:
        return [r.val_loss for r in self.records]

    @property
    def epochs(self) -> list[int]:
        return [r.epoch for r in self.records]

    def metric(self, name: str, *, validation: bool = False) -> list[float]:
        """The per-epoch values of one metric."""
        return [(r.val_metrics if validation else r.metrics)[name] for r in self.records]

    def as_dict(self) -> dict[str, list[float | None]]:
        """Keras-style ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``."""
        out: dict[str, list[float | None]] = {"loss": list(self.train_loss)}
        if any(v is not None for v in self.val_loss):
            out["val_loss"] = list(self.val_loss)
        names = self.records[0].metrics.keys() if self.records else []
        for name in names:
            out[name] = list(self.metric(name))
            if self.records[0].val_metrics:
                out[f"val_{name}"] = list(self.metric(name, validation=True))
        out["learning_rate"] = [r.learning_rate for r in self.records]
        return out


@attrs.frozen(eq=False, kw_only=True)
class FitHistory(History):
    """The :class:`History` that :func:`fit` returns (and its callbacks see): the same
    record, with ``opt_state`` always the optimizer state after the last epoch, so
    ``history.opt_state.step`` type-checks with no ``None`` test.

    A :class:`History` (``History()``, ``fnn.load(path).history``) may lack the state; a
    FitHistory is a History, so anything taking a History (``fit(..., history=h)``,
    ``fnn.save``) takes it too.
    """

    opt_state: OptState = attrs.field(validator=attrs.validators.instance_of(OptState))

    @classmethod
    def of(cls, history: History, opt_state: OptState) -> FitHistory:
        """``history`` (any History) with ``opt_state``, as a FitHistory."""
        return cls(**{**attrs.asdict(history, recurse=False), "opt_state": opt_state})


Callback = Callable[..., bool | None]
"""A function of the History so far, called after every epoch; True stops the fit.

``cb(history)``, or, if it has a parameter named ``state``, ``cb(history, state=s)``
with a :class:`FitState` ``s`` (to save a checkpoint mid-fit, say)."""


@attrs.frozen(eq=False)
class FitState:
    """What a callback with a ``state`` parameter sees after an epoch, besides the
    History: everything a checkpoint needs to resume the fit exactly.

    Attributes:
        params: the current parameters (a fresh, read-only network).
        opt_state: the current optimizer state (``history.opt_state``).
        rng: a copy of the fit's Generator in its current state (drawing from it does
            not change the fit); ``fnn.save(..., rng=state.rng)`` stores its state.
    """

    params: Network
    opt_state: OptState
    rng: np.random.Generator


def _wants_state(cb: Callable[..., Any]) -> bool:
    """Whether a callback takes the :class:`FitState` (it has a parameter ``state``)."""
    try:
        sig = inspect.signature(cb)
    except (TypeError, ValueError):  # some builtins have no signature: the plain form
        return False
    p = sig.parameters.get("state")
    return p is not None and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


class TrainingDiverged(FloatingPointError):
    """A non-finite loss, gradient norm or update stopped training.

    Attributes:
        params: the parameters of the last finite step.
        opt_state: the optimizer state that goes with them.
        step: the 1-based step (within the epoch) that failed.
        epoch: the 1-based epoch that failed.
        history: the epochs completed before.
    """

    def __init__(
        self,
        message: str,
        *,
        params: Any,
        opt_state: OptState | None,
        step: int,
        epoch: int,
        history: History,
    ) -> None:
        super().__init__(message)
        self.params = params
        self.opt_state = opt_state
        self.step = step
        self.epoch = epoch
        self.history = history


def _check_optimizer(optimizer: object) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an fnn optimizer (fnn.adam(...), fnn.sgd(...), fnn.chain(...)), "
            f"got {type(optimizer).__name__}"
        )
    return optimizer


def _prepare(
    params: Network, X: Any, y: Any, sample_weight: Any, *, xname: str = "X"
) -> tuple[FloatArray, FloatArray, FloatArray | None, np.ndarray[Any, Any]]:
    Xa = check_input(params, X)
    y_raw = check_targets(y)
    check_consistent_length(X=Xa, y=y_raw)
    ya = prepare_targets(params, y_raw, Xa.shape[0], output_length(params, Xa))
    w = check_sample_weight(sample_weight, Xa.shape[0], params.dtype)
    return Xa, ya, w, y_raw


def train_step(
    params: Network,
    opt_state: OptState,
    X: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    rng: RNGLike | None = None,
) -> tuple[Network, OptState, float]:
    """One pure training step on a batch: forward (training mode), backward, update.

    Args:
        params: the network.
        opt_state: its optimizer state (``optimizer.init(params)``).
        X: inputs (n, n_features).
        y: targets for the network's loss.
        sample_weight: optional weights (n,).
        rng: Generator or seed for dropout masks (required if the network has dropout).

    Returns:
        ``(params, opt_state, loss)``: new values and the batch loss before the update.

    Raises:
        FloatingPointError: the loss or the gradient is not finite (nothing is updated).
    """
    params = check_network(params)
    if not isinstance(opt_state, OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    Xa = check_input(params, X)
    ya = prepare_targets(params, y, Xa.shape[0], output_length(params, Xa))
    w = check_sample_weight(sample_weight, Xa.shape[0], params.dtype)
    gen = None if rng is None else as_generator(rng)
    if gen is None and params.has_dropout:
        raise ValueError("rng is required when the network has dropout")
    check_state_fits(opt_state, params.flat, params.layout.key)
    ctx = TRAINING if gen is None else Context(train=True, rng=gen)
    logits, caches = forward_pass(params, Xa, ctx, [FRESH] * len(params.layers))
    value, d = params.loss.value_and_grad(logits, ya, w)  # one pass for both
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite loss {value}")
    # what fnn.update does with backward's gradients, minus building them as a network
    g = backprop_flat(params, caches, d, ctx)
    new_params, new_state = opt_state.optimizer.update_flat(params, g, opt_state)
    return new_params, new_state, value


def _metric_fns(metrics: Sequence[str | Metric]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in _metrics.METRICS:
                raise ValueError(
                    f"unknown metric {m!r}; expected one of {sorted(_metrics.METRICS)}"
                )
            out[m] = _metrics.METRICS[m]
        elif callable(m):
            out[getattr(m, "__name__", "metric")] = m
        else:
            raise TypeError(f"metrics must be names or callables, got {type(m).__name__}")
    return out


def _evaluate_arrays(
    params: Network,
    logits_fn: Callable[[FloatArray], FloatArray],
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    y_raw: np.ndarray[Any, Any],
    metric_fns: Mapping[str, Metric],
) -> tuple[float, dict[str, float]]:
    rows = inference_rows(params)  # bounded memory for image networks
    logits = np.concatenate([logits_fn(X[i : i + rows]) for i in range(0, len(X), rows)])
    loss = params.loss.value(logits, y, w)
    out = params.loss.link(logits)
    return loss, {name: float(fn(y_raw, out)) for name, fn in metric_fns.items()}


def evaluate(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    metrics: Sequence[str | Metric] = (),
    sample_weight: ArrayLike | None = None,
) -> dict[str, float]:
    """``{"loss": ..., <metric>: ...}`` of the network on ``(X, y)`` at inference.

    Metrics are names from :mod:`fnn.metrics` ("accuracy", "top_k_accuracy", "f1",
    "log_loss", "mse", "mae", "r2") or callables ``f(y_true, y_pred) -> float``.
    """
    params = check_network(params)
    fns = _metric_fns(metrics)
    Xa, ya, w, y_raw = _prepare(params, X, y, sample_weight)
    loss, vals = _evaluate_arrays(params, lambda x: logits_of(params, x), Xa, ya, w, y_raw, fns)
    return {"loss": loss, **vals}


def _is_classifier(params: Network) -> bool:
    return params.loss.output == "softmax" or (
        params.loss.output == "sigmoid" and params.n_outputs == 1
    )


class FitOptions(TypedDict, total=False):
    """The keyword arguments of :func:`fit` and ``fnn.distributed.fit``, defined once
    (documented in :func:`fit`; defaults in :data:`FIT_DEFAULTS`)."""

    epochs: Required[int]
    rng: Required[RNGLike]
    batch_size: int
    shuffle: bool
    drop_last: bool
    validation_data: tuple[ArrayLike, ArrayLike] | None
    validation_split: float
    sample_weight: ArrayLike | None
    metrics: Sequence[str | Metric]
    early_stopping: EarlyStopping | None
    reduce_on_plateau: ReduceOnPlateau | None
    callbacks: Sequence[Callback]
    opt_state: OptState | None
    initial_epoch: int
    history: History | None
    verbose: int


FIT_DEFAULTS: Final[FitOptions] = {
    "epochs": 1,  # required: never taken from here
    "rng": 0,  # required: never taken from here
    "batch_size": 32,
    "shuffle": True,
    "drop_last": False,
    "validation_data": None,
    "validation_split": 0.0,
    "sample_weight": None,
    "metrics": (),
    "early_stopping": None,
    "reduce_on_plateau": None,
    "callbacks": (),
    "opt_state": None,
    "initial_epoch": 0,
    "history": None,
    "verbose": 1,
}


def _options(options: FitOptions) -> FitOptions:
    """``options`` completed with the defaults; TypeError for unknown or missing names
    and for arguments of the wrong kind, before any work."""
    unknown = sorted(set(options) - set(FIT_DEFAULTS))
    if unknown:
        raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}")
    for name in ("epochs", "rng"):
        if name not in options:
            raise TypeError(f"fit() missing required keyword argument {name!r}")
    o: FitOptions = {**FIT_DEFAULTS, **options}
    es, rop = o["early_stopping"], o["reduce_on_plateau"]
    if es is not None and not isinstance(es, EarlyStopping):
        raise TypeError(
            f"early_stopping must be an fnn.EarlyStopping(...) or None, got {type(es).__name__} "
            f"{es!r}"
        )
    if rop is not None and not isinstance(rop, ReduceOnPlateau):
        raise TypeError(
            f"reduce_on_plateau must be an fnn.ReduceOnPlateau(...) or None, got "
            f"{type(rop).__name__} {rop!r}"
        )
    cbs = o["callbacks"]
    if isinstance(cbs, str) or not isinstance(cbs, Sequence):
        raise TypeError(f"callbacks must be a sequence of callables, got {type(cbs).__name__}")
    for i, cb in enumerate(cbs):
        if not callable(cb):
            raise TypeError(
                f"callbacks[{i}] must be a callable f(history) -> bool | None, got "
                f"{type(cb).__name__} {cb!r}"
            )
    for name in ("shuffle", "drop_last"):
        if not isinstance(o[name], bool | np.bool_):  # type: ignore[literal-required]
            raise TypeError(f"{name} must be a bool, got {o[name]!r}")  # type: ignore[literal-required]
    h = o["history"]
    if h is not None and not isinstance(h, History):
        raise TypeError(f"history must be an fnn.History or None, got {type(h).__name__}")
    if h is not None:
        if "initial_epoch" not in options:
            o["initial_epoch"] = h.records[-1].epoch if h.records else 0
        elif h.records and o["initial_epoch"] != h.records[-1].epoch:
            raise ValueError(
                f"initial_epoch={o['initial_epoch']!r} does not continue history, whose last "
                f"epoch is {h.records[-1].epoch} (leave initial_epoch out to continue it)"
            )
        if o["opt_state"] is None:
            o["opt_state"] = h.opt_state
    return o


def fit(
    params: Network,
    optimizer: Optimizer,
    X: ArrayLike,
    y: ArrayLike,
    **options: Unpack[FitOptions],
) -> tuple[Network, FitHistory]:
    """Train ``params`` with ``optimizer`` on ``(X, y)`` in minibatches.

    Args:
        params: the network to start from (unchanged).
        optimizer: e.g. ``fnn.adam(1e-3)``.
        X: inputs (n, n_features).
        y: targets for the network's loss.
        **options: the keyword arguments below (:class:`FitOptions`).

    Keyword Args:
        epochs (int): passes over the data (>= 1).
        batch_size (int): samples per step (the last batch of an epoch may be smaller).
        drop_last (bool): skip an epoch's last batch when it is incomplete (as PyTorch's
            ``DataLoader(drop_last=True)``; batch normalisation over single values needs
            more than one sample per batch, and a fit whose batches would have fewer
            rows than a layer needs is refused before the first step).
        rng (Generator | int): Generator or int seed for shuffling, the validation split
            and dropout.
        shuffle (bool): reshuffle the training samples every epoch.
        validation_data (tuple | None): ``(X_val, y_val)`` evaluated after each epoch.
        validation_split (float): fraction of ``(X, y)`` held out for validation instead,
            shuffled and, for classifiers, stratified.
        sample_weight (ArrayLike | None): weights (n,) for the training loss; with
            ``validation_split``, the held-out rows' weights weight the validation loss
            (metrics are unweighted).
        metrics (Sequence[str | Callable]): metric names or callables reported for training
            and validation.
        early_stopping (EarlyStopping | None): stop when the monitored loss stops improving.
        reduce_on_plateau (ReduceOnPlateau | None): scale the learning rate down when the
            monitored loss stalls.
        callbacks (Sequence[Callable]): functions called after each epoch with the History
            so far; True stops training. A callback with a parameter named ``state``
            (``def cb(history, state): ...``) is also given a :class:`FitState` with the
            current parameters, optimizer state and a copy of the generator, e.g. to
            save a checkpoint mid-fit with ``fnn.save(path, state.params,
            opt_state=state.opt_state, history=history, rng=state.rng)``.
        opt_state (OptState | None): resume from this optimizer state (of the same
            optimizer); with ``history``, defaults to ``history.opt_state``.
        initial_epoch (int): number the epochs from here (for resumed runs); with
            ``history``, defaults to (and must be) its last epoch. Without ``history``
            it is refused (ValueError) with ``validation_split``, ``reduce_on_plateau``
            or ``early_stopping``, which only the History lets a resumed run continue.
        history (History | None): a :class:`History` to continue (e.g.
            ``fnn.load(path).history``): the returned History holds its records
            followed by the new ones; early stopping and reduce-on-plateau replay its
            losses, so their best loss, patience and learning-rate scale carry on; its
            best parameters can still be restored; and with ``validation_split`` its
            training/validation rows are used again (``X`` must have the length they
            were drawn for). For a run that continues bit for bit, also pass the
            generator saved with it (``rng=ckpt.rng``). With ``restore_best`` a fit
            returns the best epoch's parameters, not the last: to resume such a run,
            save the checkpoint from a callback (``state.params``).
        verbose (int): 0 silent; 1 a live progress line when standard error is a terminal,
            one line per epoch otherwise (logs, notebooks' captured output);
            2 one line per epoch.

    Returns:
        ``(params, history)``: the trained network (the best one if early stopping
        restores it) and a :class:`FitHistory` (a :class:`History` whose ``opt_state``,
        the final optimizer state, is never None), with the validation split and best
        parameters, to continue it.

    Raises:
        TrainingDiverged: (a FloatingPointError) at the first non-finite loss, gradient
            norm or update, carrying the last finite parameters.
    """
    return run_fit(params, optimizer, X, y, options, None)


class Distributor(Protocol):
    """How a data-parallel fit shares the work (see :mod:`fnn.distributed`)."""

    def agree(self, error: BaseException | None) -> None:
        """Collective: raise on every rank if any rank failed before training."""
        ...

    def step(
        self,
        engine: Engine,
        X: FloatArray,
        y: FloatArray,
        w: FloatArray | None,
        rng: np.random.Generator,
    ) -> float:
        """One step on this rank's shard of the global batch; returns the global loss."""
        ...


def run_fit(
    params: Network,
    optimizer: Optimizer,
    X: ArrayLike,
    y: ArrayLike,
    options: FitOptions,
    distributor: Distributor | None,
) -> tuple[Network, FitHistory]:
    """:func:`fit` with its keyword arguments as one mapping, and a :class:`Distributor`
    for data-parallel training (``fnn.distributed.fit``) or None."""
    dist = distributor
    try:
        o = _options(options)
        prepared = _prepare_fit(params, optimizer, X, y, o)
    except BaseException as e:
        if dist is not None:
            dist.agree(e)
        raise
    if dist is not None:
        dist.agree(None)
    return _run(prepared, o, dist)


@attrs.frozen(eq=False)
class _Prepared:
    params: Network
    optimizer: Optimizer
    gen: np.random.Generator
    fns: dict[str, Metric]
    Xa: FloatArray
    ya: FloatArray
    w: FloatArray | None
    y_raw: np.ndarray[Any, Any]
    Xv: FloatArray | None
    yv: FloatArray | None
    yv_raw: np.ndarray[Any, Any] | None
    wv: FloatArray | None  # the validation rows' sample weights (validation_split)
    opt_state: OptState
    own_state: bool
    history: History  # the History to continue (empty for a new fit), with the split
    wants_state: tuple[bool, ...]  # per callback: whether it takes the FitState


def _prepare_fit(
    params: Network, optimizer: Optimizer, X: ArrayLike, y: ArrayLike, o: FitOptions
) -> _Prepared:
    """Validate and convert everything once, before any work."""
    epochs, batch_size, rng = o["epochs"], o["batch_size"], o["rng"]
    validation_data, validation_split = o["validation_data"], o["validation_split"]
    metrics, opt_state, initial_epoch, verbose = (
        o["metrics"],
        o["opt_state"],
        o["initial_epoch"],
        o["verbose"],
    )
    params = check_network(params)
    optimizer = _check_optimizer(optimizer)
    for name, v, lo in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("initial_epoch", initial_epoch, 0),
    ):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if initial_epoch and o["history"] is None:
        # what the History carries: the validation rows, and the losses the
        # controllers replay; without it a resumed run silently differs
        needs = [
            name
            for name, given in (
                ("validation_split", bool(validation_split)),
                ("reduce_on_plateau", o["reduce_on_plateau"] is not None),
                ("early_stopping", o["early_stopping"] is not None),
            )
            if given
        ]
        if needs:
            raise ValueError(
                f"initial_epoch={initial_epoch} resumes a run, but with {' and '.join(needs)} "
                "it continues as the uninterrupted run only from that run's History: pass "
                "history= (e.g. fnn.load(path).history, or the History the first fit "
                "returned) instead of initial_epoch"
            )
    if validation_data is not None and validation_split:
        raise ValueError("pass validation_data or validation_split, not both")
    if not (isinstance(validation_split, int | float) and 0 <= validation_split < 1):
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    gen = as_generator(rng)
    fns = _metric_fns(metrics)
    Xa, ya, w, y_raw = _prepare(params, X, y, o["sample_weight"])

    history = o["history"] if o["history"] is not None else History()
    split = _check_split(history, validation_split, validation_data, len(Xa))
    Xv: FloatArray | None = None
    yv: FloatArray | None = None
    yv_raw: np.ndarray[Any, Any] | None = None
    wv: FloatArray | None = None
    if validation_split:
        if split is None:  # drawn once; a fit continuing the History uses it again
            tr, va = split_indices(
                len(Xa),
                float(validation_split),
                rng=gen,
                stratify=y_raw if _is_classifier(params) else None,
            )
            split = Split(fraction=float(validation_split), train=tr, validation=va)
            history = attrs.evolve(history, split=split)
        tr, va = split.train, split.validation
        Xv, yv, yv_raw = Xa[va], ya[va], y_raw[va]
        Xa, ya, y_raw = Xa[tr], ya[tr], y_raw[tr]
        if w is not None:
            # the held-out rows keep their weights: the validation loss is the weighted
            # objective that is trained, so early stopping keeps the best epoch for it
            w, wv = w[tr], w[va]
            if not wv.sum() > 0:
                raise ValueError(
                    "sample_weight is zero for every validation row drawn by "
                    f"validation_split={validation_split!r}: the weighted validation loss "
                    "is undefined (give those rows weight, or pass validation_data)"
                )
    elif validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        Xv, yv, _, yv_raw = _prepare(params, validation_data[0], validation_data[1], None)

    if o["drop_last"] and len(Xa) < batch_size:
        raise ValueError(
            f"drop_last=True with {len(Xa)} training samples and batch_size={batch_size} "
            "leaves no batch to train on"
        )
    _check_batch_rows(params, len(Xa), batch_size, o["drop_last"])
    own_state = False
    if opt_state is None:
        opt_state = optimizer.init(params)
        own_state = True  # made here and seen by no one: the engine may use it in place
    elif not isinstance(opt_state, OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    else:
        check_state_fits(opt_state, params.flat, params.layout.key)
    if opt_state.optimizer != optimizer:
        if opt_state.optimizer.config() != optimizer.config():
            raise ValueError("opt_state was made by a different optimizer than the one given")
        # the same configuration (e.g. a state loaded from a checkpoint): carry on with
        # the given optimizer; masks are already resolved in the state
        opt_state = attrs.evolve(opt_state, optimizer=optimizer)
    if gen is None:  # pragma: no cover - as_generator never returns None
        raise AssertionError
    if history.best_params is not None:
        check_best_params(history.best_params, params)

    return _Prepared(
        params=params,
        optimizer=optimizer,
        gen=gen,
        fns=fns,
        Xa=Xa,
        ya=ya,
        w=w,
        y_raw=y_raw,
        Xv=Xv,
        yv=yv,
        yv_raw=yv_raw,
        wv=wv,
        opt_state=opt_state,
        own_state=own_state,
        history=history,
        wants_state=tuple(_wants_state(cb) for cb in o["callbacks"]),
    )


def _check_batch_rows(params: Network, n: int, batch_size: int, drop_last: bool) -> None:
    """ValueError, before the first step, when a training batch of ``n`` rows in batches
    of ``batch_size`` would have fewer rows than a layer needs (its optional
    ``min_batch_rows(input_shape)``, e.g. batch norm over single values needs two)."""
    rows = {min(batch_size, n)}
    if not drop_last and n % batch_size and n > batch_size:
        rows.add(n % batch_size)
    fewest = min(rows)
    shapes = (params.input_shape, *params.shapes[:-1])
    for i, (layer, shape) in enumerate(zip(params.layers, shapes, strict=True)):
        need = 1 if shape is None else min_batch_rows_of(layer, shape)
        if fewest < need:
            where = f"layers.{i} ({type(layer).__name__}) needs at least {need} rows in each "
            if len(rows) == 1:
                raise ValueError(
                    f"{where}training batch, but every batch has {fewest} ({n} training "
                    f"rows, batch_size={batch_size}): use a batch_size of at least {need}"
                )
            raise ValueError(
                f"{where}training batch, but the last batch of each epoch has {fewest} ({n} "
                f"training rows, batch_size={batch_size}): pass drop_last=True to skip it, "
                "or choose a batch_size that leaves no such batch"
            )


def check_best_params(best: Network, params: Network) -> None:
    """``history.best_params`` must be parameters of ``params``' architecture: TypeError
    unless ``best`` is a Network, ValueError naming where it differs otherwise."""
    if not isinstance(best, Network):
        raise TypeError(f"history.best_params must be an fnn.Network, got {type(best).__name__}")
    if best.layout.key != params.layout.key:
        raise ValueError(describe_mismatch(params, best, "history.best_params"))


def _check_split(
    history: History, validation_split: float, validation_data: object, n: int
) -> Split | None:
    """The split of the History continued, if it is to be used again; ValueError when
    the fit's validation options or ``X`` contradict it."""
    split = history.split
    if split is None:
        if validation_split and history.records:
            raise ValueError(
                f"validation_split={validation_split!r} cannot continue history: it has "
                f"{len(history.records)} epoch(s) but no validation split (a History made "
                "without validation_split, or saved before fnn kept the split), so the rows "
                "it validated on are unknown"
            )
        return None
    if validation_data is not None or float(validation_split) != split.fraction:
        raise ValueError(
            f"history was made with validation_split={split.fraction!r}: continue it with "
            f"the same validation_split (got validation_split={validation_split!r}"
            f"{' and validation_data' if validation_data is not None else ''})"
        )
    if n != split.n:
        raise ValueError(
            f"X has {n} samples, but history's validation split was drawn for {split.n}: "
            "continue it with the same X"
        )
    return split


def _run(prep: _Prepared, o: FitOptions, dist: Distributor | None) -> tuple[Network, FitHistory]:
    """The epoch loop of :func:`fit` on prepared inputs."""
    epochs, batch_size, shuffle, initial_epoch = (
        o["epochs"],
        o["batch_size"],
        o["shuffle"],
        o["initial_epoch"],
    )
    early_stopping, reduce_on_plateau = o["early_stopping"], o["reduce_on_plateau"]
    callbacks, verbose = o["callbacks"], o["verbose"]
    params, optimizer, gen, fns = prep.params, prep.optimizer, prep.gen, prep.fns
    Xa, ya, w, y_raw = prep.Xa, prep.ya, prep.w, prep.y_raw
    Xv, yv, yv_raw, opt_state = prep.Xv, prep.yv, prep.yv_raw, prep.opt_state
    engine = Engine(params, optimizer, opt_state, own_state=prep.own_state)
    start = prep.history
    if reduce_on_plateau is not None and start.records:
        engine.lr_scale = reduce_on_plateau.scale(start)  # the scale the History left
    # non-finite values are detected explicitly (TrainingDiverged), not by NumPy warnings
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    errstate.__enter__()
    ended = False  # normally: then no caller holds the engine's private buffers
    try:
        n = len(Xa)
        steps = n // batch_size if o["drop_last"] else -(-n // batch_size)
        progress = Progress(epochs, steps, verbose, first_epoch=initial_epoch)
        history = attrs.evolve(FitHistory.of(start, opt_state), stopped_early=False)
        # the parameters of the best epoch: the History's, if the replay of its losses
        # agrees on which epoch that is
        best_params: Network | None = None
        if early_stopping is not None and early_stopping.restore_best and start.records:
            i = early_stopping.best_index(start)
            if i is not None and start.best_epoch == start.records[i].epoch:
                best_params = start.best_params
        stopped = False
        # training metrics over the epoch's batch predictions (in a data-parallel fit
        # each rank sees only its shards: there they are measured at the epoch's end)
        per_sample_out = (
            (output_length(params, Xa), params.n_outputs)
            if params.per_position
            else (params.n_outputs,)
        )
        epoch_out = (
            np.empty((n, *per_sample_out), dtype=params.dtype)
            if fns and dist is None and not o["drop_last"]
            else None
        )

        for e in range(initial_epoch + 1, initial_epoch + epochs + 1):
            t0 = time.perf_counter()
            order = gen.permutation(n) if shuffle else None
            total = 0.0
            weight_total = 0.0
            for s in range(steps):
                # without shuffling a batch is a slice: a view, not a copy
                idx: slice | np.ndarray[Any, Any] = (
                    slice(s * batch_size, (s + 1) * batch_size)
                    if order is None
                    else order[s * batch_size : (s + 1) * batch_size]
                )
                Xb = Xa[idx]
                wb = None if w is None else w[idx]
                out_b = (
                    None
                    if epoch_out is None
                    else np.empty((len(Xb), *per_sample_out), params.dtype)
                )
                try:
                    if dist is None:
                        value = engine.step(Xb, ya[idx], wb, gen, out_b)
                    else:
                        value = dist.step(engine, Xb, ya[idx], wb, gen)
                except NonFinite as err:
                    raise TrainingDiverged(
                        f"non-finite {err.what} at step {s + 1} (epoch {e}); the parameters of the "
                        "last finite step are in .params",
                        params=engine.params(),
                        opt_state=None if err.what != "loss" else engine.opt_state,
                        step=s + 1,
                        epoch=e,
                        history=history,
                    ) from None
                if epoch_out is not None and out_b is not None:
                    epoch_out[idx] = out_b
                bw = params.loss.batch_weight(ya[idx], wb)
                total += value * bw
                weight_total += bw
                progress.step(e, s + 1, value)
            train_loss = total / weight_total
            if epoch_out is not None:
                train_metrics = {k: float(fn(y_raw, epoch_out)) for k, fn in fns.items()}
            elif fns:
                _, train_metrics = _evaluate_arrays(params, engine.logits, Xa, ya, None, y_raw, fns)
            else:
                train_metrics = {}
            val_loss: float | None = None
            val_metrics: dict[str, float] = {}
            if Xv is not None and yv is not None and yv_raw is not None:
                val_loss, val_metrics = _evaluate_arrays(
                    params, engine.logits, Xv, yv, prep.wv, yv_raw, fns
                )
            # after the last epoch no step follows: the state is handed over, not copied
            last = e == initial_epoch + epochs
            state_now = engine.release_state() if last else engine.opt_state
            record = EpochRecord(
                epoch=e,
                train_loss=train_loss,
                val_loss=val_loss,
                metrics=train_metrics,
                val_metrics=val_metrics,
                learning_rate=state_now.learning_rate,
                seconds=time.perf_counter() - t0,
            )
            history = attrs.evolve(history, records=(*history.records, record), opt_state=state_now)
            progress.epoch(e, _summary(record))

            if early_stopping is not None:
                # a replay of the History's losses: a continued History carries on
                i, stop = early_stopping.replay(monitored(history))
                assert i is not None
                if i == len(history.records) - 1:  # this epoch is the best so far
                    best_params = engine.params() if early_stopping.restore_best else None
                history = attrs.evolve(
                    history, best_epoch=history.records[i].epoch, best_params=best_params
                )
                stopped = stopped or stop
            if reduce_on_plateau is not None:
                engine.lr_scale = reduce_on_plateau.scale(history)
                assert history.opt_state is not None
                history = attrs.evolve(
                    history, opt_state=attrs.evolve(history.opt_state, lr_scale=engine.lr_scale)
                )
            fit_state: FitState | None = None
            for cb, wants_state in zip(callbacks, prep.wants_state, strict=True):
                if wants_state:
                    if fit_state is None:
                        assert history.opt_state is not None
                        fit_state = FitState(
                            params=engine.params(),
                            opt_state=history.opt_state,
                            rng=copy.deepcopy(gen),
                        )
                    if cb(history, state=fit_state):
                        stopped = True
                elif cb(history):
                    stopped = True
            if stopped:
                break

        history = attrs.evolve(history, stopped_early=stopped)
        ended = True
        if early_stopping is not None and early_stopping.restore_best:
            if best_params is not None:
                return best_params, history
            warnings.warn(
                f"early stopping cannot restore the best epoch ({history.best_epoch}): it "
                "is an epoch of the History continued, which holds no parameters for it; "
                "the last parameters are returned",
                RuntimeWarning,
                stacklevel=3,
            )
        return engine.release_params(), history
    finally:
        errstate.__exit__(None, None, None)
        engine.close(keep_scratch=ended)


def _summary(r: EpochRecord) -> str:
    parts = [f"loss {r.train_loss:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in r.metrics.items()]
    if r.val_loss is not None:
        parts.append(f"val_loss {r.val_loss:.4f}")
    parts += [f"val_{k} {v:.4f}" for k, v in r.val_metrics.items()]
    parts.append(f"{r.seconds:.2f}s")
    return "  ".join(parts)
