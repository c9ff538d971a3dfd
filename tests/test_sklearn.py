"""scikit-learn's own estimator checks on both estimators, plus Pipeline/GridSearchCV."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra 'sklearn')")

from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fnn  # noqa: E402
from fnn.sklearn import FNNClassifier, FNNRegressor  # noqa: E402

# No check is expected to fail. (scikit-learn itself skips its array-API checks unless
# SCIPY_ARRAY_API=1; fnn is NumPy-only, and the skip reason is printed.)
EXPECTED_FAILURES: dict[str, str] = {}


def expected_failures(estimator: Any) -> dict[str, str]:
    return EXPECTED_FAILURES


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [FNNClassifier(epochs=100, random_state=0), FNNRegressor(epochs=100, random_state=0)],
    expected_failed_checks=expected_failures,
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_pipeline_and_grid_search_on_real_data() -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)  # 1797 real 8x8 digit images, shipped with sklearn
    X_train, X_test = X[:1400], X[1400:]
    y_train, y_test = y[:1400], y[1400:]
    pipe = make_pipeline(
        StandardScaler(), FNNClassifier(hidden_layer_sizes=(64,), epochs=30, random_state=0)
    )
    search = GridSearchCV(pipe, {"fnnclassifier__learning_rate": [1e-3, 1e-2]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_["fnnclassifier__learning_rate"] in (1e-3, 1e-2)
    assert search.score(X_test, y_test) > 0.9
    clf = search.best_estimator_[-1]
    # leave the estimator: the fitted network works with the functional API
    Z = search.best_estimator_[0].transform(X_test)
    assert np.array_equal(fnn.predict(clf.network_, Z).argmax(axis=1), clf.predict(Z))


def test_regressor_in_a_pipeline() -> None:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(
        StandardScaler(),
        FNNRegressor(hidden_layer_sizes=(32,), learning_rate=1e-2, epochs=200, random_state=0),
    )
    pipe.fit(X[:350], y[:350])
    assert pipe.score(X[350:], y[350:]) > 0.35  # R^2 on held-out patients


def test_partial_fit_keeps_the_optimizer_state() -> None:
    X, y = fnn.datasets.make_moons(200, noise=0.2, rng=0)
    clf = FNNClassifier(hidden_layer_sizes=(16,), random_state=0, batch_size=50)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    assert clf.n_iter_ == 3 and clf.opt_state_ is not None
    assert clf.opt_state_.step == 3 * 4  # Adam's step count carried over: 4 batches per call
    assert len(clf.loss_curve_) == 3
    # three partial_fit epochs equal one fnn.fit of three epochs from the same start
    net0 = FNNClassifier(hidden_layer_sizes=(16,), random_state=0)._new_network(2, 1, "sigmoid")
    gen = np.random.default_rng(0)
    opt = fnn.chain(fnn.add_decayed_weights(1e-4, fnn.weights_only), fnn.adam(1e-3))
    net, _h = fnn.fit(net0, opt, X, y, epochs=3, batch_size=50, rng=gen, verbose=0)
    assert fnn.tree.allclose(net, clf.network_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="X has 3 features, but FNNClassifier is expecting 2"):
        clf.partial_fit(np.ones((4, 3)), [0, 1, 0, 1])


def test_weights_transform_and_errors() -> None:
    X, y = fnn.datasets.make_moons(300, noise=0.3, rng=0)
    y = np.where(np.arange(300) < 250, y, 1)  # imbalanced towards 1
    a = FNNClassifier(hidden_layer_sizes=(8,), epochs=20, random_state=0).fit(X, y)
    b = FNNClassifier(
        hidden_layer_sizes=(8,), epochs=20, random_state=0, class_weight="balanced"
    ).fit(X, y)
    c = FNNClassifier(hidden_layer_sizes=(8,), epochs=20, random_state=0).fit(
        X, y, sample_weight=np.where(y == 0, 3.0, 1.0)
    )
    assert (b.predict(X) == 0).sum() > (a.predict(X) == 0).sum()
    assert (c.predict(X) == 0).sum() > (a.predict(X) == 0).sum()
    assert a.transform(X).shape == (300, 8)
    assert a.predict_proba(X).shape == (300, 2)
    np.testing.assert_allclose(a.predict_proba(X).sum(axis=1), 1.0)
    with pytest.raises(NotFittedError):
        FNNClassifier().predict(X)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        FNNRegressor(epochs=2).fit(np.full((4, 2), np.nan), np.zeros(4))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        FNNRegressor(optimizer="lbfgs", epochs=2).fit(np.ones((4, 2)), np.zeros(4))  # type: ignore[arg-type]
