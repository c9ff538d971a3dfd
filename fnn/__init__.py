"""fnn: neural networks in pure NumPy, as pure functions over immutable, typed
parameter trees.

The four functions::

    net = fnn.init(fnn.mlp([2, 16, 1], output="sigmoid"), rng=0)
    out, cache = fnn.forward(net, X)
    grads = fnn.backward(net, cache, y)
    net, state = fnn.update(net, grads, state)
"""

from fnn import activations, initializers, layers, losses, testing, tree
from fnn.layers import Dense, DenseCache, Dropout, DropoutCache, Layer, LayerCache, dense, dropout
from fnn.network import (
    Architecture,
    DenseSpec,
    DropoutSpec,
    Network,
    NetworkCache,
    backward,
    forward,
    init,
    loss,
    mlp,
    predict,
    value_and_grad,
)

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Dense",
    "DenseCache",
    "DenseSpec",
    "Dropout",
    "DropoutCache",
    "DropoutSpec",
    "Layer",
    "LayerCache",
    "Network",
    "NetworkCache",
    "__version__",
    "activations",
    "backward",
    "dense",
    "dropout",
    "forward",
    "init",
    "initializers",
    "layers",
    "loss",
    "losses",
    "mlp",
    "predict",
    "testing",
    "tree",
    "value_and_grad",
]
