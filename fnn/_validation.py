"""Input validation at the public boundary.

Each public entry point converts and checks its inputs once, here, before any work, with
messages modelled on scikit-learn's (see BAD_INPUTS.md): ValueError for bad values and
shapes, TypeError for bad kinds. Nothing is written into the caller's arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from fnn._types import FloatArray, RNGLike, Shape
from fnn.tree import read_only

__all__ = [
    "as_float",
    "as_generator",
    "as_list",
    "check_2d",
    "check_X",
    "check_consistent_length",
    "check_finite",
    "check_int",
    "check_positive",
    "check_range",
    "check_real",
    "check_sample_weight",
    "check_shape",
    "check_targets",
    "check_token_ids",
    "float_dtype",
]


def as_generator(rng: RNGLike | None, *, name: str = "rng") -> np.random.Generator:
    """``rng`` as a Generator: an int seeds a new one; a Generator is used as is."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{name} must be a numpy.random.Generator or an int seed, got {type(rng).__name__}"
    )


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: TypeError for other kinds (2.5, "3", True)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def float_dtype(dtype: Any, *, name: str = "dtype") -> np.dtype[Any]:
    """Validate a float dtype: only float32 and float64 are supported."""
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{name} must be a numpy dtype, got {dtype!r}") from e
    if d != np.float32 and d != np.float64:
        raise ValueError(f"{name} must be float32 or float64, got {d}")
    result: np.dtype[Any] = d
    return result


def _to_numeric(x: Any, name: str, *, strings: bool = True) -> np.ndarray[Any, Any]:
    """``x`` as a numeric array; object arrays are converted to float64, and so are
    string arrays when ``strings`` is True (targets), else they are refused (inputs)."""
    if isinstance(x, str | bytes):
        raise ValueError(f"could not convert string to float: {x!r} (argument {name})")
    try:
        a = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name} could not be converted to an array: {e}") from e
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported; {name} has dtype {a.dtype}")
    if not strings and a.dtype.kind in "US":
        # as scikit-learn's check_array: strings are never parsed as numbers
        raise ValueError(
            f"could not convert {name} to float: it holds strings (dtype {a.dtype}); "
            "dtype='numeric' is not compatible with arrays of bytes/strings. Convert your "
            "data to numeric values explicitly instead."
        )
    if a.dtype.kind in "OUSV":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} could not convert {a.dtype} values to float: {e}") from e
    elif a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    return a


_ZEROS: dict[str, FloatArray] = {}
_SMALL = 4096


def _zeros(dtype: np.dtype[Any]) -> FloatArray:
    """A read-only vector of ``_SMALL`` zeros of ``dtype`` (float32 or float64)."""
    z = _ZEROS.get(dtype.char)
    if z is None:
        z = _ZEROS[dtype.char] = read_only(np.zeros(_SMALL, dtype))
    return z


def check_finite(a: np.ndarray[Any, Any], name: str) -> None:
    """Raise ValueError if ``a`` holds NaN or infinity."""
    if a.dtype.kind != "f":
        return
    if a.size <= _SMALL and a.flags.c_contiguous and (a.dtype.char == "f" or a.dtype.char == "d"):
        # x * 0 is 0 for finite x and NaN for NaN and infinity, so the dot product of a
        # with zeros is 0 exactly when every element is finite: one BLAS call, which
        # (unlike a ufunc reduction) raises no floating-point warnings to silence
        s = float(np.vdot(a, _zeros(a.dtype)[: a.size]))
    else:
        # A sum is one fast pass (NaN and infinity propagate); only if it is not finite
        # do we look for which. A float32/64 matrix is summed as its row sums X @ 1
        # first: a BLAS product on all cores, twice np.sum's speed on MNIST-sized inputs.
        with np.errstate(over="ignore", invalid="ignore"):
            if a.size <= _SMALL:  # small: one reduction, call overhead dominates
                s = float(np.add.reduce(a, axis=None))
            elif a.ndim == 2 and a.shape[1] > 0 and a.dtype in (np.float32, np.float64):
                s = float(np.add.reduce(a @ np.ones(a.shape[1], a.dtype)))
            else:
                s = float(np.sum(a))
    if math.isfinite(s):
        return
    if np.isnan(a).any():
        raise ValueError(f"Input {name} contains NaN.")
    if np.isinf(a).any():
        raise ValueError(f"Input {name} contains infinity.")


def check_2d(x: Any, *, name: str = "X", dtype: np.dtype[Any] | None = None) -> FloatArray:
    """Convert ``x`` to a finite 2-D float array of shape (n_samples, n_features).

    ``dtype`` is the target float dtype (the network's); ints, bools and float16 are
    converted to it. The caller's array is never written; it may be returned as is when
    no conversion is needed.
    """
    a = _to_numeric(x, name, strings=False)
    if a.ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead ({name} has shape {a.shape}); "
            f"reshape with {name}.reshape(-1, 1) if it holds one feature or "
            f"{name}.reshape(1, -1) if it holds one sample."
        )
    if a.ndim != 2:
        raise ValueError(
            f"Expected 2D array (n_samples, n_features), got {a.ndim}D array with shape "
            f"{a.shape} for {name}"
        )
    if a.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={a.shape}) while a minimum of 1 is "
            f"required ({name})."
        )
    if a.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={a.shape}) while a minimum of 1 is "
            f"required ({name})."
        )
    target = (
        dtype
        if dtype is not None
        else (a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64))
    )
    out = a.astype(target, copy=False)
    check_finite(out, name)
    return out


def check_X(
    X: Any, *, input_shape: Shape, dtype: np.dtype[Any], ids: int | None = None
) -> FloatArray:
    """A network's input as a finite float array of ``dtype``, (n_samples, *input_shape):
    (n_samples, n_features) for dense networks with the messages of :func:`check_2d`,
    images with the expected and received shape. A None in ``input_shape`` (a
    sequence's time axis) takes any length >= 1.

    With ``ids`` (a vocabulary size), ``X`` holds integer token ids (n_samples, T) and is
    returned as they are (integer dtype, not converted): floats (even whole) and bools
    are refused, and an id outside [0, ids) is a ValueError naming it and its position,
    e.g. "token id 81 at X[3, 17] is outside [0, 73)"."""
    if ids is not None:
        return check_token_ids(X, input_shape=input_shape, vocab_size=ids)
    if None in input_shape:
        return _check_sequence(X, input_shape, dtype)
    if (
        type(X) is np.ndarray
        and X.dtype == dtype
        and X.shape[1:] == input_shape
        and X.ndim == len(input_shape) + 1
        and X.shape[0] > 0
    ):  # the common case, an array of the right dtype and shape: finiteness only
        check_finite(X, "X")
        return X
    if len(input_shape) == 1:
        a = check_2d(X, name="X", dtype=dtype)
        if a.shape[1] != input_shape[0]:
            raise ValueError(
                f"X has {a.shape[1]} features, but the network expects {input_shape[0]} "
                f"features as input (X.shape={a.shape})."
            )
        return a
    b = _to_numeric(X, "X")
    want = (len(input_shape) + 1, (-1, *input_shape))
    if b.ndim != want[0]:
        raise ValueError(
            f"Expected {want[0]}D array of shape (n_samples, {', '.join(map(str, input_shape))})"
            f", got {b.ndim}D array with shape {b.shape} for X"
        )
    if b.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={b.shape}) while a minimum of 1 is required (X)."
        )
    if tuple(b.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"X has samples of shape {tuple(b.shape[1:])}, but the network expects "
            f"{tuple(input_shape)} (X.shape={b.shape})."
        )
    out = b.astype(dtype, copy=False)
    check_finite(out, "X")
    return out


def _fits(shape: tuple[int, ...], want: Shape) -> bool:
    """Whether a per-sample ``shape`` matches ``want`` (a None there: any length >= 1)."""
    return len(shape) == len(want) and all(
        (w is None and d >= 1) or d == w for d, w in zip(shape, want, strict=True)
    )


def _shape_text(shape: Shape) -> str:
    return "(n_samples, " + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def _check_sequence(X: Any, input_shape: Shape, dtype: np.dtype[Any]) -> FloatArray:
    """Float sequences (n_samples, T, ...) for an ``input_shape`` with a None time axis."""
    b = _to_numeric(X, "X", strings=False)
    if b.ndim != len(input_shape) + 1 or b.shape[0] == 0 or not _fits(b.shape[1:], input_shape):
        raise ValueError(
            f"X must have shape {_shape_text(input_shape)} with n_samples, T >= 1, got "
            f"shape {b.shape}"
        )
    out = b.astype(dtype, copy=False)
    check_finite(out, "X")
    return out


def check_token_ids(X: Any, *, input_shape: Shape, vocab_size: int) -> np.ndarray[Any, Any]:
    """Token ids (n_samples, T) of an integer dtype, each in [0, vocab_size): returned
    unchanged. TypeError-free by design of the message table: every refusal is a
    ValueError naming the dtype, or the bad id and its position."""
    a = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"X must hold integer token ids in [0, {vocab_size}), got dtype {a.dtype}"
            + (" (convert whole-number floats with X.astype(int))" if a.dtype.kind == "f" else "")
        )
    if a.ndim != len(input_shape) + 1 or a.shape[0] == 0 or not _fits(a.shape[1:], input_shape):
        raise ValueError(
            f"X must have shape {_shape_text(input_shape)} with n_samples, T >= 1, got "
            f"shape {a.shape}"
        )
    lo, hi = a.min(), a.max()
    if lo < 0 or hi >= vocab_size:
        bad = np.argwhere((a < 0) | (a >= vocab_size))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(f"token id {a[tuple(bad)]} at X[{where}] is outside [0, {vocab_size})")
    return a


def check_targets(y: Any, *, name: str = "y") -> np.ndarray[Any, Any]:
    """Convert ``y`` to a numeric array with finite values (shape checked by the loss)."""
    if type(y) is np.ndarray and y.ndim and y.dtype.kind in "biu":
        return y  # integer or bool labels: numeric and finite as they are
    a = _to_numeric(y, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must be an array of targets, got a scalar {a!r}")
    check_finite(a, name)
    return a


def check_sample_weight(
    w: Any, n: int, dtype: np.dtype[Any], *, name: str = "sample_weight"
) -> FloatArray | None:
    """``None`` or a finite, non-negative (n,) array of ``dtype`` with a positive sum."""
    if w is None:
        return None
    a = _to_numeric(w, name).astype(dtype, copy=False)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    check_finite(a, name)
    if (a < 0).any():
        raise ValueError(f"{name} must be >= 0, got a minimum of {a.min()}")
    if not a.sum() > 0:
        raise ValueError(f"{name} must have a positive sum")
    return a


def check_consistent_length(**arrays: Any) -> None:
    """Raise ValueError if the arrays differ in their first dimension."""
    lengths = [len(a) for a in arrays.values() if a is not None]
    if len(set(lengths)) > 1:
        names = ", ".join(k for k, v in arrays.items() if v is not None)
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: {lengths} ({names})"
        )


def as_list(value: Any, name: str, what: str) -> list[Any]:
    """The items of ``value``, a sequence (or other iterable) of ``what``; TypeError
    naming ``name`` for None, a number or a string, which Python would otherwise report
    as "'NoneType' object is not iterable"."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be a sequence of {what}, got {type(value).__name__} {value!r}"
        )
    return list(value)


def check_shape(value: Any, name: str = "input_shape") -> tuple[int, ...]:
    """A per-sample shape: an int ``n`` (meaning ``(n,)``) or a non-empty sequence of
    positive ints. TypeError naming ``name`` for other kinds, ValueError for ``()`` (a
    network takes samples of at least one axis) and for sizes < 1."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (value,)
    dims = as_list(value, name, "positive ints")
    if not dims:
        raise ValueError(
            f"{name} must have at least one axis, got {tuple(dims)}: samples of shape () "
            "would make X 1-D; pass (n_features,) or (height, width, channels)"
        )
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            raise ValueError(f"{name} must hold positive ints, got {value!r}")
    return tuple(int(d) for d in dims)


def check_real(value: object, name: str) -> float:
    """``value`` as a float: a real number (Python's or NumPy's, not a bool); TypeError
    naming ``name`` for any other kind (a string, None, an array). Finiteness and range
    are the caller's to check."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def as_float(value: float) -> float:
    """An attrs converter for a float hyper-parameter: a real number (NumPy's too) as a
    Python float; any other kind as it is, for the field's validator (:func:`check_range`,
    :func:`check_positive`, or one calling :func:`check_real`) to refuse naming the field
    (``float`` itself would take ``"0.5"`` and say only "could not convert string to
    float" for ``"abc"``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def check_range(name: str, lo: float, hi: float, *, hi_open: bool = True) -> Any:
    """An attrs validator: the value is a finite real number in ``[lo, hi)`` (``[lo,
    hi]`` when ``hi_open`` is False), else ValueError "{name} must be in [lo, hi), got
    value" (TypeError when it is not a number at all)."""

    def check(_inst: object, _attr: object, value: float) -> None:
        value = check_real(value, name)
        ok = math.isfinite(value) and lo <= value
        ok = ok and (value < hi if hi_open else value <= hi)
        if not ok:
            bracket = ")" if hi_open else "]"
            raise ValueError(f"{name} must be in [{lo}, {hi}{bracket}, got {value!r}")

    return check


def check_positive(name: str) -> Any:
    """An attrs validator: the value is a finite real number > 0, else ValueError
    "{name} must be > 0, got value" (TypeError when it is not a number at all)."""

    def check(_inst: object, _attr: object, value: float) -> None:
        if not (math.isfinite(check_real(value, name)) and value > 0):
            raise ValueError(f"{name} must be > 0, got {value!r}")

    return check


def check_nonnegative(name: str) -> Any:
    """An attrs validator: the value is a finite real number >= 0, else ValueError
    "{name} must be >= 0, got value" (TypeError when it is not a number at all)."""

    def check(_inst: object, _attr: object, value: float) -> None:
        if not (math.isfinite(check_real(value, name)) and value >= 0):
            raise ValueError(f"{name} must be >= 0, got {value!r}")

    return check


def check_positive_int(name: str) -> Any:
    """An attrs validator: the value is an int >= 1 (not a bool), else ValueError
    "{name} must be an int >= 1, got value"."""

    def check(_inst: object, _attr: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    return check
