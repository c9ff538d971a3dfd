"""fnn: neural networks in pure NumPy, as pure functions over immutable, typed
parameter trees.

The four functions::

    net = fnn.init(fnn.mlp([2, 16, 1], output="sigmoid"), rng=0)
    out, cache = fnn.forward(net, X)
    grads = fnn.backward(net, cache, y)
    net, state = fnn.update(net, grads, state)
"""

from fnn import (
    activations,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    optim,
    schedules,
    testing,
    tree,
)
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
from fnn.optim import (
    Optimizer,
    OptState,
    adagrad,
    adam,
    adamw,
    add_decayed_weights,
    chain,
    clip_by_global_norm,
    freeze,
    rmsprop,
    sgd,
    update,
    weights_only,
)
from fnn.schedules import ReduceOnPlateau
from fnn.serialization import Checkpoint, load, save
from fnn.training import (
    EarlyStopping,
    EpochRecord,
    History,
    TrainingDiverged,
    evaluate,
    fit,
    train_step,
)

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Checkpoint",
    "Dense",
    "DenseCache",
    "DenseSpec",
    "Dropout",
    "DropoutCache",
    "DropoutSpec",
    "EarlyStopping",
    "EpochRecord",
    "History",
    "Layer",
    "LayerCache",
    "Network",
    "NetworkCache",
    "OptState",
    "Optimizer",
    "ReduceOnPlateau",
    "TrainingDiverged",
    "__version__",
    "activations",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "backward",
    "chain",
    "clip_by_global_norm",
    "datasets",
    "dense",
    "dropout",
    "evaluate",
    "fit",
    "forward",
    "freeze",
    "init",
    "initializers",
    "layers",
    "load",
    "loss",
    "losses",
    "metrics",
    "mlp",
    "optim",
    "predict",
    "rmsprop",
    "save",
    "schedules",
    "serialization",
    "sgd",
    "testing",
    "train_step",
    "tree",
    "update",
    "value_and_grad",
    "weights_only",
]
