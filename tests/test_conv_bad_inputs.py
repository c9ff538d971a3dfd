"""BAD_INPUTS.md's rows for convolutional networks: wrong rank or channel count, kernels
larger than the padded input, bad kernel/stride/padding values: a clear error naming the
layer or argument, the expected and received shape, before any work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn
from fnn import specs

RNG = np.random.default_rng(0)


def cnn() -> fnn.Network:
    arch = fnn.sequential(
        (8, 8, 1),
        [specs.conv2d(2, 3), specs.max_pool2d(2), specs.flatten(), specs.dense(3)],
        output="softmax",
    )
    return fnn.init(arch, rng=0)


def test_2d_X_for_a_conv_network_names_the_expected_shape() -> None:
    with pytest.raises(
        ValueError, match=r"Expected 4D array of shape \(n_samples, 8, 8, 1\), got 2D"
    ):
        fnn.predict(cnn(), RNG.normal(size=(4, 64)))


def test_wrong_channel_count_names_both_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"samples of shape \(8, 8, 3\), but the network expects \(8, 8, 1\)"
    ):
        fnn.forward(cnn(), RNG.normal(size=(4, 8, 8, 3)))


def test_layers_that_do_not_fit_are_refused_when_built() -> None:
    conv = fnn.Conv2D(W=RNG.normal(size=(3, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"layers.0 \(Conv2D\) expects 3 input channels, got 1"):
        fnn.Network(
            layers=[conv, fnn.Flatten(), fnn.Dense(W=np.zeros((72, 2)))],
            loss="mse",
            input_shape=(8, 8, 1),
        )
    with pytest.raises(ValueError, match=r"layers.0 \(Conv2DSpec\).*kernel_hw \(9, 9\) is larger"):
        fnn.sequential((8, 8, 1), [specs.conv2d(2, 9), specs.flatten(), specs.dense(2)])
    with pytest.raises(ValueError, match=r"layers.0 \(Dense\).*add flatten\(\)"):
        fnn.sequential((8, 8, 1), [specs.dense(2)])
    with pytest.raises(ValueError, match=r"last layer gives outputs of shape \(6, 6, 2\)"):
        fnn.sequential((8, 8, 1), [specs.conv2d(2, 3)])


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: specs.conv2d(4, 0), ValueError, "kernel_size must be positive"),
        (lambda: specs.conv2d(4, 2.5), ValueError, "kernel_size"),  # type: ignore[arg-type]
        (lambda: specs.conv2d(4, 3, stride=0), ValueError, "stride must be positive"),
        (lambda: specs.conv2d(4, 3, padding=-1), ValueError, "padding must be non-negative"),
        (lambda: specs.conv2d(4, 3, padding="full"), ValueError, "padding must be 'valid', 'same'"),
        (lambda: specs.conv2d(0, 3), ValueError, "out_channels must be >= 1"),
        (lambda: specs.max_pool2d(0), ValueError, "window must be positive"),
        (lambda: fnn.MaxPool2D(2, stride=-1), ValueError, "stride must be positive"),
        (lambda: fnn.Conv2D(W=np.zeros((3, 3, 2))), ValueError, r"W must have shape \(kernel_h"),
        (lambda: fnn.Conv2D(W=np.zeros((3, 3, 2, 4)), stride=(1, 0)), ValueError, "stride"),
    ],
)
def test_bad_kernel_stride_padding_values(build: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()
