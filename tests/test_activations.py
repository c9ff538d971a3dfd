from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn import activations as A

ALL = [
    A.Identity(),
    A.ReLU(),
    A.LeakyReLU(0.1),
    A.ELU(0.7),
    A.GELU(),
    A.Sigmoid(),
    A.Tanh(),
    A.Softplus(),
]


def reference(act: A.Activation, z: float) -> float:
    """Textbook scalar definitions, in float64 with math."""
    if isinstance(act, A.Identity):
        return z
    if isinstance(act, A.ReLU):
        return max(z, 0.0)
    if isinstance(act, A.LeakyReLU):
        return z if z > 0 else act.negative_slope * z
    if isinstance(act, A.ELU):
        return z if z > 0 else act.alpha * (math.exp(z) - 1)
    if isinstance(act, A.GELU):
        return 0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    if isinstance(act, A.Sigmoid):
        return 1 / (1 + math.exp(-z))
    if isinstance(act, A.Tanh):
        return math.tanh(z)
    if isinstance(act, A.Softplus):
        return math.log1p(math.exp(z))
    raise AssertionError(act)


@pytest.mark.parametrize("act", ALL, ids=lambda a: a.name)
@given(z=st.floats(-8, 8))
def test_matches_textbook_definition(act: A.Activation, z: float) -> None:
    got = float(act(np.array([z]))[0])
    assert got == pytest.approx(reference(act, z), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("act", ALL, ids=lambda a: a.name)
@given(z=st.floats(-6, 6).filter(lambda v: abs(v) > 1e-4))
def test_vjp_is_the_derivative(act: A.Activation, z: float) -> None:
    h = 1e-6
    num = (reference(act, z + h) - reference(act, z - h)) / (2 * h)
    zz = np.array([z])
    got = float(act.vjp(zz, act(zz), np.ones(1))[0])
    assert got == pytest.approx(num, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("act", ALL, ids=lambda a: a.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(act: A.Activation, dtype: type) -> None:
    z: np.ndarray[Any, Any] = np.linspace(-3, 3, 7, dtype=dtype)
    a = act(z)
    assert a.dtype == dtype
    assert act.vjp(z, a, np.ones_like(z)).dtype == dtype


@pytest.mark.parametrize("act", ALL, ids=lambda a: a.name)
@given(z=hnp.arrays(np.float64, 5, elements=st.floats(-1e300, 1e300)))
def test_finite_for_huge_inputs(act: A.Activation, z: np.ndarray[Any, Any]) -> None:
    a = act(z)
    assert np.isfinite(a).all()
    assert np.isfinite(act.vjp(z, a, np.ones_like(z))).all()


def test_stable_sigmoid_and_softmax_at_extremes() -> None:
    z = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    s = A.sigmoid(z)
    assert s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0
    p = A.softmax(np.array([[1e4, -1e4, 0.0]]))
    assert np.array_equal(p, [[1.0, 0.0, 0.0]])
    ls = A.log_softmax(np.array([[1e4, -1e4]]))
    assert np.isfinite(ls).all() and ls[0, 0] == 0.0


def test_names_are_mapped_once_at_the_boundary() -> None:
    assert A.get("relu") == A.ReLU()
    assert A.get(A.Tanh()) == A.Tanh()
    assert A.get({"name": "leaky_relu", "negative_slope": 0.2}) == A.LeakyReLU(0.2)
    assert A.get(A.ELU(0.5).config()) == A.ELU(0.5)
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        A.get("relu6")
    with pytest.raises(ValueError, match="softmax is an output activation"):
        A.get("softmax")
    with pytest.raises(TypeError, match="activation must be a name"):
        A.get(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative_slope must be"):
        A.LeakyReLU(float("nan"))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.longdouble])
@pytest.mark.parametrize("width", [3, 100])
def test_relu_of_other_dtypes(dtype: type, width: int) -> None:
    # ReLU accepts any numeric dtype, as np.maximum(z, 0) does (was a KeyError)
    z: np.ndarray[Any, Any] = (np.arange(2 * width) - width).astype(dtype).reshape(2, width)
    np.testing.assert_array_equal(A.ReLU()(z), np.maximum(z, 0))
