"""What mypy sees of the optional modules reached as attributes of fnn (PEP 562): their
real types, and a misspelt attribute is still an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, assert_type

import numpy as np
import pytest

import fnn


def test_lazy_modules_are_typed_as_themselves() -> None:
    pytest.importorskip(
        "sklearn", reason="scikit-learn is not installed (extra 'sklearn'; 'test' installs it too)"
    )
    est = fnn.sklearn.FNNClassifier(epochs=1)
    assert_type(est, fnn.sklearn.FNNClassifier)
    fit: Callable[..., tuple[fnn.Network, fnn.History]] = fnn.distributed.fit
    assert callable(fit) and callable(fnn.plot.decision_boundary)
    X, y = fnn.datasets.load_digits()
    assert_type(X, np.ndarray[Any, np.dtype[np.float64]])
    assert_type(y, np.ndarray[Any, np.dtype[np.int64]])
    assert X.shape[0] == y.shape[0] == 1797


def test_a_misspelt_attribute_is_a_type_error() -> None:
    with pytest.raises(AttributeError):
        fnn.sklaern  # type: ignore[attr-defined]  # noqa: B018
