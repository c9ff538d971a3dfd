from __future__ import annotations

import numpy as np
import pytest

from fnn import metrics as M


def test_accuracy_binary_and_multiclass() -> None:
    # probabilities (n, 1) thresholded at 0.5: predictions 1, 0, 1, 1 vs 1, 0, 0, 1 -> 3/4
    assert M.accuracy([1, 0, 0, 1], np.array([[0.9], [0.2], [0.6], [0.51]])) == 0.75
    # scores (n, k) take the argmax: 2, 0, 1 vs 2, 1, 1 -> 2/3
    scores = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2]])
    assert M.accuracy([2, 1, 1], scores) == pytest.approx(2 / 3)
    # one-hot true labels and integer predictions
    assert M.accuracy(np.eye(3)[[2, 1, 1]], np.array([2, 1, 0])) == pytest.approx(2 / 3)


def test_top_k_accuracy() -> None:
    scores = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2]])
    # true 0: top-2 of row 0 is {2, 1}: miss; true 1 in row 1 top-2 {0, 1}: hit; row 2 hit
    assert M.top_k_accuracy([0, 1, 1], scores, k=2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy([0, 1, 1], scores, k=3) == 1.0


def test_confusion_matrix_and_precision_recall_f1() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    C = M.confusion_matrix(y_true, y_pred)
    assert C.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    p, r, f = M.precision_recall_f1(y_true, y_pred)
    # per class precision: 1/2, 2/3, 1/1; recall: 1/2, 2/2, 1/2
    assert p == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert r == pytest.approx((0.5 + 1 + 0.5) / 3)
    f1s = [2 * a * b / (a + b) for a, b in [(0.5, 0.5), (2 / 3, 1.0), (1.0, 0.5)]]
    assert f == pytest.approx(np.mean(f1s))
    assert M.f1_score(y_true, y_pred) == f and M.precision(y_true, y_pred) == p
    # binary: class 1 precision 2/3 (one false positive), recall 1
    assert M.precision_recall_f1([0, 1, 1, 0], [1, 1, 1, 0], average="binary") == pytest.approx(
        (2 / 3, 1.0, 0.8)
    )


def test_log_loss_and_regression_metrics() -> None:
    assert M.log_loss([1, 0], np.array([0.8, 0.4])) == pytest.approx(
        -(np.log(0.8) + np.log(0.6)) / 2
    )
    assert M.log_loss([2], np.array([[0.2, 0.3, 0.5]])) == pytest.approx(-np.log(0.5))
    assert np.isfinite(M.log_loss([1], np.array([0.0])))  # clipped, not infinite
    assert M.mean_squared_error([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert M.mean_absolute_error([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    # r2: SS_res = 4, SS_tot = 2 -> 1 - 2 = -1
    assert M.r2_score([1, 2, 3], [1, 2, 5]) == pytest.approx(-1.0)
    assert M.r2_score([1, 2, 3], [1, 2, 3]) == 1.0


def test_metric_errors() -> None:
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[3, 2\]"):
        M.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(
        ValueError, match=r"y_true has shape \(3, 1\) but y_pred has shape \(2, 1\)"
    ):
        M.mean_squared_error([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="Input y_pred contains NaN"):
        M.accuracy([0, 1], [0.5, np.nan])
