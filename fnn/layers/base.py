"""The layer protocol every layer kind implements, and the base of layer caches.

A layer is a frozen attrs value (its trainable arrays are leaves, its hyper-parameters
static fields) with

- ``forward(X, *, train, rng) -> (out, cache)``: ``X`` (batch, n_in) to ``out``
  (batch, n_out) and a typed cache for the backward pass;
- ``backward(cache, d_out) -> (grads, d_in)``: the gradient of the loss with respect to
  the layer's parameters, as a value of the layer's own type, and with respect to its
  input, given ``d_out`` (batch, n_out).

Each layer module (:mod:`fnn.layers.dense`, :mod:`fnn.layers.dropout`) also exposes the
same operations as plain functions ``init / forward / backward``.
"""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable

import attrs
import numpy as np

from fnn._types import FloatArray


@attrs.frozen(eq=False)
class LayerCache:
    """Base class of the typed, frozen records a layer's forward pass keeps."""


@runtime_checkable
class Layer(Protocol):
    """What a network needs of a layer."""

    @property
    def n_in(self) -> int | None:
        """Input features expected, or None if the layer takes any width."""
        ...

    @property
    def n_out(self) -> int | None:
        """Output features produced, or None if the same as the input."""
        ...

    def forward(
        self, X: FloatArray, *, train: bool, rng: np.random.Generator | None
    ) -> tuple[FloatArray, LayerCache]:
        """``X`` (batch, n_in) -> (out (batch, n_out), cache)."""
        ...

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[Self, FloatArray]:
        """(grads shaped like this layer, d_in (batch, n_in)) from ``d_out`` (batch, n_out)."""
        ...

    def config(self) -> dict[str, object]:
        """The layer's static hyper-parameters and kind, JSON-friendly."""
        ...
