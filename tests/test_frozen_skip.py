"""Issue 22, point 3: a training step computes no gradient that its update does not read.

Leaves frozen by an optimizer mask (``fnn.freeze``) in an elementwise chain get no
gradient computation: the layers below the lowest trained one are not run backward (a
batch-norm layer there only writes its new running statistics), a frozen convolution or
dense layer between trained ones computes its input gradient alone. The parameters come
out with the same bits as the full pass's (the design card's loop, which computes every
gradient), in ``fit`` and a loop of ``train_step`` alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn
from fnn import specs
from fnn.layers import BatchNorm, Conv2D, Dense
from fnn.network import gradient_skip
from fnn.optim.transforms import unused_gradient
from tests.test_execution_path import assert_same_bits, three_ways

# conv -> bn -> relu -> pool -> conv -> bn -> relu -> flatten -> dense -> dense
CONV_BLOCKS = ("layers.0.", "layers.1.", "layers.4.", "layers.5.")


def cnn(seed: int = 0) -> fnn.Network:
    arch = fnn.sequential(
        (8, 8, 2),
        [
            specs.conv2d(4, 3, padding="same"),
            specs.batch_norm(),
            specs.activation("relu"),
            specs.max_pool2d(2),
            specs.conv2d(5, 3),
            specs.batch_norm(),
            specs.activation("relu"),
            specs.flatten(),
            specs.dense(6, activation="tanh"),
            specs.dense(3),
        ],
        output="softmax",
    )
    return fnn.init(arch, rng=seed)


def data(n: int = 10) -> tuple[Any, Any]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 8, 8, 2)), rng.integers(0, 3, n)


def frozen(prefixes: tuple[str, ...], *head: Any) -> fnn.Optimizer:
    return fnn.chain(*head, fnn.adam(1e-2), fnn.freeze(lambda p: p.startswith(prefixes)))


MASKS = [
    ("layers.0.",),  # the first layer
    ("layers.0.", "layers.4."),  # both convolutions, batch norms trained
    ("layers.4.",),  # a convolution between trained layers
    CONV_BLOCKS,  # the lower half: the pass starts at the first dense layer
    ("layers.8.",),  # a dense layer between trained ones
    ("layers.",),  # everything: only the running statistics move
]


@pytest.mark.parametrize("prefixes", MASKS)
def test_frozen_steps_keep_the_full_pass_bits(prefixes: tuple[str, ...]) -> None:
    X, y = data()
    net = cnn()
    opt = frozen(prefixes)
    assert gradient_skip(net, unused_gradient(opt.init(net))) is not None
    fitted, stepped, looped = three_ways(net, opt, X, y, steps=3)
    assert_same_bits(fitted, stepped, looped)
    for (p, a), (_, b) in zip(
        fnn.tree.leaves_with_paths(looped), fnn.tree.leaves_with_paths(net), strict=True
    ):
        if "running" in p:
            assert not np.array_equal(a, b), p  # batch norm still updates its statistics
        elif p.startswith(prefixes):
            assert np.array_equal(a, b), p
        else:
            assert not np.array_equal(a, b), p


def test_fit_and_train_step_give_the_same_optimizer_state() -> None:
    X, y = data()
    net = cnn()
    opt = frozen(CONV_BLOCKS)
    _, history = fnn.fit(net, opt, X, y, epochs=2, batch_size=5, shuffle=False, rng=0, verbose=0)
    state = opt.init(net)
    for i in (0, 5, 0, 5):
        net, state, _ = fnn.train_step(net, state, X[i : i + 5], y[i : i + 5])
    for a, b in zip(
        fnn.tree.leaves(history.opt_state.states), fnn.tree.leaves(state.states), strict=True
    ):
        assert np.array_equal(a, b)
    # the frozen leaves' moments saw zero gradients (PyTorch's frozen parameters see none)
    mask = fnn.tree.leaf_mask(net, lambda p: p.startswith(CONV_BLOCKS) and "running" not in p)
    moments = [m for m in fnn.tree.leaves(state.states[0]) if np.shape(m) == mask.shape]
    assert len(moments) == 2
    assert all(not m[mask].any() and m[~mask].any() for m in moments)


def test_layers_below_the_lowest_trained_one_are_not_run_backward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def spy(cls: type[Any], name: str) -> None:
        method = getattr(cls, name)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(f"{cls.__name__}.{name}")
            return method(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapped)

    for cls in (Conv2D, BatchNorm, Dense):
        spy(cls, "backward_into")
    spy(Conv2D, "input_gradient_into")
    spy(BatchNorm, "state_into")
    X, y = data()
    net = cnn()  # built after the spies: its passes look the kernels up once
    for prefixes, expected in [
        (
            CONV_BLOCKS,
            [
                "Dense.backward_into",
                "Dense.backward_into",
                "BatchNorm.state_into",
                "BatchNorm.state_into",
            ],
        ),
        (
            ("layers.4.",),
            [
                "Dense.backward_into",
                "Dense.backward_into",
                "BatchNorm.backward_into",
                "BatchNorm.state_into",  # called by backward_into
                "Conv2D.input_gradient_into",
                "BatchNorm.backward_into",
                "BatchNorm.state_into",
                "Conv2D.backward_into",
            ],
        ),
    ]:
        calls.clear()
        fnn.train_step(net, frozen(prefixes).init(net), X, y)
        assert calls == expected


def test_no_skipping_when_the_chain_mixes_leaves_or_nothing_is_frozen() -> None:
    net = cnn()
    # global-norm clipping reads every leaf's gradient: nothing may be skipped
    clipped = frozen(CONV_BLOCKS, fnn.clip_by_global_norm(1.0))
    assert unused_gradient(clipped.init(net)) is None
    assert unused_gradient(fnn.adam().init(net)) is None
    # a freeze of the running statistics alone skips nothing (they are always written)
    stats = fnn.chain(fnn.adam(), fnn.freeze(lambda p: "running" in p))
    assert unused_gradient(stats.init(net)) is None
    X, y = data()
    assert_same_bits(*three_ways(net, clipped, X, y, steps=2))
