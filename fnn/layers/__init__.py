"""Layer kinds, one module each, with their kernels (see :mod:`fnn.layers.base`)."""

from fnn.layers import activation, batch_norm, dense, dropout
from fnn.layers.activation import Activation, ActivationCache
from fnn.layers.base import (
    LAYERS,
    Context,
    Kept,
    Layer,
    LayerBase,
    LayerCache,
    LayerKind,
    Workspace,
    register_layer,
)
from fnn.layers.batch_norm import BatchNorm, BatchNormCache
from fnn.layers.dense import Dense, DenseCache
from fnn.layers.dropout import Dropout, DropoutCache

__all__ = [
    "LAYERS",
    "Activation",
    "ActivationCache",
    "BatchNorm",
    "BatchNormCache",
    "Context",
    "Dense",
    "DenseCache",
    "Dropout",
    "DropoutCache",
    "Kept",
    "Layer",
    "LayerBase",
    "LayerCache",
    "LayerKind",
    "Workspace",
    "activation",
    "batch_norm",
    "dense",
    "dropout",
    "register_layer",
]
