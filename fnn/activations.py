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

import functools
import inspect
import math
from typing import Any, ClassVar, Final, Literal

import attrs
import numpy as np

from fnn import threads
from fnn._registry import Registry, lookup
from fnn._types import FloatArray
from fnn._validation import as_float, check_real

__all__ = [
    "ACTIVATIONS",
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
    "register",
    "sigmoid",
    "softmax",
]

ActivationName = Literal[
    "identity", "linear", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"
]


def sigmoid(z: FloatArray) -> FloatArray:
    """Stable logistic function ``1 / (1 + exp(-z))``, elementwise, any shape.

    Computed as ``exp(-log(1 + exp(-z)))`` with NumPy's stable ``logaddexp``: no
    overflow for any finite ``z``, full relative accuracy for tiny outputs (sigmoid(-40)
    = 4.2e-18, not 0), and four array passes.
    """
    t = np.logaddexp(0, -z)
    np.negative(t, out=t)
    result: FloatArray = np.exp(t, out=t)
    return result


def log_sigmoid(z: FloatArray) -> FloatArray:
    """``log(sigmoid(z)) = -(max(-z, 0) + log1p(exp(-|z|)))``, stable for any finite z."""
    return -(np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z))))


def log_softmax(z: FloatArray) -> FloatArray:
    """Row-wise ``z - logsumexp(z)`` for ``z`` of shape (n, k); subtracts the row max."""
    s = z - z.max(axis=1, keepdims=True)
    result: FloatArray = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return result


def softmax(z: FloatArray) -> FloatArray:
    """Softmax over the last axis of ``z`` (n, k) or per position (n, T, k); each row
    sums to 1. Subtracts the row max first."""
    s = np.exp(z - z.max(axis=-1, keepdims=True))
    result: FloatArray = s / s.sum(axis=-1, keepdims=True)
    return result


def _takes_out(fn: Any) -> bool:
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return False


def _give(r: Any, out: FloatArray | None) -> FloatArray:
    """``r``, or ``r`` copied into ``out`` and ``out`` when ``out`` is given."""
    if out is None:
        result: FloatArray = r
        return result
    np.copyto(out, r)
    return out


def _with_out_call(fn: Any) -> Any:
    """Adapt ``__call__(self, z)`` (the earlier protocol) to ``__call__(self, z, out=None)``."""

    @functools.wraps(fn)
    def call(self: Any, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return _give(fn(self, z), out)

    return call


def _with_out_vjp(fn: Any) -> Any:
    """Adapt ``vjp(self, z, a, da)`` (the earlier protocol) to take ``out=None``."""

    @functools.wraps(fn)
    def vjp(
        self: Any, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return _give(fn(self, z, a, da), out)

    return vjp


@attrs.frozen
class Activation:
    """Base class: an elementwise function and its vector-Jacobian product.

    Subclasses implement ``__call__(z, out=None)`` and ``vjp(z, a, da, out=None)``: when
    ``out`` is given (an array of ``z``'s shape and dtype) the result is written there and
    returned, else a new array is returned (``vjp`` may return ``da`` itself when the
    derivative is 1). Neither writes into its other arguments. Subclasses written to the
    earlier protocol (no ``out``) are adapted when the class is defined.

    ``in_place`` says that ``vjp`` gives the right result when ``z`` and ``a`` are the
    same array (the output written over the pre-activation), as for functions whose
    derivative can be read off the output. A subclass that overrides ``__call__`` or
    ``vjp`` without setting it is taken not to allow that.
    """

    name: ClassVar[str] = "activation"
    in_place: ClassVar[bool] = False
    linear: ClassVar[bool] = False
    """Whether ``vjp`` returns ``da`` itself (the derivative is 1): callers then need no
    buffer for it."""
    identity: ClassVar[bool] = False
    """Whether ``f(z) = z``: callers may use ``z`` as the output without the call."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if ("__call__" in own or "vjp" in own) and "in_place" not in own:
            cls.in_place = False
        if "vjp" in own and "linear" not in own:
            cls.linear = False
        if "__call__" in own and "identity" not in own:
            cls.identity = False
        if "__call__" in own and not _takes_out(own["__call__"]):
            cls.__call__ = _with_out_call(own["__call__"])  # type: ignore[method-assign]
        if "vjp" in own and not _takes_out(own["vjp"]):
            cls.vjp = _with_out_vjp(own["vjp"])  # type: ignore[method-assign]

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        """``f(z)``, same shape and dtype as ``z`` (written into ``out`` if given)."""
        raise NotImplementedError

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        """``da * f'(z)`` given the pre-activation ``z``, the output ``a = f(z)`` and the
        upstream gradient ``da`` (all the same shape); written into ``out`` if given."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``, enough for :func:`get` to rebuild it."""
        return {"name": self.name, **attrs.asdict(self)}


def _into(out: FloatArray | None, like: FloatArray) -> FloatArray:
    return np.empty_like(like) if out is None else out


@attrs.frozen
class Identity(Activation):
    """``f(z) = z``."""

    name: ClassVar[str] = "identity"
    in_place: ClassVar[bool] = True
    linear: ClassVar[bool] = True
    identity: ClassVar[bool] = True

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        if out is None or out is z:
            return z
        np.copyto(out, z)
        return out

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return da


_ZERO_ROWS: dict[tuple[int, np.dtype[Any]], FloatArray] = {}
_ZERO: Final[dict[str, Any]] = {"f": np.float32(0), "d": np.float64(0), "e": np.float16(0)}


def _zero_row(z: FloatArray) -> Any:
    """A read-only row of zeros as wide as ``z``'s last axis (of 64 or more): NumPy 2.4's
    ``maximum(z, row)`` runs 2-3x faster than ``maximum(z, 0)`` on wide arrays."""
    key = (z.shape[-1], z.dtype)
    row = _ZERO_ROWS.get(key)
    if row is None:
        row = np.zeros(z.shape[-1], z.dtype)
        row.flags.writeable = False
        if len(_ZERO_ROWS) < 256:
            _ZERO_ROWS[key] = row
    return row


_SIGN_BELOW = 2048
"""ReLU's vjp reads the derivative as sign(a) up to this many elements (measured: 2x
faster at 512, even at 4096, slower above)."""


@attrs.frozen
class ReLU(Activation):
    """``f(z) = max(z, 0)``; the derivative at 0 is taken as 0."""

    name: ClassVar[str] = "relu"
    in_place: ClassVar[bool] = True
    _nonnegative: ClassVar[bool] = True
    """Whether ``__call__`` is ReLU's own, whose outputs are never negative."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" in vars(cls):
            cls._nonnegative = False

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        zero = _zero_row(z) if z.ndim and z.shape[-1] >= 64 else _ZERO.get(z.dtype.char, 0)
        if z.ndim == 0 or z.nbytes < 2 * threads.GRAIN_BYTES:
            r: FloatArray = np.maximum(z, zero, out=out)
            return r
        # large arrays: row ranges on fnn's threads (elementwise, so any split is exact)
        res: FloatArray = np.empty_like(z) if out is None else out

        def rows(lo: int, hi: int) -> None:
            np.maximum(z[lo:hi], zero, out=res[lo:hi])

        threads.parallel_rows(len(z), z.nbytes, rows)
        return res

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        # f'(z) = [z > 0] = [a > 0]. On small arrays, where call overhead dominates, it is
        # read as sign(a), which is [a > 0] for the outputs of max(z, 0) >= 0: two
        # same-dtype passes cost half of the bool mask's two (NumPy casts the mask in the
        # product). On large ones the mask is faster. (A NaN in a gives NaN here, 0 with
        # the mask; the upstream gradient of that row is NaN either way.)
        if a.size <= _SIGN_BELOW and self._nonnegative and a.dtype == da.dtype:
            r: FloatArray = np.multiply(da, np.sign(a), out=out)
            return r
        if a.ndim == 0 or a.nbytes < 2 * threads.GRAIN_BYTES or a.shape != da.shape:
            return np.multiply(da, a > 0, out=out)
        res: FloatArray = np.empty_like(da) if out is None else out

        def rows(lo: int, hi: int) -> None:
            np.multiply(da[lo:hi], a[lo:hi] > 0, out=res[lo:hi])

        threads.parallel_rows(len(a), a.nbytes, rows)
        return res


def _check_finite_nonneg(name: str) -> Any:
    def check(_inst: object, _attr: object, value: float) -> None:
        if not (math.isfinite(check_real(value, name)) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    return check


@attrs.frozen
class LeakyReLU(Activation):
    """``f(z) = z`` for ``z > 0`` else ``negative_slope * z``."""

    name: ClassVar[str] = "leaky_relu"
    in_place: ClassVar[bool] = True
    negative_slope: float = attrs.field(
        default=0.01,
        converter=as_float,
        validator=_check_finite_nonneg("negative_slope"),
    )

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return _give(np.where(z > 0, z, z * self.negative_slope), out)

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        # z > 0 exactly where a > 0 (negative_slope >= 0)
        return _give(np.where(a > 0, da, da * self.negative_slope), out)


@attrs.frozen
class ELU(Activation):
    """``f(z) = z`` for ``z > 0`` else ``alpha * (exp(z) - 1)``."""

    name: ClassVar[str] = "elu"
    in_place: ClassVar[bool] = True
    alpha: float = attrs.field(
        default=1.0, converter=as_float, validator=_check_finite_nonneg("alpha")
    )

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        # expm1 of min(z, 0): the unused branch cannot overflow for large positive z.
        r = np.where(z > 0, z, self.alpha * np.expm1(np.minimum(z, 0)))
        return _give(r, out)

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        # f'(z) = alpha * exp(z) = a + alpha for z <= 0; z > 0 exactly where a > 0
        return _give(np.where(a > 0, da, da * (a + self.alpha)), out)


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
        """``t = tanh(c (zc + 0.044715 zc^3))`` and ``zc``, in two temporaries of z's dtype
        (each operation in place: the pass count, not the flops, sets this cost)."""
        zc = np.clip(z, -10, 10)
        # zc * zc * zc, not zc**3: NumPy's float power is ~100x slower than two products
        t = np.multiply(zc, zc)
        t *= zc
        t *= 0.044715
        t += zc
        t *= _GELU_C
        np.tanh(t, out=t)
        return t, zc

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        t, _ = self._t(z)
        t += 1  # 1 + t, then 0.5 z (1 + t)
        r: FloatArray = np.multiply(z, t, out=_into(out, z))
        r *= 0.5
        return r

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        t, zc = self._t(z)
        # d/dz: 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3 * 0.044715 z^2); the second term is
        # exactly 0 where |z| > 10 (t = ±1), so using zc there is harmless.
        u = np.multiply(t, t)
        np.subtract(1, u, out=u)  # 1 - t^2
        u *= zc
        zc *= zc  # zc now holds zc^2
        zc *= 0.134145
        zc += 1
        u *= zc
        u *= 0.5 * _GELU_C
        t += 1
        t *= 0.5
        t += u
        return np.multiply(da, t, out=_into(out, da))


@attrs.frozen
class Sigmoid(Activation):
    """``f(z) = 1 / (1 + exp(-z))``, computed stably (see :func:`sigmoid`)."""

    name: ClassVar[str] = "sigmoid"
    in_place: ClassVar[bool] = True

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return _give(sigmoid(z), out)

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return np.multiply(da, a * (1 - a), out=_into(out, da))


@attrs.frozen
class Tanh(Activation):
    """``f(z) = tanh(z)``."""

    name: ClassVar[str] = "tanh"
    in_place: ClassVar[bool] = True

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return np.tanh(z, out=_into(out, z))

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return np.multiply(da, 1 - a * a, out=_into(out, da))


@attrs.frozen
class Softplus(Activation):
    """``f(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))`` (never overflows)."""

    name: ClassVar[str] = "softplus"

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return np.add(np.maximum(z, 0), np.log1p(np.exp(-np.abs(z))), out=_into(out, z))

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return np.multiply(da, sigmoid(z), out=_into(out, da))


ACTIVATIONS: Final[Registry[type[Activation]]] = Registry("activation")
"""Activation kinds by name; :func:`register` adds one, :func:`get` looks names up."""


def register(cls: type[Activation], name: str | None = None) -> type[Activation]:
    """Register an :class:`Activation` subclass under ``name`` (default ``cls.name``), so
    ``get`` and checkpoints find it. Usable as a class decorator."""
    ACTIVATIONS.register(cls.name if name is None else name, cls)
    return cls


for _cls in (Identity, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus):
    register(_cls)
register(Identity, "linear")


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
    return lookup(activation, kind="activation", base=Activation, table=ACTIVATIONS.as_table())
