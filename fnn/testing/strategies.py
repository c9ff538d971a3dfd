"""Hypothesis strategies for property tests of networks and layers (needs hypothesis).

from hypothesis import given
from fnn.testing import strategies as fst

@given(fst.networks_and_batches())
def test_my_property(case): net, X, y = case
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from fnn import tree
from fnn.activations import ACTIVATIONS
from fnn.losses import LOSSES as _LOSS_KINDS
from fnn.losses import OutputName
from fnn.network import Architecture, Network, init, mlp

__all__ = [
    "HIDDEN_ACTIVATIONS",
    "LOSSES",
    "architectures",
    "batches",
    "hidden_activations",
    "losses",
    "networks",
    "networks_and_batches",
    "targets",
]


def hidden_activations() -> tuple[str, ...]:
    """The names of the registered activations (``fnn.activations.ACTIVATIONS``), each
    kind once under its own name, read when called: a kind registered later (a user's)
    is drawn too."""
    return tuple(name for name, cls in ACTIVATIONS.items() if name == cls.name)


HIDDEN_ACTIVATIONS = hidden_activations()
"""The activations registered when this module was imported (the built-in ones)."""


def losses() -> tuple[tuple[OutputName, str], ...]:
    """``(output activation, loss name)`` of the registered losses
    (``fnn.losses.LOSSES``), each kind once under its own name, read when called: a
    kind registered later (a user's) is drawn too."""
    return tuple((cls.output, name) for name, cls in _LOSS_KINDS.items() if name == cls.name)


LOSSES = losses()
"""The losses registered when this module was imported (the built-in ones)."""


@st.composite
def architectures(
    draw: st.DrawFn,
    /,
    *,
    max_depth: int = 3,
    max_width: int = 6,
    dtype: Any = np.float64,
    dropout: bool = True,
) -> Architecture:
    """MLP architectures of 0..max_depth hidden layers with random activations, output
    and loss pairs, and (optionally) dropout."""
    depth = draw(st.integers(0, max_depth))
    output, loss = draw(st.sampled_from(losses()))
    n_in = draw(st.integers(1, max_width))
    n_out = draw(st.integers(2 if output == "softmax" else 1, max_width))
    hidden = [draw(st.integers(1, max_width)) for _ in range(depth)]
    names = hidden_activations()
    acts = [draw(st.sampled_from(names)) for _ in range(depth)]
    rates = [draw(st.sampled_from([0.0, 0.0, 0.3])) if dropout else 0.0 for _ in range(depth)]
    return mlp(
        [n_in, *hidden, n_out], hidden=acts, output=output, loss=loss, dropout=rates, dtype=dtype
    )


@st.composite
def networks(draw: st.DrawFn, /, **kwargs: Any) -> Network:
    """Networks from :func:`architectures` with every parameter (biases included) drawn
    at random, so no unit sits exactly on a kink (ReLU at 0) as zero biases would make
    it."""
    arch = draw(architectures(**kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    net = init(arch, rng=seed)
    flat = tree.ravel(net)
    noise = np.random.default_rng(seed).normal(scale=0.3, size=flat.shape).astype(flat.dtype)
    return tree.unravel(net, flat + noise)


@st.composite
def batches(
    draw: st.DrawFn, /, n_features: int, *, max_samples: int = 8, dtype: Any = np.float64
) -> np.ndarray[Any, Any]:
    """Input batches (n, n_features) of moderate, finite values."""
    n = draw(st.integers(1, max_samples))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    return (np.random.default_rng(seed).standard_normal((n, n_features)) * scale).astype(dtype)


def targets(net: Network, n: int, seed: int) -> np.ndarray[Any, Any]:
    """Valid targets for ``net``'s loss: labels, 0/1 values or real values."""
    gen = np.random.default_rng(seed)
    k = net.n_outputs
    if net.loss.output == "softmax":
        return gen.integers(0, k, size=n)
    if net.loss.output == "sigmoid":
        return gen.integers(0, 2, size=(n, k)).astype(np.float64)
    return gen.standard_normal((n, k))


@st.composite
def networks_and_batches(
    draw: st.DrawFn, /, *, max_samples: int = 8, **kwargs: Any
) -> tuple[Network, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(net, X, y)`` with matching shapes and valid targets."""
    net = draw(networks(**kwargs))
    X = draw(
        batches(net.n_features, max_samples=max_samples, dtype=kwargs.get("dtype", np.float64))
    )
    y = targets(net, X.shape[0], draw(st.integers(0, 2**32 - 1)))
    return net, X, y
