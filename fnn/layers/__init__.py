"""Layer kinds, one module each, with their kernels (see :mod:`fnn.layers.base`)."""

from fnn.layers import (
    activation,
    attention,
    batch_norm,
    composite,
    conv2d,
    dense,
    dropout,
    embedding,
    flatten,
    layer_norm,
    pool2d,
    positional_embedding,
    recurrent,
)
from fnn.layers.activation import Activation, ActivationCache
from fnn.layers.attention import MultiHeadAttention, MultiHeadAttentionCache
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
from fnn.layers.composite import Composite, CompositeCache, Parallel, Residual
from fnn.layers.conv2d import Conv2D, Conv2DCache
from fnn.layers.dense import Dense, DenseCache
from fnn.layers.dropout import Dropout, DropoutCache
from fnn.layers.embedding import Embedding, EmbeddingCache
from fnn.layers.flatten import Flatten, FlattenCache
from fnn.layers.layer_norm import LayerNorm, LayerNormCache
from fnn.layers.pool2d import AvgPool2D, GlobalAvgPool2D, MaxPool2D, MaxPool2DCache
from fnn.layers.positional_embedding import PositionalEmbedding, PositionalEmbeddingCache
from fnn.layers.recurrent import (
    GRU,
    LSTM,
    GRUCache,
    LSTMCache,
    Recurrent,
    SimpleRNN,
    SimpleRNNCache,
)

__all__ = [
    "GRU",
    "LAYERS",
    "LSTM",
    "Activation",
    "ActivationCache",
    "AvgPool2D",
    "BatchNorm",
    "BatchNormCache",
    "Composite",
    "CompositeCache",
    "Context",
    "Conv2D",
    "Conv2DCache",
    "Dense",
    "DenseCache",
    "Dropout",
    "DropoutCache",
    "Embedding",
    "EmbeddingCache",
    "Flatten",
    "FlattenCache",
    "GRUCache",
    "GlobalAvgPool2D",
    "Kept",
    "LSTMCache",
    "Layer",
    "LayerBase",
    "LayerCache",
    "LayerKind",
    "LayerNorm",
    "LayerNormCache",
    "MaxPool2D",
    "MaxPool2DCache",
    "MultiHeadAttention",
    "MultiHeadAttentionCache",
    "Parallel",
    "PositionalEmbedding",
    "PositionalEmbeddingCache",
    "Recurrent",
    "Residual",
    "SimpleRNN",
    "SimpleRNNCache",
    "Workspace",
    "activation",
    "attention",
    "batch_norm",
    "composite",
    "conv2d",
    "dense",
    "dropout",
    "embedding",
    "flatten",
    "layer_norm",
    "pool2d",
    "positional_embedding",
    "recurrent",
    "register_layer",
]
