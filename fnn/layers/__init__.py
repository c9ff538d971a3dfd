"""Layer kinds. Each module exposes ``init / forward / backward`` and a frozen params class."""

from fnn.layers import dense, dropout
from fnn.layers.base import Layer, LayerCache
from fnn.layers.dense import Dense, DenseCache
from fnn.layers.dropout import Dropout, DropoutCache

__all__ = [
    "Dense",
    "DenseCache",
    "Dropout",
    "DropoutCache",
    "Layer",
    "LayerCache",
    "dense",
    "dropout",
]
