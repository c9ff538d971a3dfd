"""A network's layers, shapes and parameter counts as a table, in the manner of Keras'
``model.summary()`` and torchinfo.

``fnn.summary(net)`` returns the table as a string (print it to see it)::

    >>> print(fnn.summary(fnn.mlp([2, 16, 16, 1], output="sigmoid")))  # doctest: +SKIP
    #  Layer        Output shape  Trainable  Non-trainable
    ======================================================
       Input        (None, 2)
    0  Dense(relu)  (None, 16)           48              0
    1  Dense(relu)  (None, 16)          272              0
    2  Dense        (None, 1)            17              0
    ======================================================
    Total params: 337
    Trainable params: 337
    Non-trainable params: 0
    Dtype: float64, 2,696 bytes (2.70 KB)
    Loss: binary_cross_entropy (sigmoid output)

Output shapes are per sample, with ``None`` for the batch axis. Non-trainable
parameters are the leaves declared with :func:`fnn.tree.state_field` (a batch-norm
layer's running statistics). Sizes in bytes use powers of 1000 (1 KB = 1,000 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn.activations import Activation
from fnn.layers.base import output_shape_of
from fnn.network import Architecture, Network

__all__ = ["summary"]

_HEADER = ("#", "Layer", "Output shape", "Trainable", "Non-trainable")


def _check_shape(input_shape: object) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (an int means ``(int,)``)."""
    shape: Any = input_shape
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"input_shape must be a tuple of ints (one sample's shape, without the batch "
            f"axis, e.g. (784,)), got {type(input_shape).__name__}"
        )
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            raise ValueError(
                f"input_shape must hold positive ints (one sample's shape, without the "
                f"batch axis), got {tuple(shape)!r}"
            )
    return tuple(int(d) for d in shape)


def _network(net_or_architecture: object, input_shape: object) -> tuple[Network, list[Any]]:
    """The network to describe and its per-sample input and output shapes."""
    shape = None if input_shape is None else _check_shape(input_shape)
    if isinstance(net_or_architecture, Architecture):
        arch = net_or_architecture
        if shape is not None:
            arch = attrs.evolve(arch, input_shape=shape)
        try:
            # parameters drawn from a fixed generator, only to count them and infer shapes
            net = arch.build(np.random.default_rng(0))
        except ValueError as e:
            if shape is None and arch.input_shape is None:
                raise ValueError(
                    f"{e}; pass input_shape= (one sample's shape, e.g. (784,)) to summary"
                ) from None
            raise
    elif isinstance(net_or_architecture, Network):
        net = net_or_architecture
    else:
        got = type(net_or_architecture).__name__
        hint = ""
        if isinstance(net_or_architecture, list | tuple):
            hint = (
                "; to describe a list of layers, make a network of them first: "
                "fnn.Network(layers=[...], loss=...)"
            )
        raise TypeError(
            "summary takes an fnn.Network (from fnn.init) or an fnn.Architecture (from "
            f"fnn.mlp), got {got}{hint}"
        )
    first = net.input_shape if shape is None else shape
    assert first is not None
    shapes: list[Any] = [first]
    if shape is None or shape == net.input_shape:
        shapes += list(net.shapes)
    else:
        for i, layer in enumerate(net.layers):
            shapes.append(output_shape_of(layer, shapes[-1], f"layers.{i}"))
    return net, shapes


def _kind(layer: object) -> str:
    """The layer's class name, with its activation (``Dense(relu)``) or dropout rate."""
    name = type(layer).__name__
    act = getattr(layer, "activation", None)
    if isinstance(act, Activation):
        if act.name != "identity" or not tree.leaves(layer):  # an activation layer
            return f"{name}({act.name})"
        return name
    rate = getattr(layer, "rate", None)
    if isinstance(rate, float):
        return f"{name}({rate:g})"
    return name


def _counts(layer: object) -> tuple[int, int]:
    """(trainable, non-trainable) numbers of parameters of one layer."""
    trainable = tree.trainable_mask(layer)
    counts = [0, 0]
    for path, leaf in tree.leaves_with_paths(layer):
        counts[0 if trainable[path] else 1] += int(np.size(leaf))
    return counts[0], counts[1]


def _rows(
    index: str,
    layer: object,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    depth: int,
) -> list[tuple[str, str, str, str, str]]:
    """The row of ``layer`` and, below it and indented, the rows of the layers inside it
    (a composite's chains, e.g. ``3.body.0``), each with its own output shape."""
    t, s = _counts(layer)
    rows = [(index, "  " * depth + _kind(layer), _shape(out_shape), f"{t:,}", f"{s:,}")]
    for name, layers in getattr(layer, "chains", ()):
        shape = in_shape
        for j, inner in enumerate(layers):
            where = f"{index}.{name}.{j}"
            out = output_shape_of(inner, shape, where)
            rows += _rows(where, inner, shape, out, depth + 1)
            shape = out
    return rows


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(["None", *(str(d) for d in shape)]) + ")"


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def summary(net_or_architecture: Network | Architecture, input_shape: Any = None) -> str:
    """A table of the network's layers: kind, output shape, parameter counts and totals.

    Args:
        net_or_architecture: a :class:`~fnn.Network`, or an :class:`~fnn.Architecture`
            (from :func:`fnn.mlp`), whose parameters are drawn once from a fixed
            generator to infer the shapes (nothing random is shown).
        input_shape: one sample's shape, without the batch axis (``(784,)``), where the
            layers alone do not fix it. A network knows its own; given, the output
            shapes are inferred for it (ValueError naming the layer that does not fit).

    Returns:
        The table as a string (``print`` it): one row per layer with its index, kind
        (class name and activation, e.g. ``Dense(relu)``), per-sample output shape
        (``(None, 16)``, ``None`` being the batch), trainable and non-trainable
        parameter counts; then the totals (thousands separated), the dtype, the
        parameters' size in bytes, and the loss.

    Raises:
        TypeError: neither a network nor an architecture (the message says what to pass).
    """
    net, shapes = _network(net_or_architecture, input_shape)
    rows = [("", "Input", _shape(shapes[0]), "", "")]
    n_trainable = n_state = 0
    for i, layer in enumerate(net.layers):
        t, s = _counts(layer)
        n_trainable += t
        n_state += s
        rows += _rows(str(i), layer, shapes[i], shapes[i + 1], 0)
    widths = [max(len(r[c]) for r in [_HEADER, *rows]) for c in range(len(_HEADER))]
    right = (False, False, False, True, True)  # numbers right-aligned

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
    total = n_trainable + n_state
    dtype = net.dtype
    loss = net.loss
    out = [
        line(_HEADER),
        rule,
        *(line(r) for r in rows),
        rule,
        f"Total params: {total:,}",
        f"Trainable params: {n_trainable:,}",
        f"Non-trainable params: {n_state:,}",
        f"Dtype: {dtype}, {total * dtype.itemsize:,} bytes ({_bytes(total * dtype.itemsize)})",
        f"Loss: {loss.name} ({loss.output} output)",
    ]
    return "\n".join(out)
