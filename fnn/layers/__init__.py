"""Layer kinds, one module each, with their kernels (see :mod:`fnn.layers.base`)."""

from fnn.layers import activation, batch_norm, dense, dropout, flatten, layer_norm
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
from fnn.layers.flatten import Flatten, FlattenCache
from fnn.layers.layer_norm import LayerNorm, LayerNormCache

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
    "Flatten",
    "FlattenCache",
    "Kept",
    "Layer",
    "LayerBase",
    "LayerCache",
    "LayerKind",
    "LayerNorm",
    "LayerNormCache",
    "Workspace",
    "activation",
    "batch_norm",
    "dense",
    "dropout",
    "flatten",
    "layer_norm",
    "register_layer",
]
