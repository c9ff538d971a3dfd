"""Networks: a sequence of layers ending in logits, and the loss that pairs with them.

The four functions of fnn live here:

- :func:`init` turns an architecture (from :func:`mlp`) into a :class:`Network`;
- :func:`forward` computes the output (after the output activation) and a cache;
- :func:`backward` computes the gradient of the network's loss, as a :class:`Network`;
- :func:`predict` is inference: no dropout, no cache.

(``update`` is in :mod:`fnn.optim`.) A network is a frozen attrs value; its arrays are
read-only views of one contiguous buffer (see :func:`fnn.tree.pack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn import losses as _losses
from fnn._types import ArrayLike, FloatArray, RNGLike
from fnn._validation import as_generator, check_sample_weight, check_X, float_dtype
from fnn.layers import dense as _dense
from fnn.layers.base import Layer, LayerCache
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.tree import STATIC_META, leaves_with_paths, pack

__all__ = [
    "Architecture",
    "DenseSpec",
    "DropoutSpec",
    "LayerSpec",
    "Network",
    "NetworkCache",
    "backward",
    "forward",
    "init",
    "loss",
    "mlp",
    "predict",
    "value_and_grad",
]


# --- architectures -----------------------------------------------------------------


class LayerSpec(Protocol):
    """A description of a layer that can draw its initial parameters."""

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any]) -> Layer:
        """The layer with freshly drawn parameters of ``dtype``."""
        ...


@attrs.frozen
class DenseSpec:
    """A dense layer of ``n_in -> n_out`` units with its activation and initialiser."""

    n_in: int
    n_out: int
    activation: _activations.Activation = attrs.field(converter=_activations.get)
    initializer: _initializers.Initializer = attrs.field(converter=_initializers.get)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any]) -> Dense:
        return _dense.init(
            self.n_in,
            self.n_out,
            rng=rng,
            activation=self.activation,
            initializer=self.initializer,
            dtype=dtype,
        )


@attrs.frozen
class DropoutSpec:
    """A dropout layer dropping units with probability ``rate``."""

    rate: float

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any]) -> Dropout:
        return Dropout(rate=self.rate)


@attrs.frozen
class Architecture:
    """What :func:`init` builds: layer descriptions, the loss (which fixes the output
    activation) and the float dtype of the parameters."""

    layers: tuple[LayerSpec, ...]
    loss: _losses.Loss
    dtype: np.dtype[Any] = attrs.field(converter=float_dtype)


_RELU_LIKE = (_activations.ReLU, _activations.LeakyReLU, _activations.ELU, _activations.GELU)


def _default_initializer(act: _activations.Activation) -> _initializers.Initializer:
    return (
        _initializers.HeNormal() if isinstance(act, _RELU_LIKE) else _initializers.GlorotUniform()
    )


def _per_layer(value: Any, n: int, name: str, scalar_types: tuple[type, ...]) -> list[Any]:
    if isinstance(value, scalar_types) or value is None:
        return [value] * n
    if isinstance(value, Sequence):
        if len(value) != n:
            raise ValueError(
                f"{name} has {len(value)} entries but the network has {n} hidden layers"
            )
        return list(value)
    return [value] * n


def mlp(
    sizes: Sequence[int],
    *,
    hidden: _activations.Activation | str | Sequence[_activations.Activation | str] = "relu",
    output: _losses.OutputName = "identity",
    loss: _losses.Loss | str | None = None,
    initializer: _initializers.Initializer
    | str
    | Sequence[_initializers.Initializer | str]
    | None = None,
    output_initializer: _initializers.Initializer | str = "glorot_uniform",
    dropout: float | Sequence[float] = 0.0,
    dtype: Any = np.float64,
) -> Architecture:
    """Describe a multilayer perceptron.

    Args:
        sizes: ``[n_features, hidden_1, ..., n_outputs]``, each >= 1.
        hidden: the hidden activation, or one per hidden layer.
        output: ``"identity"``, ``"sigmoid"`` or ``"softmax"``; with ``loss`` it forms a
            named pair (identity + mse/mae/huber, sigmoid + binary cross-entropy,
            softmax + cross-entropy). The default loss is the output's natural one.
        loss: a loss name or value, or None for the output's default.
        initializer: hidden weights' initialiser, or one per hidden layer; default He
            normal for ReLU-like activations and Glorot uniform otherwise.
        output_initializer: the output layer's initialiser.
        dropout: dropout rate after each hidden layer, or one per hidden layer.
        dtype: float32 or float64.

    Returns:
        An :class:`Architecture` for :func:`init`.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 entries (inputs, outputs), got {sizes}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"sizes[{i}] must be an int, got {type(s).__name__}")
        if s < 1:
            raise ValueError(f"layer width must be >= 1, got sizes[{i}]={s}")
    if output not in _losses.DEFAULT_FOR_OUTPUT:
        raise ValueError(f"unknown output {output!r}; expected 'identity', 'sigmoid' or 'softmax'")
    the_loss = _losses.DEFAULT_FOR_OUTPUT[output]() if loss is None else _losses.get(loss)
    if the_loss.output != output:
        raise ValueError(
            f"loss {the_loss.name!r} pairs with output {the_loss.output!r}, not {output!r}"
        )
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output needs at least 2 units; use output='sigmoid'")
    n_hidden = len(sizes) - 2
    acts = [
        _activations.get(a)
        for a in _per_layer(hidden, n_hidden, "hidden", (str, _activations.Activation))
    ]
    inits = _per_layer(initializer, n_hidden, "initializer", (str, _initializers.Initializer))
    rates = [float(r) for r in _per_layer(dropout, n_hidden, "dropout", (int, float))]
    specs: list[LayerSpec] = []
    for i in range(n_hidden):
        ini = _default_initializer(acts[i]) if inits[i] is None else inits[i]
        specs.append(DenseSpec(int(sizes[i]), int(sizes[i + 1]), acts[i], ini))
        if rates[i] != 0.0:
            Dropout(rate=rates[i])  # validates the rate now, when the object is built
            specs.append(DropoutSpec(rates[i]))
    specs.append(DenseSpec(int(sizes[-2]), int(sizes[-1]), "identity", output_initializer))
    return Architecture(layers=tuple(specs), loss=the_loss, dtype=dtype)


# --- networks ----------------------------------------------------------------------


def _to_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    return tuple(layers)


@attrs.frozen(eq=False)
class Network:
    """A network's parameters (and, with the same type, their gradients).

    Attributes:
        layers: the layers in order; the last produces the logits (n, n_outputs).
        loss: the loss, which fixes the output activation (static).

    Built by :func:`init`, or directly from arrays::

        Network(layers=[Dense(W=[[2, 4], [4, -5]], activation="relu"), Dense(W=[[2], [7]])],
                loss="mse")
    """

    layers: tuple[Layer, ...] = attrs.field(converter=_to_layers)
    loss: _losses.Loss = attrs.field(converter=_losses.get, metadata=STATIC_META)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        width: int | None = None
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers.{i} is a {type(layer).__name__}, not an fnn layer")
            if layer.n_in is not None:
                if width is not None and layer.n_in != width:
                    raise ValueError(
                        f"layers.{i} expects {layer.n_in} inputs but the previous layer "
                        f"gives {width} (layers.{i}.W has the wrong shape)"
                    )
                width = layer.n_out
        if width is None:
            raise ValueError("a network needs at least one layer with parameters")
        dtypes = {p: x.dtype for p, x in leaves_with_paths(self)}
        first = next(iter(dtypes.values()))
        for p, d in dtypes.items():
            if d != first:
                raise ValueError(f"'{p}' has dtype {d}, but the network's dtype is {first}")

    @property
    def n_features(self) -> int:
        """Input features expected."""
        for layer in self.layers:
            if layer.n_in is not None:
                return layer.n_in
        raise AssertionError("unreachable: checked at construction")

    @property
    def n_outputs(self) -> int:
        """Output units (logits per sample)."""
        for layer in reversed(self.layers):
            if layer.n_out is not None:
                return layer.n_out
        raise AssertionError("unreachable: checked at construction")

    @property
    def dtype(self) -> np.dtype[Any]:
        """The float dtype of every parameter."""
        return leaves_with_paths(self)[0][1].dtype  # type: ignore[no-any-return]

    @property
    def has_dropout(self) -> bool:
        return any(isinstance(layer, Dropout) and layer.rate > 0 for layer in self.layers)


@attrs.frozen(eq=False)
class NetworkCache:
    """What :func:`forward` keeps for :func:`backward`.

    Attributes:
        layers: one cache per layer.
        logits: the last layer's output (n, n_outputs), before the output activation.
        out: the output activation of the logits (n, n_outputs).
    """

    layers: tuple[LayerCache, ...]
    logits: FloatArray
    out: FloatArray


def init(architecture: Architecture, *, rng: RNGLike) -> Network:
    """Draw a network's initial parameters.

    Args:
        architecture: from :func:`mlp`.
        rng: a ``np.random.Generator`` or an int seed; the same seed gives the same bits.

    Returns:
        A :class:`Network` whose arrays are read-only views of one contiguous buffer.
    """
    if not isinstance(architecture, Architecture):
        raise TypeError(
            f"architecture must be an fnn.Architecture (from fnn.mlp), got "
            f"{type(architecture).__name__}"
        )
    gen = as_generator(rng)
    layers = [spec.init(rng=gen, dtype=architecture.dtype) for spec in architecture.layers]
    return pack(Network(layers=layers, loss=architecture.loss))


def _check_network(params: object) -> Network:
    if not isinstance(params, Network):
        raise TypeError(f"params must be an fnn.Network, got {type(params).__name__}")
    return params


def _forward(
    params: Network, X: FloatArray, train: bool, rng: np.random.Generator | None
) -> tuple[FloatArray, NetworkCache]:
    caches: list[LayerCache] = []
    h = X
    for layer in params.layers:
        h, c = layer.forward(h, train=train, rng=rng)
        caches.append(c)
    out = params.loss.link(h)
    return out, NetworkCache(layers=tuple(caches), logits=h, out=out)


def forward(
    params: Network, X: ArrayLike, *, train: bool = False, rng: RNGLike | None = None
) -> tuple[FloatArray, NetworkCache]:
    """Run the network on a batch.

    Args:
        params: the network.
        X: inputs (n_samples, n_features); converted once to the network's dtype.
        train: training mode (dropout active). Needs ``rng`` if the network has dropout.
        rng: a Generator or int seed for dropout masks.

    Returns:
        ``(out, cache)``: ``out`` (n_samples, n_outputs) after the output activation
        (probabilities for sigmoid/softmax outputs), and the cache for :func:`backward`.
    """
    params = _check_network(params)
    Xa = check_X(X, n_features=params.n_features, dtype=params.dtype)
    gen = None if rng is None else as_generator(rng)
    if train and gen is None and params.has_dropout:
        raise ValueError("rng is required when train=True and the network has dropout")
    return _forward(params, Xa, train, gen)


def _backprop(params: Network, cache: NetworkCache, d: FloatArray) -> Network:
    """The layers' backward passes from ``d = dL/dlogits`` (n, n_outputs)."""
    grads: list[Layer] = []
    for layer, c in zip(reversed(params.layers), reversed(cache.layers), strict=True):
        g, d = layer.backward(c, d)
        grads.append(g)
    return Network(layers=tuple(reversed(grads)), loss=params.loss)


def _check_cache(params: Network, cache: object) -> NetworkCache:
    if not isinstance(cache, NetworkCache):
        raise TypeError(
            f"cache must be an fnn.NetworkCache from forward, got {type(cache).__name__}"
        )
    if len(cache.layers) != len(params.layers) or cache.logits.shape[1] != params.n_outputs:
        raise ValueError("cache does not come from a forward pass of this network")
    return cache


def backward(
    params: Network, cache: NetworkCache, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> Network:
    """Gradient of the network's mean loss with respect to its parameters.

    Args:
        params: the network given to :func:`forward`.
        cache: the cache :func:`forward` returned.
        y: targets: (n,) or (n, 1) for one output; (n, k) for k outputs; integer labels
            (n,) or probabilities (n, k) for softmax cross-entropy.
        sample_weight: optional non-negative weights (n,); the loss is their weighted mean.

    Returns:
        A :class:`Network` of the same structure whose arrays are the gradients.
    """
    params = _check_network(params)
    cache = _check_cache(params, cache)
    n, k = cache.logits.shape
    ya = params.loss.targets(y, n, k, params.dtype)
    w = check_sample_weight(sample_weight, n, params.dtype)
    return _backprop(params, cache, params.loss.grad(cache.logits, ya, w))


def value_and_grad(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    train: bool = False,
    rng: RNGLike | None = None,
) -> tuple[float, Network]:
    """``(loss, grads)`` for a batch: :func:`forward` then :func:`backward`."""
    params = _check_network(params)
    _, cache = forward(params, X, train=train, rng=rng)
    n, k = cache.logits.shape
    ya = params.loss.targets(y, n, k, params.dtype)
    w = check_sample_weight(sample_weight, n, params.dtype)
    value, d = params.loss.value_and_grad(cache.logits, ya, w)  # one pass for both
    return value, _backprop(params, cache, d)


def loss(
    params: Network, X: ArrayLike, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> float:
    """The network's mean loss on ``(X, y)`` at inference (no dropout), a float."""
    params = _check_network(params)
    Xa = check_X(X, n_features=params.n_features, dtype=params.dtype)
    logits = _logits(params, Xa)
    n, k = logits.shape
    ya = params.loss.targets(y, n, k, params.dtype)
    w = check_sample_weight(sample_weight, n, params.dtype)
    return params.loss.value(logits, ya, w)


def _logits(params: Network, X: FloatArray) -> FloatArray:
    h = X
    for layer in params.layers:
        h, _ = layer.forward(h, train=False, rng=None)
    return h


def predict(params: Network, X: ArrayLike) -> FloatArray:
    """Inference: the output (n_samples, n_outputs) after the output activation, with
    dropout off and no cache kept."""
    params = _check_network(params)
    Xa = check_X(X, n_features=params.n_features, dtype=params.dtype)
    return params.loss.link(_logits(params, Xa))
