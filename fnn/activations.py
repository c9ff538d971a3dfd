"""Hidden-layer activations as typed values.

An :class:`Activation` maps pre-activations ``z`` to outputs ``a = f(z)`` and maps an
upstream gradient ``da`` back to ``dz = da * f'(z)`` (:meth:`Activation.vjp`). Each is a
frozen attrs class, so it is a static part of a network and can be saved by name.

Strings are accepted only at the public boundary (``fnn.mlp(hidden="relu")``) and looked
up once by :func:`get`. Output activations (sigmoid, softmax, identity) are paired with
their loss in :mod:`fnn.losses`; sigmoid and identity may also be used as hidden
activations, softmax only as an output.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final, Literal

import attrs
import numpy as np

from fnn._registry import lookup
from fnn._types import FloatArray

__all__ = [
    "ELU",
    "GELU",
    "Activation",
    "ActivationName",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "get",
    "log_sigmoid",
    "log_softmax",
    "sigmoid",
    "softmax",
]

ActivationName = Literal[
    "identity", "linear", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"
]


def sigmoid(z: FloatArray) -> FloatArray:
    """Stable logistic function ``1 / (1 + exp(-z))``, elementwise, any shape.

    With ``e = exp(-|z|)`` (never overflows): ``1/(1+e)`` where ``z >= 0`` and
    ``e/(1+e)`` elsewhere.
    """
    e = np.exp(-np.abs(z))
    r = 1.0 / (1.0 + e)
    return np.where(z >= 0, r, e * r)


def log_sigmoid(z: FloatArray) -> FloatArray:
    """``log(sigmoid(z)) = -(max(-z, 0) + log1p(exp(-|z|)))``, stable for any finite z."""
    return -(np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z))))


def log_softmax(z: FloatArray) -> FloatArray:
    """Row-wise ``z - logsumexp(z)`` for ``z`` of shape (n, k); subtracts the row max."""
    s = z - z.max(axis=1, keepdims=True)
    result: FloatArray = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return result


def softmax(z: FloatArray) -> FloatArray:
    """Row-wise softmax of ``z`` (n, k); rows sum to 1. Subtracts the row max first."""
    s = np.exp(z - z.max(axis=1, keepdims=True))
    result: FloatArray = s / s.sum(axis=1, keepdims=True)
    return result


@attrs.frozen
class Activation:
    """Base class: an elementwise function and its vector-Jacobian product."""

    name: ClassVar[str] = "activation"

    def __call__(self, z: FloatArray) -> FloatArray:
        """``f(z)``, same shape and dtype as ``z``."""
        raise NotImplementedError

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        """``da * f'(z)`` given the pre-activation ``z``, the output ``a = f(z)`` and the
        upstream gradient ``da`` (all the same shape)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``, enough for :func:`get` to rebuild it."""
        return {"name": self.name, **attrs.asdict(self)}


@attrs.frozen
class Identity(Activation):
    """``f(z) = z``."""

    name: ClassVar[str] = "identity"

    def __call__(self, z: FloatArray) -> FloatArray:
        return z

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return da


@attrs.frozen
class ReLU(Activation):
    """``f(z) = max(z, 0)``; the derivative at 0 is taken as 0."""

    name: ClassVar[str] = "relu"

    def __call__(self, z: FloatArray) -> FloatArray:
        return np.maximum(z, 0)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return da * (z > 0)


def _check_finite_nonneg(name: str) -> Any:
    def check(_inst: object, _attr: object, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    return check


@attrs.frozen
class LeakyReLU(Activation):
    """``f(z) = z`` for ``z > 0`` else ``negative_slope * z``."""

    name: ClassVar[str] = "leaky_relu"
    negative_slope: float = attrs.field(
        default=0.01, converter=float, validator=_check_finite_nonneg("negative_slope")
    )

    def __call__(self, z: FloatArray) -> FloatArray:
        return np.where(z > 0, z, z * self.negative_slope)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return np.where(z > 0, da, da * self.negative_slope)


@attrs.frozen
class ELU(Activation):
    """``f(z) = z`` for ``z > 0`` else ``alpha * (exp(z) - 1)``."""

    name: ClassVar[str] = "elu"
    alpha: float = attrs.field(
        default=1.0, converter=float, validator=_check_finite_nonneg("alpha")
    )

    def __call__(self, z: FloatArray) -> FloatArray:
        # expm1 of min(z, 0): the unused branch cannot overflow for large positive z.
        return np.where(z > 0, z, self.alpha * np.expm1(np.minimum(z, 0)))

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        # f'(z) = alpha * exp(z) = a + alpha for z <= 0
        return np.where(z > 0, da, da * (a + self.alpha))


_GELU_C: Final = math.sqrt(2.0 / math.pi)


@attrs.frozen
class GELU(Activation):
    """Gaussian error linear unit, tanh form (PyTorch's ``GELU(approximate="tanh")``):

    ``f(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``.

    The cubic is evaluated on ``z`` clipped to [-10, 10], where tanh is already ±1 in
    float64, so huge inputs cannot overflow and the result is unchanged.
    """

    name: ClassVar[str] = "gelu"

    def _t(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        zc = np.clip(z, -10, 10)
        return np.tanh(_GELU_C * (zc + 0.044715 * zc**3)), zc

    def __call__(self, z: FloatArray) -> FloatArray:
        t, _ = self._t(z)
        return 0.5 * z * (1 + t)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        t, zc = self._t(z)
        # d/dz: 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3 * 0.044715 z^2); the second term is
        # exactly 0 where |z| > 10 (t = ±1), so using zc there is harmless.
        return da * (0.5 * (1 + t) + 0.5 * zc * (1 - t * t) * _GELU_C * (1 + 0.134145 * zc * zc))


@attrs.frozen
class Sigmoid(Activation):
    """``f(z) = 1 / (1 + exp(-z))``, computed stably (see :func:`sigmoid`)."""

    name: ClassVar[str] = "sigmoid"

    def __call__(self, z: FloatArray) -> FloatArray:
        return sigmoid(z)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return da * a * (1 - a)


@attrs.frozen
class Tanh(Activation):
    """``f(z) = tanh(z)``."""

    name: ClassVar[str] = "tanh"

    def __call__(self, z: FloatArray) -> FloatArray:
        return np.tanh(z)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return da * (1 - a * a)


@attrs.frozen
class Softplus(Activation):
    """``f(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))`` (never overflows)."""

    name: ClassVar[str] = "softplus"

    def __call__(self, z: FloatArray) -> FloatArray:
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:
        return da * sigmoid(z)


_BY_NAME: Final[dict[str, type[Activation]]] = {
    "identity": Identity,
    "linear": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "gelu": GELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softplus": Softplus,
}


def get(activation: Activation | str | dict[str, Any]) -> Activation:
    """Look up an activation by name (or by a :meth:`Activation.config` dict).

    An :class:`Activation` value is returned unchanged. Raises ValueError for an unknown
    name ("softmax" is an output, chosen with the loss) and TypeError for other kinds.
    """
    if activation == "softmax":
        raise ValueError(
            "softmax is an output activation: use output='softmax' (paired with "
            "softmax cross-entropy), not as a hidden activation"
        )
    return lookup(activation, kind="activation", base=Activation, table=_BY_NAME)
