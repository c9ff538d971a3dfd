"""Losses computed from logits, each paired with its output activation.

=====================  ===================  =====================================
loss                   output activation    PyTorch equivalent (reduction="mean")
=====================  ===================  =====================================
``MeanSquaredError``   identity             ``MSELoss``
``MeanAbsoluteError``  identity             ``L1Loss``
``Huber(delta)``       identity             ``HuberLoss(delta)``
``BinaryCrossEntropy`` sigmoid              ``BCEWithLogitsLoss``
``SoftmaxCrossEntropy`` softmax             ``CrossEntropyLoss`` (labels or probabilities)
=====================  ===================  =====================================

A network's output layer produces logits ``z`` (n, k); its loss applies the output
activation for predictions (:meth:`Loss.link`) and computes the value and ``dL/dz``
directly from ``z`` with log-sum-exp forms, so no value overflows and no NaN appears for
finite input:

- binary cross-entropy: ``max(z, 0) - z*y + log1p(exp(-|z|))``, gradient ``sigmoid(z) - y``;
- softmax cross-entropy: ``logsumexp(z) - sum(y * z)``, gradient ``softmax(z) - y``.

Reduction. Per-sample losses ``l_i`` are the mean over the k outputs (the sum over
classes for cross-entropy). ``"mean"`` is ``sum(w_i l_i) / sum(w_i)`` with sample weights
``w`` (all ones by default, giving PyTorch's mean over all elements), ``"sum"`` is
``sum(w_i l_i)``, ``"none"`` returns ``w_i l_i`` of shape (n,).
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, ClassVar, Final, Literal

import attrs
import numpy as np

from fnn._registry import Registry, lookup
from fnn._types import ArrayLike, FloatArray
from fnn._validation import (
    as_float,
    check_consistent_length,
    check_real,
    check_sample_weight,
    check_targets,
)
from fnn.activations import sigmoid, softmax

__all__ = [
    "LOSSES",
    "BinaryCrossEntropy",
    "Huber",
    "Loss",
    "LossName",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Reduction",
    "SoftmaxCrossEntropy",
    "binary_cross_entropy",
    "get",
    "huber",
    "mean_absolute_error",
    "mean_squared_error",
    "register",
    "softmax_cross_entropy",
]

Reduction = Literal["mean", "sum", "none"]
LossName = Literal[
    "mse", "mae", "huber", "binary_cross_entropy", "bce", "cross_entropy", "softmax_cross_entropy"
]
OutputName = Literal["identity", "sigmoid", "softmax"]


@attrs.frozen
class Loss:
    """Base class: a loss on logits paired with an output activation.

    A loss's math lives in one method, :meth:`fused`: per-sample losses (n,) and their
    gradients with respect to the logits (n, k), from logits (n, k) and targets
    prepared by :meth:`targets`. Everything else — :meth:`value`, :meth:`grad`,
    :meth:`value_and_grad` (what ``backward``, ``train_step`` and ``fit`` call), sample
    weights and reductions — is derived from it here, so a subclass that overrides
    ``fused`` changes the loss everywhere.

    A subclass may instead implement :meth:`per_sample` and :meth:`per_sample_grad`
    (the earlier protocol): ``fused`` is then made from them when the class is
    defined, so an inherited fused pass never shadows them. It may also override
    :meth:`link` (the output activation) and :meth:`targets` (validation). Register
    it with :func:`register` so checkpoints of networks that use it load.
    """

    name: ClassVar[str] = "loss"
    output: ClassVar[OutputName] = "identity"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "fused" in own:
            if "value" not in inspect.signature(own["fused"]).parameters:
                cls.fused = _accepting_value(own["fused"])  # type: ignore[method-assign]
            return
        if not ("per_sample" in own or "per_sample_grad" in own):
            return
        parent_fused = cls.__mro__[1].fused  # type: ignore[attr-defined]
        ps, pg = own.get("per_sample"), own.get("per_sample_grad")

        def fused(
            self: Loss, logits: FloatArray, y: FloatArray, *, value: bool = True
        ) -> tuple[FloatArray | None, FloatArray]:
            per = None
            if value:
                per = ps(self, logits, y) if ps is not None else parent_fused(self, logits, y)[0]
            g = pg(self, logits, y) if pg is not None else parent_fused(self, logits, y)[1]
            return per, g

        cls.fused = fused  # type: ignore[method-assign]

    def link(self, logits: FloatArray) -> FloatArray:
        """The output activation: predictions (n, k) from logits (n, k)."""
        return logits

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype[Any]) -> FloatArray:
        """Validate targets ``y`` for logits of shape (n, k) and return them as (n, k) of
        ``dtype``. Raises ValueError naming the expected and received shape."""
        a = check_targets(y)
        a = _match_shape(a, n, k)
        return a.astype(dtype, copy=False)

    def sequence_targets(
        self, y: Any, logits_shape: tuple[int, int, int], dtype: np.dtype[Any]
    ) -> np.ndarray[Any, Any]:
        """Validate targets ``y`` for per-position logits of shape ``logits_shape`` (n, T,
        k) and return them prepared for :meth:`value_and_grad`. Only losses that define
        a mean over positions take them (:class:`SoftmaxCrossEntropy`)."""
        raise ValueError(
            f"the {self.name!r} loss does not take per-position logits {logits_shape}; "
            "use softmax cross-entropy (output='softmax') with targets (n, T)"
        )

    def batch_weight(self, y: np.ndarray[Any, Any], sample_weight: FloatArray | None) -> float:
        """The denominator of the batch's mean loss for prepared targets ``y`` (n, ...):
        ``n``, or ``sum(sample_weight)``. Data-parallel training scales each shard's
        gradient by its share of the global batch's weight."""
        return float(len(y) if sample_weight is None else sample_weight.sum())

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        """Per-sample losses (n,) and their gradients ``d l_i / d z_i`` (n, k), from logits
        (n, k) and prepared targets (n, k): the one place of a loss's math. The gradient
        is a fresh array (callers scale it in place). With ``value=False`` only the
        gradient is needed (``fnn.backward``): the losses may be returned as None."""
        raise NotImplementedError(f"{type(self).__name__} must implement fused()")

    def per_sample(self, logits: FloatArray, y: FloatArray) -> FloatArray:
        """Per-sample losses (n,) from logits (n, k) and prepared targets (n, k)."""
        per = self.fused(logits, y)[0]
        assert per is not None
        return per

    def per_sample_grad(self, logits: FloatArray, y: FloatArray) -> FloatArray:
        """``d l_i / d z_i`` (n, k): the gradient of each sample's loss."""
        return self.fused(logits, y)[1]

    def value(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> float:
        """The mean (weighted) loss, a Python float. ``y`` must be prepared by :meth:`targets`."""
        return float(_reduce(self.per_sample(logits, y), sample_weight, "mean"))

    def grad(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> FloatArray:
        """``dL/dz`` (n, k) of the mean (weighted) loss."""
        _, g = self.fused(logits, y, value=False)
        return _scale_grad(g, logits, y, sample_weight)

    def value_and_grad(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> tuple[float, FloatArray]:
        """:meth:`value` and :meth:`grad` together, from one :meth:`fused` pass.

        The gradient is a fresh array of the logits' shape and dtype."""
        per, g = self.fused(logits, y)
        assert per is not None
        g = _scale_grad(g, logits, y, sample_weight)
        if sample_weight is None:
            return float(np.add.reduce(per)) / per.shape[0], g
        return float((per @ sample_weight) / sample_weight.sum()), g

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``, enough for :func:`get` to rebuild it."""
        return {"name": self.name, **attrs.asdict(self)}


def _accepting_value(fn: Any) -> Any:
    """Adapt ``fused(self, logits, y)`` to take (and ignore) ``value=``."""

    @functools.wraps(fn)
    def fused(self: Loss, logits: FloatArray, y: FloatArray, *, value: bool = True) -> Any:
        return fn(self, logits, y)

    return fused


def _scale_grad(
    g: FloatArray, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None
) -> FloatArray:
    """Per-sample gradients (n, k) to the gradient of the (weighted) mean loss."""
    if g is logits or g is y or not g.flags.writeable:
        g = np.array(g, copy=True)
    if sample_weight is None:
        g /= g.dtype.type(g.shape[0])  # g is a fresh array
        return g
    w = sample_weight / sample_weight.sum()
    g *= w[:, None].astype(g.dtype, copy=False)
    return g


def _match_shape(a: np.ndarray[Any, Any], n: int, k: int) -> np.ndarray[Any, Any]:
    if a.shape[0] != n:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n}, {a.shape[0]}]"
        )
    if a.ndim == 1 and k == 1:
        return a.reshape(n, 1)
    if a.shape == (n, k):
        return a
    raise ValueError(
        f"y has shape {a.shape}, but the network has {k} output(s): expected "
        + (f"({n},) or ({n}, 1)" if k == 1 else f"({n}, {k})")
    )


def _reduce(per_sample: FloatArray, w: FloatArray | None, reduction: Reduction) -> Any:
    if reduction == "none":
        return per_sample if w is None else per_sample * w
    if reduction == "sum":
        return per_sample.sum() if w is None else per_sample @ w
    if w is None:
        return per_sample.mean()
    return (per_sample @ w) / w.sum()


@attrs.frozen
class MeanSquaredError(Loss):
    """``mean((z - y)^2)`` with an identity output."""

    name: ClassVar[str] = "mse"

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        d = logits - y
        per = (d * d).mean(axis=1) if value else None
        d *= logits.dtype.type(2.0 / logits.shape[1])  # d is a fresh array
        return per, d


@attrs.frozen
class MeanAbsoluteError(Loss):
    """``mean(|z - y|)`` with an identity output; gradient ``sign(z - y)`` (0 at 0)."""

    name: ClassVar[str] = "mae"

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        d = logits - y
        per = np.abs(d).mean(axis=1) if value else None
        return per, np.sign(d) * logits.dtype.type(1.0 / logits.shape[1])


def _check_delta(_inst: object, _attr: object, value: float) -> None:
    if not (math.isfinite(check_real(value, "delta")) and value > 0):
        raise ValueError(f"delta must be a finite number > 0, got {value!r}")


@attrs.frozen
class Huber(Loss):
    """Huber loss, identity output: ``0.5 d^2`` if ``|d| < delta`` else
    ``delta (|d| - 0.5 delta)``, with ``d = z - y``; gradient ``clip(d, -delta, delta)``."""

    name: ClassVar[str] = "huber"
    delta: float = attrs.field(default=1.0, converter=as_float, validator=_check_delta)

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        r = logits - y
        per = None
        if value:
            d = np.abs(r)
            q = np.minimum(d, self.delta)
            # 0.5 q^2 + delta (d - q) equals both branches of the definition.
            per = (0.5 * q * q + self.delta * (d - q)).mean(axis=1)
        g = np.clip(r, -self.delta, self.delta) * logits.dtype.type(1.0 / logits.shape[1])
        return per, g


@attrs.frozen
class BinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits with a sigmoid output (one or more independent
    outputs). Targets are probabilities in [0, 1], usually the labels 0 and 1."""

    name: ClassVar[str] = "binary_cross_entropy"
    output: ClassVar[OutputName] = "sigmoid"

    def link(self, logits: FloatArray) -> FloatArray:
        return sigmoid(logits)

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype[Any]) -> FloatArray:
        a = super().targets(y, n, k, dtype)
        if type(y) is np.ndarray and y.dtype.kind == "i" and not np.count_nonzero(y & -2):
            # integer labels are 0 or 1 exactly when no bit but the lowest is set (-2 is
            # ...11110 in two's complement): one pass instead of a min and a max
            return a
        if a.min() < 0 or a.max() > 1:
            v = a[(a < 0) | (a > 1)].flat[0]
            hint = ""
            if float(v).is_integer() and v > 1:
                hint = (
                    "; for class labels 0..k-1 use a softmax output with k units "
                    "(fnn.mlp([..., k], output='softmax'))"
                )
            raise ValueError(f"label {v:g} out of range [0, 1] for binary cross-entropy{hint}")
        return a

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        z = logits
        per = None
        if value:
            # max(z, 0) - z y + log1p(exp(-|z|)); NumPy's logaddexp(0, z) would take one
            # pass for the first and last terms, but it flags a NaN as an invalid value
            # (a warning, an error under np.seterr), which guarding costs what it saves
            terms = np.log1p(np.exp(-np.abs(z)))
            terms += np.maximum(z, 0)
            terms -= z * y
            per = terms[:, 0] if z.shape[1] == 1 else terms.mean(axis=1)
        # sigmoid(z) - y with sigmoid(z) = (1 + tanh(z / 2)) / 2: no branch on the sign
        # of z, stable for any z, exact to rounding in absolute terms (all a gradient
        # needs; fnn.activations.sigmoid keeps the relative accuracy of tiny outputs)
        half = z.dtype.type(0.5)
        g = np.multiply(z, half)
        np.tanh(g, out=g)
        g *= half
        g += half
        g -= y
        if z.shape[1] != 1:
            g *= z.dtype.type(1.0 / z.shape[1])
        return per, g


@attrs.frozen
class SoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy on logits (n, k). Targets are integer labels (n,) in
    [0, k) or class probabilities (n, k) such as one-hot rows.

    Per-position logits (n, T, k) take integer targets (n, T) in [0, k); a target equal
    to ``ignore_index`` (default -100, as PyTorch) marks a position that is not counted
    (only in (n, T) targets: a negative label in (n,) targets stays an error). The loss
    is the mean over counted positions, weighted by their sample's weight:

        L = sum_i w_i sum_t m_it l_it / sum_i w_i sum_t m_it

    with ``l_it = logsumexp(z_it) - z_it[y_it]``, ``m_it`` 1 for a counted position and
    0 for an ignored one, ``w_i`` the sample weights (all ones by default: PyTorch's
    ``CrossEntropyLoss(ignore_index=...)`` mean). A batch with no counted position (of
    positive weight) is a ValueError.
    """

    name: ClassVar[str] = "cross_entropy"
    output: ClassVar[OutputName] = "softmax"

    ignore_index: int = attrs.field(default=-100, validator=attrs.validators.instance_of(int))

    def sequence_targets(
        self, y: Any, logits_shape: tuple[int, int, int], dtype: np.dtype[Any]
    ) -> np.ndarray[Any, Any]:
        """Integer targets (n, T) for logits (n, T, k), each in [0, k) or equal to
        ``ignore_index``; returned as an int64 array (n, T)."""
        n, T, k = logits_shape
        a = check_targets(y)
        if a.shape != (n, T):
            raise ValueError(
                f"y has shape {a.shape}, but the logits have shape {logits_shape}: expected "
                f"integer targets of shape ({n}, {T})"
            )
        if a.dtype.kind not in "iu":
            raise ValueError(f"per-position targets y must be integers, got dtype {a.dtype}")
        bad = ((a < 0) | (a >= k)) & (a != self.ignore_index)
        if bad.any():
            i, t = (int(j) for j in np.argwhere(bad)[0])
            raise ValueError(
                f"target {a[i, t]} at y[{i}, {t}] is outside [0, {k}) and is not "
                f"ignore_index={self.ignore_index}"
            )
        if not (a != self.ignore_index).any():
            raise ValueError(
                f"every target in y equals ignore_index={self.ignore_index}: no position to "
                "count in this batch"
            )
        return a.astype(np.int64, copy=False)

    def batch_weight(self, y: np.ndarray[Any, Any], sample_weight: FloatArray | None) -> float:
        """For (n, T) targets: the counted positions, each weighted by its sample."""
        if y.ndim != 2 or y.dtype.kind not in "iu":
            return super().batch_weight(y, sample_weight)
        counts = np.add.reduce(y != self.ignore_index, axis=1)
        return float(counts.sum() if sample_weight is None else counts @ sample_weight)

    def _positions(
        self, logits: FloatArray, y: np.ndarray[Any, Any], sample_weight: FloatArray | None
    ) -> tuple[float, FloatArray, float]:
        """For logits (n, T, k) and targets (n, T): the weighted sum of the counted
        positions' losses, the gradient of that sum (n, T, k) and the denominator."""
        counted = y != self.ignore_index
        labels = np.where(counted, y, 0)
        s = logits - logits.max(axis=2, keepdims=True)
        ex = np.exp(s)
        sums = np.add.reduce(ex, axis=2, keepdims=True)
        picked = np.take_along_axis(s, labels[..., None], axis=2)[..., 0]
        per = np.log(sums[..., 0]) - picked  # (n, T)
        m = counted.astype(logits.dtype)
        if sample_weight is not None:
            m *= sample_weight[:, None]
        denom = float(np.add.reduce(m, axis=None))
        if not denom > 0:
            raise ValueError(
                "no counted position of positive weight in this batch (every target is "
                f"ignore_index={self.ignore_index} or has sample weight 0)"
            )
        g = ex
        g /= sums
        np.put_along_axis(
            g, labels[..., None], np.take_along_axis(g, labels[..., None], axis=2) - 1, axis=2
        )
        g *= m[..., None]
        return float(np.add.reduce(per * m, axis=None)), g, denom

    def value(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> float:
        if logits.ndim != 3:
            return super().value(logits, y, sample_weight)
        total, _, denom = self._positions(logits, y, sample_weight)
        return total / denom

    def grad(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> FloatArray:
        if logits.ndim != 3:
            return super().grad(logits, y, sample_weight)
        _, g, denom = self._positions(logits, y, sample_weight)
        g /= g.dtype.type(denom)
        return g

    def value_and_grad(
        self, logits: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
    ) -> tuple[float, FloatArray]:
        if logits.ndim != 3:
            return super().value_and_grad(logits, y, sample_weight)
        total, g, denom = self._positions(logits, y, sample_weight)
        g /= g.dtype.type(denom)
        return total / denom, g

    def link(self, logits: FloatArray) -> FloatArray:
        return softmax(logits)

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype[Any]) -> FloatArray:
        a = check_targets(y)
        if a.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{n}, {a.shape[0]}]"
            )
        if a.ndim == 1:
            labels = _check_labels(a, k)
            onehot = np.zeros((n, k), dtype=dtype)
            onehot[np.arange(n), labels] = 1
            return onehot
        if a.shape != (n, k):
            raise ValueError(
                f"y has shape {a.shape}, but the network has {k} classes: expected integer "
                f"labels of shape ({n},) or class probabilities of shape ({n}, {k})"
            )
        if ((a < 0) | (a > 1)).any():
            raise ValueError("class probabilities in y must lie in [0, 1]")
        return a.astype(dtype, copy=False)

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        # -sum(y log_softmax(z)) = sum(y) logsumexp(z) - y.z; d/dz = sum(y) softmax(z) - y.
        # one exp(z - max) serves both log-softmax and softmax
        s = logits - logits.max(axis=1, keepdims=True)
        ex = np.exp(s)
        sums = np.add.reduce(ex, axis=1, keepdims=True)
        per = -np.add.reduce(y * (s - np.log(sums)), axis=1) if value else None
        g = ex / sums
        g *= np.add.reduce(y, axis=1, keepdims=True)
        g -= y
        return per, g


def _check_labels(a: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
    """Integer class labels in [0, k) from ``a`` (n,); floats must be whole numbers."""
    if a.dtype.kind == "f":
        whole = np.floor(a) == a
        if not whole.all():
            v = a[~whole][0]
            raise ValueError(f"label {v:g} is not an integer class label in [0, {k})")
        a = a.astype(np.int64)
    elif a.dtype.kind == "b":
        a = a.astype(np.int64)
    bad = (a < 0) | (a >= k)
    if bad.any():
        v = a[bad][0]
        raise ValueError(f"label {v} out of range [0, {k})")
    return a


LOSSES: Final[Registry[type[Loss]]] = Registry("loss")
"""Loss kinds by name; :func:`register` adds one, :func:`get` looks names up."""


def register(cls: type[Loss], name: str | None = None) -> type[Loss]:
    """Register a :class:`Loss` subclass under ``name`` (default ``cls.name``), so ``get``
    and checkpoints of networks using it find it. Usable as a class decorator; give a
    subclass its own ``name`` ClassVar first."""
    LOSSES.register(cls.name if name is None else name, cls)
    return cls


for _cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossEntropy, SoftmaxCrossEntropy):
    register(_cls)
register(BinaryCrossEntropy, "bce")
register(SoftmaxCrossEntropy, "softmax_cross_entropy")

DEFAULT_FOR_OUTPUT: Final[dict[str, type[Loss]]] = {
    "identity": MeanSquaredError,
    "sigmoid": BinaryCrossEntropy,
    "softmax": SoftmaxCrossEntropy,
}


def get(loss: Loss | str | dict[str, Any]) -> Loss:
    """Look up a loss by name or config dict; values are returned unchanged."""
    return lookup(loss, kind="loss", base=Loss, table=LOSSES.as_table())


# --- functional forms --------------------------------------------------------------


def _apply(
    loss: Loss,
    pred: ArrayLike,
    target: ArrayLike,
    sample_weight: ArrayLike | None,
    reduction: Reduction,
    name: str,
) -> Any:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    z = check_targets(pred, name=name)
    if z.dtype.kind != "f" or z.dtype == np.float16:
        z = z.astype(np.float64)
    if z.ndim == 1:
        z = z.reshape(-1, 1)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n,) or (n, k) with n >= 1, got {z.shape}")
    t = np.asarray(target) if not isinstance(target, np.ndarray) else target
    check_consistent_length(**{name: z, "target": t})
    y = loss.targets(target, z.shape[0], z.shape[1], z.dtype)
    w = check_sample_weight(sample_weight, z.shape[0], z.dtype)
    out = _reduce(loss.per_sample(z, y), w, reduction)
    return out if reduction == "none" else float(out)


def mean_squared_error(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Mean squared error of ``pred`` (n,) or (n, k) against ``target`` of the same shape.

    Returns a float, or an (n,) array with ``reduction="none"``. Equals
    ``torch.nn.MSELoss()`` for the mean.
    """
    return _apply(MeanSquaredError(), pred, target, sample_weight, reduction, "pred")


def mean_absolute_error(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Mean absolute error; equals ``torch.nn.L1Loss()`` for the mean."""
    return _apply(MeanAbsoluteError(), pred, target, sample_weight, reduction, "pred")


def huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Huber loss; equals ``torch.nn.HuberLoss(delta=delta)`` for the mean."""
    return _apply(Huber(delta), pred, target, sample_weight, reduction, "pred")


def binary_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Binary cross-entropy from ``logits`` (n,) or (n, k) and targets in [0, 1];
    equals ``torch.nn.BCEWithLogitsLoss()`` for the mean."""
    return _apply(BinaryCrossEntropy(), logits, target, sample_weight, reduction, "logits")


def softmax_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Softmax cross-entropy from ``logits`` (n, k) and integer labels (n,) in [0, k) or
    probabilities (n, k); equals ``torch.nn.CrossEntropyLoss()`` for the mean."""
    return _apply(SoftmaxCrossEntropy(), logits, target, sample_weight, reduction, "logits")
