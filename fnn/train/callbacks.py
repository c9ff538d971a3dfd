"""What ``fit`` calls after every epoch: callbacks, and the :class:`FitState` they may
ask for."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn.controllers import EarlyStopping
from fnn.network import (
    Network,
)
from fnn.optim import OptState

__all__ = ["Callback", "EarlyStopping", "FitState"]

Callback = Callable[..., bool | None]
"""A function of the History so far, called after every epoch; True stops the fit.

``cb(history)``, or, if it has a parameter named ``state``, ``cb(history, state=s)``
with a :class:`FitState` ``s`` (to save a checkpoint mid-fit, say)."""


@attrs.frozen(eq=False)
class FitState:
    """What a callback with a ``state`` parameter sees after an epoch, besides the
    History: everything a checkpoint needs to resume the fit exactly.

    Attributes:
        params: the current parameters (a fresh, read-only network).
        opt_state: the current optimizer state (``history.opt_state``).
        rng: a copy of the fit's Generator in its current state (drawing from it does
            not change the fit); ``fnn.save(..., rng=state.rng)`` stores its state.
    """

    params: Network
    opt_state: OptState
    rng: np.random.Generator


def wants_state(cb: Callable[..., Any]) -> bool:
    """Whether a callback takes the :class:`FitState` (it has a parameter ``state``)."""
    try:
        sig = inspect.signature(cb)
    except (TypeError, ValueError):  # some builtins have no signature: the plain form
        return False
    p = sig.parameters.get("state")
    return p is not None and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
