"""scikit-learn estimators: ``FNNClassifier`` and ``FNNRegressor`` (extra ``sklearn``).

They wrap the functional API for Pipelines and grid search: ``fit`` builds an
``fnn.mlp`` and trains it with ``fnn.fit``; the trained network is ``network_`` (an
ordinary ``fnn.Network``), its optimizer state ``opt_state_`` and its History
``history_``. ``partial_fit`` trains one more epoch and keeps the optimizer state
between calls (scikit-learn's MLP restarts Adam's moments on ``warm_start``).

scikit-learn is imported when this module is, so ``import fnn`` never needs it.
"""

# mypy: disable-error-code="import-untyped, import-not-found"

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fnn.sklearn needs scikit-learn: pip install 'fnn[sklearn]'") from e

from fnn import optim, tree
from fnn.network import Network, init, mlp, predict
from fnn.training import EarlyStopping, History, fit

__all__ = ["FNNClassifier", "FNNRegressor", "expected_failed_checks"]

OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"]
"""The names of ``fnn.optim.OPTIMIZERS`` for mypy (a test keeps the two equal)."""


def _make_optimizer(
    name: str, learning_rate: float, alpha: float, momentum: float
) -> optim.Optimizer:
    if name not in optim.OPTIMIZERS:
        names = sorted(optim.OPTIMIZERS.as_table())
        raise ValueError(f"optimizer must be one of {names}, got {name!r}")
    make = optim.OPTIMIZERS[name]
    # the estimator's momentum is SGD's (Nesterov, as scikit-learn's MLP)
    base = (
        make(learning_rate, momentum=momentum, nesterov=momentum > 0)
        if name == "sgd"
        else make(learning_rate)
    )
    if alpha:
        # L2 penalty on the weights (not the biases), as scikit-learn's MLP does
        return optim.chain(optim.add_decayed_weights(alpha, optim.weights_only), base)
    return base


def _to_float64(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return a.astype(np.float64)


def _check_weights(sample_weight: Any, X: Any) -> np.ndarray[Any, Any] | None:
    """``None`` or finite, non-negative weights (n,) with at least one above zero, with
    scikit-learn's messages."""
    if sample_weight is None:
        return None
    sw: np.ndarray[Any, Any] = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    return sw


class _FNNBase(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    # fitted attributes (set by fit / partial_fit, never by __init__)
    network_: Network
    opt_state_: optim.OptState | None
    history_: History
    n_iter_: int
    loss_: float
    loss_curve_: list[float]
    _rng_: np.random.Generator
    _y_1d: bool

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        optimizer: OptimizerName = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        batch_size: int | Literal["auto"] = "auto",
        epochs: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        dropout: float = 0.0,
        alpha: float = 1e-4,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        dtype: Literal["float32", "float64"] = "float64",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dropout = dropout
        self.alpha = alpha
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    # --- helpers ---------------------------------------------------------------------

    def _check_params(self) -> None:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (int(sizes),)
        if any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}"
            )
        for name in ("epochs", "n_iter_no_change"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not (
            self.batch_size == "auto"
            or (isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1)
        ):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {self.batch_size!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        for name in ("learning_rate", "momentum", "dropout", "validation_fraction"):
            v = getattr(self, name)  # their ranges are checked where they are used
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be a float, got {type(v).__name__} {v!r}")
        for name in ("alpha", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be a float, got {type(v).__name__} {v!r}")
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(f"{name} must be a finite float >= 0, got {v!r}")
        if isinstance(self.verbose, bool | numbers.Integral):
            if self.verbose < 0:
                raise ValueError(f"verbose must be >= 0, got {self.verbose!r}")
        else:
            raise TypeError(
                f"verbose must be an int or a bool, got {type(self.verbose).__name__} "
                f"{self.verbose!r}"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, numbers.Integral):
            return int(rs)
        return int(check_random_state(rs).randint(0, 2**31 - 1))

    def _new_network(self, n_features: int, n_outputs: int, output: str) -> Network:
        sizes = self.hidden_layer_sizes
        hidden = [int(sizes)] if isinstance(sizes, numbers.Integral) else [int(s) for s in sizes]
        arch = mlp(
            [n_features, *hidden, n_outputs],
            hidden=self.activation,
            output=output,  # type: ignore[arg-type]
            dropout=self.dropout,
            dtype=self.dtype,
        )
        return init(arch, rng=self._seed())

    def _begin(self, n_features: int, n_outputs: int, output: str) -> None:
        """A new network and generator, and an empty training record."""
        self.network_ = self._new_network(n_features, n_outputs, output)
        self._rng_ = np.random.default_rng(self._seed())
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.opt_state_ = None

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else int(self.batch_size)

    def _train(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool) -> None:
        if sample_weight is not None and not (sample_weight > 0).all():
            # rows of weight 0 change nothing in the weighted loss; without them no
            # minibatch can have weights that sum to 0
            keep = sample_weight > 0
            X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
        net: Network = self.network_
        opt = _make_optimizer(
            self.optimizer, float(self.learning_rate), float(self.alpha), float(self.momentum)
        )
        state = self.opt_state_ if incremental else None
        rng = self._rng_
        if incremental:
            net, history = fit(
                net,
                opt,
                X,
                y,
                epochs=1,
                batch_size=self._batch(len(X)),
                rng=rng,
                sample_weight=sample_weight,
                opt_state=state,
                initial_epoch=self.n_iter_,
                verbose=2 if self.verbose else 0,
            )
            self.n_iter_ += 1
            self.loss_curve_ = [*self.loss_curve_, history.train_loss[-1]]
        else:
            stopper = EarlyStopping(patience=int(self.n_iter_no_change), min_delta=float(self.tol))
            kwargs: dict[str, Any] = {}
            if self.early_stopping:
                kwargs["validation_split"] = self.validation_fraction
            net, history = fit(
                net,
                opt,
                X,
                y,
                epochs=self.epochs,
                batch_size=self._batch(len(X)),
                rng=rng,
                sample_weight=sample_weight,
                early_stopping=stopper,
                verbose=2 if self.verbose else 0,
                **kwargs,
            )
            self.n_iter_ = len(history.records)
            self.loss_curve_ = list(history.train_loss)
        self.network_ = net
        self.history_ = history
        self.opt_state_ = history.opt_state
        self.loss_ = self.loss_curve_[-1]

    def transform(self, X: Any) -> np.ndarray[Any, Any]:
        """The last hidden layer's activations (n_samples, hidden_layer_sizes[-1])."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        net: Network = self.network_
        hidden = (
            Network(layers=net.layers[:-1], loss="mse", input_shape=net.input_shape)
            if len(net.layers) > 1
            else None
        )
        if hidden is None:
            return np.asarray(X, dtype=net.dtype)
        return predict(hidden, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        if tags.transformer_tags is not None:
            # transform computes in the network's dtype, whatever the input's
            tags.transformer_tags.preserves_dtype = [str(self.dtype)]
        return tags

    def _expected_failed_checks(self) -> dict[str, str]:
        """See :func:`expected_failed_checks`."""
        return expected_failed_checks(self)


class FNNClassifier(ClassifierMixin, _FNNBase):  # type: ignore[misc]
    """A multilayer-perceptron classifier trained with fnn.

    Binary problems use one sigmoid output with binary cross-entropy, multi-class ones a
    softmax output with cross-entropy. Parameters are those of :class:`FNNRegressor`
    plus ``class_weight`` ("balanced", a dict, or None).

    Attributes (after fit): ``classes_``, ``network_`` (fnn.Network), ``opt_state_``,
    ``history_``, ``n_iter_``, ``loss_``, ``loss_curve_``, ``n_features_in_``.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        optimizer: OptimizerName = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        batch_size: int | Literal["auto"] = "auto",
        epochs: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        dropout: float = 0.0,
        alpha: float = 1e-4,
        class_weight: dict[Any, float] | Literal["balanced"] | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        dtype: Literal["float32", "float64"] = "float64",
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            optimizer=optimizer,
            learning_rate=learning_rate,
            momentum=momentum,
            batch_size=batch_size,
            epochs=epochs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            dropout=dropout,
            alpha=alpha,
            random_state=random_state,
            verbose=verbose,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _encode(self, y: Any) -> np.ndarray[Any, Any]:
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[idx], y):
            unseen = sorted(set(np.asarray(y).tolist()) - set(self.classes_.tolist()))
            raise ValueError(f"y contains labels not in classes_: {unseen}")
        encoded: np.ndarray[Any, Any] = idx.astype(np.int64)
        return encoded

    def _weights(self, y: Any, sample_weight: Any, X: Any, *, need_two_classes: bool) -> Any:
        sw = _check_weights(sample_weight, X)
        if self.class_weight == "balanced":
            # class frequencies counted with the sample weights, so that weighting a row
            # by 2 and repeating it give the same class weights
            # (classes whose rows all weigh 0 are left out: their weight would be 1/0)
            live = np.ones(len(y), dtype=bool) if sw is None else sw > 0
            per_row = np.zeros(len(y))
            if live.any():
                present = np.unique(y[live])
                cw = compute_class_weight(
                    "balanced",
                    classes=present,
                    y=y[live],
                    sample_weight=None if sw is None else sw[live],
                )
                per_row[live] = cw[np.searchsorted(present, y[live])]
            sw = per_row if sw is None else sw * per_row
        elif self.class_weight is not None:
            cw = compute_sample_weight(self.class_weight, y)
            sw = cw if sw is None else sw * cw
        if sw is not None and need_two_classes:
            live = np.unique(np.asarray(y)[sw > 0])
            if len(live) < 2:
                which = (
                    f"only for samples of class {live.tolist()[0]!r}"
                    if len(live)
                    else "for no sample"
                )
                raise ValueError(
                    f"the sample weights (sample_weight times class_weight) are positive "
                    f"{which}; a classifier needs samples of two classes"
                )
        return sw

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FNNClassifier:
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,)."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {len(self.classes_)} class"
            )
        sw = self._weights(y, sample_weight, X, need_two_classes=True)
        self._begin_classifier(X.shape[1])
        self._train(X, self._encode(y), sw, incremental=False)
        return self

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> FNNClassifier:
        """One more epoch on ``(X, y)``, keeping the optimizer state. The first call needs
        ``classes`` (all labels that will ever be seen)."""
        first = not hasattr(self, "network_")
        if first:
            self._check_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=first)
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError("classes must hold at least two labels")
            self._begin_classifier(X.shape[1])
        elif classes is not None and not np.array_equal(
            np.unique(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes {classes!r} differ from those of the first call {self.classes_!r}"
            )
        # one batch may well hold a single class: no two-class check here
        sw = self._weights(y, sample_weight, X, need_two_classes=False)
        self._train(X, self._encode(y), sw, incremental=True)
        return self

    def _begin_classifier(self, n_features: int) -> None:
        # two classes: one sigmoid unit; more: a softmax over the classes
        k = len(self.classes_)
        if k == 2:
            self._begin(n_features, 1, "sigmoid")
        else:
            self._begin(n_features, k, "softmax")

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        p = predict(self.network_, X)
        proba: np.ndarray[Any, Any] = np.hstack([1 - p, p]) if p.shape[1] == 1 else p
        return proba.astype(np.float64)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The most probable class of each sample (n_samples,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]  # type: ignore[no-any-return]


class FNNRegressor(RegressorMixin, _FNNBase):  # type: ignore[misc]
    """A multilayer-perceptron regressor trained with fnn (identity output, MSE).

    Args:
        hidden_layer_sizes: widths of the hidden layers.
        activation: hidden activation name ("relu", "tanh", "gelu", ...).
        optimizer: "adam", "adamw", "sgd" (with Nesterov ``momentum``), "rmsprop" or
            "adagrad"; learning_rate: its learning rate.
        batch_size: samples per step; "auto" is ``min(200, n_samples)``.
        epochs: maximum passes over the data.
        early_stopping: hold out ``validation_fraction`` and stop when its loss has not
            improved by ``tol`` for ``n_iter_no_change`` epochs (without it, the training
            loss is monitored the same way); the best epoch's network is kept.
        dropout: dropout rate after each hidden layer.
        alpha: L2 penalty on the weights.
        random_state: seeds initialisation, shuffling, splits and dropout.
        verbose: print one line per epoch.
        dtype: "float64" or "float32" parameters.

    Attributes (after fit): ``network_`` (fnn.Network), ``opt_state_``, ``history_``,
    ``n_iter_``, ``loss_``, ``loss_curve_``, ``n_features_in_``.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FNNRegressor:
        """Train a new network on ``X`` (n_samples, n_features) and ``y`` (n_samples,) or
        (n_samples, n_targets)."""
        self._check_params()
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            multi_output=True,
            y_numeric=True,
            reset=True,
        )
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        sw = _check_weights(sample_weight, X)
        self._begin(X.shape[1], y2.shape[1], "identity")
        self._train(X, y2, sw, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> FNNRegressor:
        """One more epoch on ``(X, y)``, keeping the optimizer state."""
        first = not hasattr(self, "network_")
        if first:
            self._check_params()
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            multi_output=True,
            y_numeric=True,
            reset=first,
        )
        y2 = y.reshape(len(y), -1)
        if first:
            self._y_1d = y.ndim == 1
            self._begin(X.shape[1], y2.shape[1], "identity")
        sw = _check_weights(sample_weight, X)
        self._train(X, y2, sw, incremental=True)
        return self

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Predictions (n_samples,) for one target, else (n_samples, n_targets)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        net: Network = self.network_
        if net.dtype != np.float64:
            # The float64 result is computed in float64 (from the float32 parameters), so a
            # row's prediction does not depend on the rows predicted with it: float32
            # products round differently by the number of rows (BLAS blocking), by an ulp
            # of the output, which scikit-learn's subset-invariance check (atol 1e-7) sees.
            net = tree.map(_to_float64, net)
        out = predict(net, X).astype(np.float64)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


_SAMPLE_WEIGHT_CHECK = "check_sample_weight_equivalence_on_dense_data"


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """The scikit-learn estimator checks that cannot pass under ``estimator``'s options,
    each with the reason; ``{}`` for the default options.

    Pass it to scikit-learn's checks (its mechanism since 1.6, which replaced the
    ``_xfail_checks`` tag; scikit-learn's own MLP is listed the same way in its test
    suite)::

        check_estimator(est, expected_failed_checks=expected_failed_checks(est))
        @parametrize_with_checks([...], expected_failed_checks=expected_failed_checks)

    Only the options that make a check impossible are listed: the sample-weight
    equivalence check (fitting with integer weights equals fitting with rows removed or
    repeated, to ``rtol=1e-7``) holds for full-batch training in float64 and for no
    minibatch, dropout, validation split or float32 run. scikit-learn's own MLP holds it
    under the same condition: its test suite runs that check on MLPClassifier and
    MLPRegressor only with full-batch solvers (its ``PER_ESTIMATOR_CHECK_PARAMS``) and
    declares nothing else for them. Everything else holds under every option: the
    validation loss of early stopping is weighted (class and sample weights), and a
    float32 regressor predicts in float64, so a row's prediction does not depend on the
    rows predicted with it.
    """
    if not isinstance(estimator, _FNNBase):
        return {}
    failed: dict[str, str] = {}
    sw_reasons = []
    if estimator.batch_size != "auto":
        sw_reasons.append(
            "with a fixed batch size, repeated rows and weighted rows fall into different "
            "minibatches (and, as in scikit-learn's MLP, the weighted loss is normalised "
            "within each minibatch)"
        )
        if isinstance(estimator, FNNClassifier):
            failed["check_class_weight_classifiers"] = (
                "the weighted loss is normalised within each minibatch (as scikit-learn's "
                "MLP does), so with small batches a class weight of 1000 against 1e-4 only "
                "reweights samples within a batch, not the batches against each other"
            )
    if estimator.dropout:
        sw_reasons.append("dropout draws a mask per row: a repeated row gets two masks")
    if estimator.early_stopping:
        sw_reasons.append(
            "the validation split holds out different rows when rows are repeated than "
            "when they are weighted"
        )
    if str(estimator.dtype) == "float32":
        sw_reasons.append(
            "in float32, a weighted sum and a sum over repeated rows round differently, "
            "and 100 epochs of training carry that to ~1e-7 in the predictions (the check "
            "compares with rtol=1e-7, below float32's resolution)"
        )
    if sw_reasons:
        failed[_SAMPLE_WEIGHT_CHECK] = "; ".join(sw_reasons)
    return failed
