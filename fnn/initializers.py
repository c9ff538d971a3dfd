"""Weight initialisers as typed values.

An :class:`Initializer` draws a ``(n_in, n_out)`` weight matrix from an explicit
``np.random.Generator``. Fan-in scaled schemes keep the variance of activations roughly
constant through depth:

- He (Kaiming) for ReLU-like units: ``Var(W) = 2 / n_in``.
- Glorot (Xavier) for tanh/sigmoid: ``Var(W) = 2 / (n_in + n_out)``.
- LeCun: ``Var(W) = 1 / n_in``.

Uniform variants use ``U(-l, l)`` with ``l = sqrt(3 Var)``.

References: He et al. 2015, "Delving Deep into Rectifiers"; Glorot & Bengio 2010,
"Understanding the difficulty of training deep feedforward neural networks".
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final, Literal

import attrs
import numpy as np

from fnn._registry import lookup
from fnn._types import FloatArray
from fnn._validation import as_float, check_real

__all__ = [
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "InitializerName",
    "LecunNormal",
    "Normal",
    "Zeros",
    "for_activation",
    "get",
]

InitializerName = Literal[
    "he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "normal", "zeros"
]


@attrs.frozen
class Initializer:
    """Base class: draws a weight matrix of a given shape and dtype."""

    name: ClassVar[str] = "initializer"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        """A new ``shape = (n_in, n_out)`` array of ``dtype``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``, enough for :func:`get` to rebuild it."""
        return {"name": self.name, **attrs.asdict(self)}


def _normal(rng: np.random.Generator, shape: tuple[int, int], std: float, dtype: Any) -> FloatArray:
    return (rng.standard_normal(shape) * std).astype(dtype, copy=False)


def _uniform(
    rng: np.random.Generator, shape: tuple[int, int], var: float, dtype: Any
) -> FloatArray:
    lim = math.sqrt(3.0 * var)
    return rng.uniform(-lim, lim, shape).astype(dtype, copy=False)


@attrs.frozen
class HeNormal(Initializer):
    """``N(0, 2 / n_in)``."""

    name: ClassVar[str] = "he_normal"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _normal(rng, shape, math.sqrt(2.0 / shape[0]), dtype)


@attrs.frozen
class HeUniform(Initializer):
    """``U(-l, l)``, ``l = sqrt(6 / n_in)``."""

    name: ClassVar[str] = "he_uniform"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _uniform(rng, shape, 2.0 / shape[0], dtype)


@attrs.frozen
class GlorotNormal(Initializer):
    """``N(0, 2 / (n_in + n_out))``."""

    name: ClassVar[str] = "glorot_normal"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _normal(rng, shape, math.sqrt(2.0 / (shape[0] + shape[1])), dtype)


@attrs.frozen
class GlorotUniform(Initializer):
    """``U(-l, l)``, ``l = sqrt(6 / (n_in + n_out))``."""

    name: ClassVar[str] = "glorot_uniform"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _uniform(rng, shape, 2.0 / (shape[0] + shape[1]), dtype)


@attrs.frozen
class LecunNormal(Initializer):
    """``N(0, 1 / n_in)``."""

    name: ClassVar[str] = "lecun_normal"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _normal(rng, shape, math.sqrt(1.0 / shape[0]), dtype)


def _positive_std(_inst: object, _attr: object, value: float) -> None:
    if not (math.isfinite(check_real(value, "std")) and value > 0):
        raise ValueError(f"std must be a finite number > 0, got {value!r}")


@attrs.frozen
class Normal(Initializer):
    """``N(0, std^2)``; ``Normal(0.01)`` is the tutorials' ``randn(n_in, n_out) * 0.01``."""

    name: ClassVar[str] = "normal"
    std: float = attrs.field(default=0.01, converter=as_float, validator=_positive_std)

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return _normal(rng, shape, self.std, dtype)


@attrs.frozen
class Zeros(Initializer):
    """All zeros (useful for output layers of linear models; symmetric for hidden ones)."""

    name: ClassVar[str] = "zeros"

    def __call__(
        self, shape: tuple[int, int], *, rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> FloatArray:
        return np.zeros(shape, dtype=dtype)


_BY_NAME: Final[dict[str, type[Initializer]]] = {
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "glorot_normal": GlorotNormal,
    "glorot_uniform": GlorotUniform,
    "lecun_normal": LecunNormal,
    "normal": Normal,
    "zeros": Zeros,
}


def get(initializer: Initializer | str | dict[str, Any]) -> Initializer:
    """Look up an initialiser by name or config dict; values are returned unchanged."""
    return lookup(initializer, kind="initializer", base=Initializer, table=_BY_NAME)


def for_activation(initializer: Initializer | str | None, activation: Any) -> Initializer:
    """``initializer`` looked up, or when None the default for a layer followed by
    ``activation``: He normal for ReLU-like ones (``activation.relu_like``), Glorot
    uniform otherwise."""
    if initializer is not None:
        return get(initializer)
    return HeNormal() if getattr(activation, "relu_like", False) else GlorotUniform()
