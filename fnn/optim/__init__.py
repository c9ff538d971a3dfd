"""Optimizers: frozen, validated values with ``init(params) -> state`` and
``update(params, grads, state) -> (params, state)``.

Update rules and defaults follow PyTorch's documented algorithms (``torch.optim.SGD``,
``RMSprop``, ``Adagrad``, ``Adam``, ``AdamW``), so a run can be compared step for step.

An optimizer is a chain of *transforms*. Each transform maps an update direction ``u``
(starting as the gradient) to a new one; the last produces the parameter change, added
to the parameters. All of them work on the flat vector of a tree's leaves
(:func:`fnn.tree.ravel`), which for networks made by ``fnn.init`` is the network's own
contiguous buffer: an Adam step is a few array operations for the whole network, not a
few per leaf. Leaves declared with :func:`fnn.tree.state_field` are never changed.

Masks (for weight decay or freezing) select leaves by path: a predicate on the dotted
path such as :func:`weights_only`, or a tree of bools shaped like the parameters.

The package holds one concept per module: :mod:`~fnn.optim.masks` (which leaves a
transform acts on), :mod:`~fnn.optim.base` (what a transform is and sees, and the
runner of a chain), :mod:`~fnn.optim.transforms` (the update rules),
:mod:`~fnn.optim.state` (an optimizer and its state) and :mod:`~fnn.optim.aliases`
(the optimizers users call, by name).
"""

from __future__ import annotations

from fnn.optim._arrays import CHUNK_BYTES
from fnn.optim.aliases import (
    OPTIMIZERS,
    AdamW,
    adagrad,
    adam,
    adamw,
    add_decayed_weights,
    chain,
    clip_by_global_norm,
    freeze,
    register_optimizer,
    rmsprop,
    sgd,
    update,
)
from fnn.optim.base import InPlace, Transform, UpdateContext
from fnn.optim.masks import Mask, WeightsOnly, resolve_mask, weights_only
from fnn.optim.state import (
    MASK_FIELDS,
    TRANSFORMS,
    Optimizer,
    OptState,
    check_state_fits,
    register_transform,
    transform_config,
)
from fnn.optim.transforms import (
    SGD,
    Adagrad,
    AdagradState,
    Adam,
    AdamState,
    AddDecayedWeights,
    ClipByGlobalNorm,
    Freeze,
    RMSprop,
    RMSpropState,
    SGDState,
)

__all__ = [
    "CHUNK_BYTES",
    "MASK_FIELDS",
    "OPTIMIZERS",
    "SGD",
    "TRANSFORMS",
    "Adagrad",
    "AdagradState",
    "Adam",
    "AdamState",
    "AdamW",
    "AddDecayedWeights",
    "ClipByGlobalNorm",
    "Freeze",
    "InPlace",
    "Mask",
    "OptState",
    "Optimizer",
    "RMSprop",
    "RMSpropState",
    "SGDState",
    "Transform",
    "UpdateContext",
    "WeightsOnly",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "chain",
    "check_state_fits",
    "clip_by_global_norm",
    "freeze",
    "register_optimizer",
    "register_transform",
    "resolve_mask",
    "rmsprop",
    "sgd",
    "transform_config",
    "update",
    "weights_only",
]

# Internals that code outside the package imported from here under these names (still
# importable, not in the public list); the explicit re-export tells type checkers.
from fnn.optim._arrays import chunk_of as chunk_of
from fnn.optim._arrays import chunks as chunks
from fnn.optim._arrays import frozen_array as frozen_array
from fnn.optim._arrays import map_record as map_record
from fnn.optim._arrays import writable_copy as writable_copy
from fnn.optim.base import ChainRunner as ChainRunner
from fnn.optim.base import Context as Context
