"""scikit-learn's estimator checks under every documented option, not only the defaults
(issue 13, item 12), and the estimators' parameter messages.

A check that cannot hold under an option is declared by
:func:`fnn.sklearn.expected_failed_checks` with its reason; the declarations are strict
here (``xfail_strict=True``): a declared check that passes fails the test, so nothing is
declared that could hold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra 'sklearn')")

from sklearn.utils.estimator_checks import parametrize_with_checks

import fnn
from fnn.sklearn import FNNClassifier, FNNRegressor, expected_failed_checks

OPTIONS: dict[str, dict[str, Any]] = {
    "float32": {"dtype": "float32"},
    "dropout": {"dropout": 0.2},
    "early_stopping": {"early_stopping": True},
    "small_batches": {"batch_size": 4},
    "sgd_balanced": {"optimizer": "sgd", "class_weight": "balanced"},
}


def estimators() -> list[Any]:
    out: list[Any] = []
    for options in OPTIONS.values():
        out.append(FNNClassifier(epochs=100, random_state=0, **options))
        regressor_options = {k: v for k, v in options.items() if k != "class_weight"}
        out.append(FNNRegressor(epochs=100, random_state=0, **regressor_options))
    return out


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    estimators(), expected_failed_checks=expected_failed_checks, xfail_strict=True
)
def test_estimator_checks_under_every_option(estimator: Any, check: Any) -> None:
    check(estimator)


def test_only_the_options_that_break_a_check_declare_it() -> None:
    assert expected_failed_checks(FNNClassifier()) == {}
    assert expected_failed_checks(FNNRegressor(optimizer="sgd", batch_size="auto")) == {}
    assert expected_failed_checks(FNNClassifier(class_weight="balanced")) == {}
    assert set(expected_failed_checks(FNNRegressor(dropout=0.5))) == {
        "check_sample_weight_equivalence_on_dense_data"
    }
    for est in (FNNClassifier(dtype="float32"), FNNRegressor(dtype="float32")):
        assert set(expected_failed_checks(est)) == {"check_sample_weight_equivalence_on_dense_data"}
    # early stopping weighs its validation loss: class weights hold under it
    assert set(expected_failed_checks(FNNClassifier(early_stopping=True))) == {
        "check_sample_weight_equivalence_on_dense_data"
    }
    reasons = expected_failed_checks(FNNClassifier(batch_size=8, early_stopping=True))
    assert "minibatch" in reasons["check_sample_weight_equivalence_on_dense_data"]
    assert "validation split" in reasons["check_sample_weight_equivalence_on_dense_data"]
    assert expected_failed_checks(object()) == {}
    assert FNNRegressor(dtype="float32")._expected_failed_checks() == expected_failed_checks(
        FNNRegressor(dtype="float32")
    )


def test_sample_weight_equivalence_holds_for_balanced_sgd() -> None:
    # class frequencies are counted with the sample weights: weight 2 == a repeated row
    gen = np.random.default_rng(0)
    X = gen.normal(size=(30, 3))
    y = (X[:, 0] > 0.3).astype(int)
    w = gen.integers(0, 3, size=30).astype(float)
    rep = np.repeat(np.arange(30), w.astype(int))
    kw: dict[str, Any] = {"optimizer": "sgd", "class_weight": "balanced", "epochs": 20}
    a = FNNClassifier(random_state=0, **kw).fit(X, y, sample_weight=w)
    b = FNNClassifier(random_state=0, **kw).fit(X[rep], y[rep])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-7, atol=1e-9)


def test_rows_of_weight_zero_never_make_a_minibatch_of_zero_weight() -> None:
    gen = np.random.default_rng(0)
    X = gen.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    w = np.where(np.arange(40) < 20, 0.0, 1.0)  # batches of 4 of zeros were 0/0 before
    clf = FNNClassifier(batch_size=4, epochs=3, random_state=0).fit(X, y, sample_weight=w)
    assert clf.n_iter_ == 3 and np.isfinite(clf.loss_curve_).all()
    reg = FNNRegressor(batch_size=4, epochs=3, random_state=0).fit(X, X[:, 0], sample_weight=w)
    assert reg.n_iter_ == 3 and np.isfinite(reg.loss_curve_).all()


X4 = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y4 = np.array([0, 1, 1, 0])


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "error", "message"),
    [
        ({"alpha": math.nan}, {}, ValueError, "alpha must be a finite float >= 0, got nan"),
        ({"alpha": -1.0}, {}, ValueError, "alpha must be a finite float >= 0, got -1.0"),
        ({"alpha": "x"}, {}, TypeError, "alpha must be a float, got str 'x'"),
        ({"tol": math.nan}, {}, ValueError, "tol must be a finite float >= 0, got nan"),
        ({"tol": math.inf}, {}, ValueError, "tol must be a finite float >= 0, got inf"),
        ({"verbose": "yes"}, {}, TypeError, "verbose must be an int or a bool, got str 'yes'"),
        ({"verbose": 1.5}, {}, TypeError, "verbose must be an int or a bool, got float 1.5"),
        ({"verbose": -1}, {}, ValueError, "verbose must be >= 0, got -1"),
        ({"learning_rate": "0.1"}, {}, TypeError, "learning_rate must be a float, got str"),
        (
            {},
            {"sample_weight": -np.ones(4)},
            ValueError,
            "Negative values in data passed to `sample_weight`",
        ),
        (
            {},
            {"sample_weight": np.zeros(4)},
            ValueError,
            "Sample weights must contain at least one non-zero number",
        ),
    ],
)
@pytest.mark.parametrize("cls", [FNNClassifier, FNNRegressor])
def test_parameters_are_named(
    cls: Any,
    params: dict[str, Any],
    fit_kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        cls(epochs=2, **params).fit(X4, Y4, **fit_kwargs)


def test_weights_that_leave_one_class_are_described_accurately() -> None:
    with pytest.raises(
        ValueError,
        match=r"the sample weights \(sample_weight times class_weight\) are positive only "
        r"for samples of class 0; a classifier needs samples of two classes",
    ):
        FNNClassifier(epochs=2).fit(X4, Y4, sample_weight=(Y4 == 0) * 1.0)
    with pytest.raises(ValueError, match=r"are positive for no sample"):
        FNNClassifier(epochs=2, class_weight={0: 0.0, 1: 0.0}).fit(X4, Y4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transform_keeps_the_networks_dtype_and_says_so(dtype: str) -> None:
    clf = FNNClassifier(hidden_layer_sizes=(3,), epochs=2, dtype=dtype).fit(X4, Y4)  # type: ignore[arg-type]
    assert clf.transform(X4.astype(np.float32)).dtype == np.dtype(dtype)
    assert clf.transform(X4).dtype == np.dtype(dtype)
    assert clf.__sklearn_tags__().transformer_tags.preserves_dtype == [dtype]


def test_a_float32_regressors_prediction_of_a_row_does_not_depend_on_the_others() -> None:
    gen = np.random.default_rng(0)
    X = gen.normal(size=(64, 5))
    reg = FNNRegressor(hidden_layer_sizes=(37,), epochs=3, dtype="float32", random_state=0)
    reg.fit(X, X @ gen.normal(size=5))
    assert reg.network_.dtype == np.float32
    whole = reg.predict(X)
    one_by_one = np.concatenate([reg.predict(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(one_by_one, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reg.predict(X[::-1]), whole[::-1], rtol=1e-12, atol=1e-12)


def test_early_stopping_monitors_the_weighted_loss() -> None:
    # class_weight folded into the sample weights weighs the validation loss too, so the
    # History's val_loss is the held-out rows' weighted loss
    gen = np.random.default_rng(0)
    X = gen.normal(size=(60, 2))
    y = (X[:, 0] > 0.5).astype(int)
    clf = FNNClassifier(epochs=3, early_stopping=True, class_weight={0: 1.0, 1: 9.0})
    clf.fit(X, y)
    split = clf.history_.split
    assert split is not None
    va = split.validation
    w = np.where(y[va] == 1, 9.0, 1.0)
    # the network kept is the best epoch's (early stopping restores it)
    best = next(r for r in clf.history_.records if r.epoch == clf.history_.best_epoch)
    got = fnn.evaluate(clf.network_, X[va], y[va], sample_weight=w)["loss"]
    unweighted = fnn.evaluate(clf.network_, X[va], y[va])["loss"]
    assert best.val_loss == pytest.approx(got, rel=1e-12)
    assert abs(got - unweighted) > 1e-6
