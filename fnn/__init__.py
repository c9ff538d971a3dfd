"""fnn: neural networks in pure NumPy, as pure functions over immutable, typed
parameter trees.

The four functions::

    net = fnn.init(fnn.mlp([2, 16, 1], output="sigmoid"), rng=0)
    out, cache = fnn.forward(net, X)
    grads = fnn.backward(net, cache, y)
    net, state = fnn.update(net, grads, state)
"""

from types import ModuleType as _ModuleType
from typing import TYPE_CHECKING
from typing import Final as _Final

from fnn import (
    activations,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    optim,
    schedules,
    specs,
    testing,
    threads,
    tree,
)
from fnn._version import VERSION
from fnn.generation import generate
from fnn.layers import (
    GRU,
    LSTM,
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    DenseCache,
    Dropout,
    DropoutCache,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LayerCache,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    Parallel,
    PositionalEmbedding,
    Residual,
    SimpleRNN,
    dense,
    dropout,
)
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
    sequential,
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
from fnn.summary import summary
from fnn.threads import get_num_threads, set_num_threads
from fnn.training import (
    EarlyStopping,
    EpochRecord,
    FitHistory,
    History,
    TrainingDiverged,
    evaluate,
    fit,
    train_step,
)

__version__ = VERSION

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Architecture",
    "AvgPool2D",
    "BatchNorm",
    "Checkpoint",
    "Conv2D",
    "Dense",
    "DenseCache",
    "DenseSpec",
    "Dropout",
    "DropoutCache",
    "DropoutSpec",
    "EarlyStopping",
    "Embedding",
    "EpochRecord",
    "FitHistory",
    "Flatten",
    "GlobalAvgPool2D",
    "History",
    "Layer",
    "LayerCache",
    "LayerNorm",
    "MaxPool2D",
    "MultiHeadAttention",
    "Network",
    "NetworkCache",
    "OptState",
    "Optimizer",
    "Parallel",
    "PositionalEmbedding",
    "ReduceOnPlateau",
    "Residual",
    "SimpleRNN",
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
    "generate",
    "get_num_threads",
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
    "sequential",
    "serialization",
    "set_num_threads",
    "sgd",
    "specs",
    "summary",
    "testing",
    "threads",
    "train_step",
    "tree",
    "update",
    "value_and_grad",
    "weights_only",
]

# Optional integrations, imported on first attribute access (PEP 562), so that
# `import fnn` needs only numpy and attrs while `fnn.plot.training_curves(...)` works
# after a plain `import fnn`. A new one is its name in _LAZY_MODULES and an import line
# below (which gives mypy the module's real types). They stay out of __all__: a
# star import must not import scikit-learn.
_LAZY_MODULES: _Final = ("distributed", "onnx", "plot", "sklearn")
if TYPE_CHECKING:
    from fnn import distributed as distributed
    from fnn import onnx as onnx
    from fnn import plot as plot
    from fnn import sklearn as sklearn


if not TYPE_CHECKING:  # hidden from mypy, which would accept any fnn.<typo> otherwise

    def __getattr__(name: str) -> _ModuleType:
        if name in _LAZY_MODULES:
            import importlib

            return importlib.import_module(f"fnn.{name}")  # also sets it as an attribute
        raise AttributeError(f"module 'fnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES})
