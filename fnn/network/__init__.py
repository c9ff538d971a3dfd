"""Networks: a sequence of layers ending in logits, and the loss that pairs with them.

The four functions of fnn live here:

- :func:`init` turns an architecture (from :func:`mlp` or :func:`sequential`) into a
  :class:`Network`;
- :func:`forward` computes the output (after the output activation) and a cache;
- :func:`backward` computes the gradient of the network's loss, as a :class:`Network`;
- :func:`predict` is inference: no dropout, no cache.

(``update`` is in :mod:`fnn.optim`.) A network is a frozen attrs value; its arrays are
read-only views of one contiguous buffer (see :func:`pack`).

The package holds one concept per module: :mod:`~fnn.network.values` (the records and
the checks at their boundary), :mod:`~fnn.network.architecture` (describing a network
and drawing its parameters), :mod:`~fnn.network.passes` (the pure functions and the one
training step), :mod:`~fnn.network.skip` (leaving out unread gradients),
:mod:`~fnn.network.inference` (chunked, cache-free inference) and ``_plan`` (the
passes a structure fixes).
"""

from fnn.network._plan import GradientSkip as GradientSkip
from fnn.network.architecture import init as init
from fnn.network.architecture import mlp as mlp
from fnn.network.architecture import sequential as sequential
from fnn.network.inference import inference_rows as inference_rows
from fnn.network.inference import logits_of as logits_of
from fnn.network.inference import predict as predict
from fnn.network.passes import backward as backward
from fnn.network.passes import batch_gradient as batch_gradient
from fnn.network.passes import forward as forward
from fnn.network.passes import fresh_gradient as fresh_gradient
from fnn.network.passes import loss as loss
from fnn.network.passes import training_inputs as training_inputs
from fnn.network.passes import value_and_grad as value_and_grad
from fnn.network.skip import gradient_skip as gradient_skip
from fnn.network.values import Architecture as Architecture
from fnn.network.values import Network as Network
from fnn.network.values import NetworkCache as NetworkCache
from fnn.network.values import check_input as check_input
from fnn.network.values import check_network as check_network
from fnn.network.values import from_flat as from_flat
from fnn.network.values import output_length as output_length
from fnn.network.values import pack as pack
from fnn.network.values import prepare_targets as prepare_targets
from fnn.specs import ActivationSpec as ActivationSpec
from fnn.specs import BatchNormSpec as BatchNormSpec
from fnn.specs import DenseSpec as DenseSpec
from fnn.specs import DropoutSpec as DropoutSpec
from fnn.specs import LayerSpec as LayerSpec

__all__ = [
    "ActivationSpec",
    "Architecture",
    "BatchNormSpec",
    "DenseSpec",
    "DropoutSpec",
    "GradientSkip",
    "LayerSpec",
    "Network",
    "NetworkCache",
    "backward",
    "forward",
    "init",
    "loss",
    "mlp",
    "pack",
    "predict",
    "sequential",
    "value_and_grad",
]
