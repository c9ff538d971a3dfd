"""Describing a network and drawing its parameters: :func:`mlp` and :func:`sequential`
give an :class:`~fnn.network.values.Architecture`, :func:`init` turns it into a
:class:`~fnn.network.values.Network`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn import losses as _losses
from fnn._types import RNGLike
from fnn._validation import (
    as_generator,
    as_list,
)
from fnn.layers.dropout import Dropout
from fnn.network.values import Architecture, Network, for_layers, pack, to_shape
from fnn.specs import (
    ActivationSpec,
    BatchNormSpec,
    DenseSpec,
    DropoutSpec,
    LayerSpec,
    default_initializer,
    spec_chain_shape,
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
    norm: Literal["batch"] | None = None,
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
        norm: None (the default) for ``Dense(activation)`` hidden blocks; ``"batch"``
            builds each hidden block as ``Dense`` (identity) -> :class:`BatchNorm` ->
            :class:`Activation` -> ``Dropout`` (when set), the order of the batch-norm
            paper and of PyTorch models.
        dtype: float32 or float64.

    Returns:
        An :class:`Architecture` for :func:`init`.
    """
    sizes = as_list(sizes, "sizes", "layer widths")
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 entries (inputs, outputs), got {sizes}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"sizes[{i}] must be an int, got {type(s).__name__}")
        if s < 1:
            raise ValueError(f"layer width must be >= 1, got sizes[{i}]={s}")
    the_loss = _output_loss(output, loss, sizes[-1])
    n_hidden = len(sizes) - 2
    acts = [
        _activations.get(a)
        for a in _per_layer(hidden, n_hidden, "hidden", (str, _activations.Activation))
    ]
    inits = _per_layer(initializer, n_hidden, "initializer", (str, _initializers.Initializer))
    rates = [float(r) for r in _per_layer(dropout, n_hidden, "dropout", (int, float))]
    if norm not in (None, "batch"):
        raise ValueError(f"norm must be None or 'batch', got {norm!r}")
    specs: list[LayerSpec] = []
    for i in range(n_hidden):
        ini = default_initializer(acts[i]) if inits[i] is None else inits[i]
        if norm == "batch":
            specs.append(DenseSpec(int(sizes[i]), int(sizes[i + 1]), "identity", ini))
            specs.append(BatchNormSpec())
            specs.append(ActivationSpec(acts[i]))
        else:
            specs.append(DenseSpec(int(sizes[i]), int(sizes[i + 1]), acts[i], ini))
        if rates[i] != 0.0:
            Dropout(rate=rates[i])  # validates the rate now, when the object is built
            specs.append(DropoutSpec(rates[i]))
    specs.append(DenseSpec(int(sizes[-2]), int(sizes[-1]), "identity", output_initializer))
    return Architecture(layers=tuple(specs), loss=the_loss, dtype=dtype)


def _output_loss(output: str, loss: _losses.Loss | str | None, n_outputs: int) -> _losses.Loss:
    """The loss of an output activation (its natural one when ``loss`` is None),
    checked to pair with it."""
    if output not in _losses.DEFAULT_FOR_OUTPUT:
        raise ValueError(f"unknown output {output!r}; expected 'identity', 'sigmoid' or 'softmax'")
    the_loss = _losses.DEFAULT_FOR_OUTPUT[output]() if loss is None else _losses.get(loss)
    if the_loss.output != output:
        raise ValueError(
            f"loss {the_loss.name!r} pairs with output {the_loss.output!r}, not {output!r}"
        )
    if output == "softmax" and n_outputs < 2:
        raise ValueError("a softmax output needs at least 2 units; use output='sigmoid'")
    return the_loss


def sequential(
    input_shape: int | Sequence[int | None],
    layers: Sequence[LayerSpec],
    *,
    output: _losses.OutputName = "identity",
    loss: _losses.Loss | str | None = None,
    dtype: Any = np.float64,
) -> Architecture:
    """Describe a network as a stack of layer specs (:mod:`fnn.specs`), sizes inferred.

    Args:
        input_shape: the per-sample input shape: ``(n_features,)`` (or an int) for
            vectors, ``(height, width, channels)`` for images (channels last).
        layers: specs from :mod:`fnn.specs` (``conv2d``, ``max_pool2d``, ``flatten``,
            ``dense``, ...); the last gives the logits, shape ``(n_outputs,)``.
        output: ``"identity"``, ``"sigmoid"`` or ``"softmax"``, as in :func:`mlp`.
        loss: the loss, paired with ``output`` (its natural one by default).
        dtype: float32 or float64.

    Returns:
        An :class:`Architecture` for :func:`init`.

    Raises:
        ValueError: at once, naming the layer and the shapes, when a layer cannot take
            the shape before it (a kernel larger than its padded input, a dense layer
            after a 4-D output without ``flatten()``), or the last shape is not a vector;
            when ``input_shape`` is ``()`` or no spec has parameters.
        TypeError: ``input_shape`` or ``layers`` is not a sequence (or an int).
    """
    if input_shape is None:
        as_list(input_shape, "input_shape", "positive ints")  # TypeError naming it
    shape = to_shape(input_shape)
    assert shape is not None
    specs = tuple(as_list(layers, "layers", "layer specs"))
    if not specs:
        raise ValueError("sequential needs at least one layer spec")
    current = spec_chain_shape(specs, for_layers(shape), "layers")
    if len(current) not in (1, 2):
        raise ValueError(
            f"the last layer gives outputs of shape {current}; a network ends in logits of "
            "shape (n_outputs,) or per-position logits (T, n_outputs): add flatten() or "
            "global_avg_pool2d() and a dense layer"
        )
    if not any(getattr(spec, "has_parameters", True) for spec in specs):
        raise ValueError(
            f"a network needs at least one layer with parameters, but none of "
            f"{', '.join(type(s).__name__ for s in specs)} has any: add one such as "
            f"fnn.specs.dense({current[-1]})"
        )
    the_loss = _output_loss(output, loss, current[-1])
    return Architecture(layers=specs, loss=the_loss, dtype=dtype, input_shape=shape)


def init(architecture: Architecture, *, rng: RNGLike) -> Network:
    """Draw a network's initial parameters.

    Args:
        architecture: from :func:`mlp` or :func:`sequential`.
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
    return pack(architecture.build(gen))
