"""The gradient checks leave out state leaves, whose entries in a gradient tree hold the
new state (running statistics), not a derivative; they still check everything else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn
from fnn.layers import BatchNorm, Context, Workspace
from fnn.testing import check_grads, check_layer_grads


def batch_norm() -> BatchNorm:
    return BatchNorm(
        scale=np.array([0.5, 1.5, 2.0]),
        shift=np.array([0.1, 0.2, 0.3]),
        running_mean=np.array([1.0, 2.0, 3.0]),
        running_var=np.array([1.0, 2.0, 3.0]),
    )


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("mode", ["direction", "elementwise"])
def test_a_layer_with_state(train: bool, mode: Any) -> None:
    X = np.random.default_rng(0).normal(size=(6, 3))
    check_layer_grads(batch_norm(), X, train=train, mode=mode)  # raises if wrong


@pytest.mark.parametrize("train", [True, False])
def test_a_network_with_state(train: bool) -> None:
    net = fnn.init(fnn.mlp([3, 4, 1], norm="batch"), rng=0)
    net = fnn.tree.unravel(net, fnn.tree.ravel(net) + 0.1)  # off ReLU's kink, mean != 0
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.random.default_rng(1).normal(size=6)
    check_grads(net, X, y, train=train)
    check_grads(net, X, y, train=train, mode="elementwise")


class WrongScale(BatchNorm):
    """A batch norm whose gradient of scale[1] is off by one."""

    def backward_into(
        self,
        cache: Any,
        d_out: Any,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> Any:
        d_in = super().backward_into(cache, d_out, grads, ctx, ws, need_d_in)
        grads.scale[1] += 1.0
        return d_in


def test_a_wrong_trainable_gradient_is_still_found() -> None:
    b = batch_norm()
    wrong = WrongScale(
        scale=b.scale, shift=b.shift, running_mean=b.running_mean, running_var=b.running_var
    )
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(AssertionError, match=r"gradient of scale\[1\] differs"):
        check_layer_grads(wrong, X, train=True, mode="elementwise")
    with pytest.raises(AssertionError, match=r"directional derivative \d differs"):
        check_layer_grads(wrong, X, train=True)
