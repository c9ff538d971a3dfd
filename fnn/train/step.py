"""One pure training step on a batch: :func:`train_step`."""

from __future__ import annotations

from collections.abc import Sequence

from fnn import _scratch
from fnn._types import ArrayLike, RNGLike
from fnn._validation import (
    as_generator,
)
from fnn.layers.base import FRESH, TRAINING, Context, Kept, Workspace
from fnn.network import (
    Network,
    batch_gradient,
    check_network,
    fresh_gradient,
    gradient_skip,
    training_inputs,
)
from fnn.optim import OptState, check_state_fits
from fnn.optim.transforms import unused_gradient

__all__ = ["train_step"]

POOL_BYTES = 1 << 20
"""A step whose layer outputs take at least this many bytes (1 MiB) works in buffers
kept from the step before (:mod:`fnn._scratch`): fresh arrays that large come from
the operating system and cost a page fault per 4 KiB on first touch, every step. On
smaller steps the bookkeeping costs more than it saves."""


def train_step(
    params: Network,
    opt_state: OptState,
    X: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    rng: RNGLike | None = None,
) -> tuple[Network, OptState, float]:
    """One pure training step on a batch: forward (training mode), backward, update.

    Args:
        params: the network.
        opt_state: its optimizer state (``optimizer.init(params)``).
        X: inputs (n, n_features).
        y: targets for the network's loss.
        sample_weight: optional weights (n,).
        rng: Generator or seed for dropout masks (required if the network has dropout).

    Returns:
        ``(params, opt_state, loss)``: new values and the batch loss before the update.

    Raises:
        FloatingPointError: the loss or the gradient is not finite (nothing is updated).
    """
    params = check_network(params)
    if not isinstance(opt_state, OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    Xa, ya, w = training_inputs(params, X, y, sample_weight)
    gen = None if rng is None else as_generator(rng)
    if gen is None and params.has_dropout:
        raise ValueError("rng is required when the network has dropout")
    check_state_fits(opt_state, params.flat, params.layout.key)
    ctx = TRAINING if gen is None else Context(train=True, rng=gen)
    G, grads, _ = fresh_gradient(params)
    pooled = params.output_bytes(len(Xa), Xa.shape[1] if Xa.ndim > 1 else 1) >= POOL_BYTES
    kept = [Kept() for _ in params.layers] if pooled else []
    workspaces: Sequence[Workspace] = kept or [FRESH] * len(params.layers)
    skip = gradient_skip(params, unused_gradient(opt_state))  # frozen leaves' gradients
    value = batch_gradient(params, Xa, ya, w, ctx, workspaces, grads, check=True, skip=skip)
    new_params, new_state = opt_state.optimizer.update_flat(
        params,
        G,
        opt_state,
        check=True,
        owned=True,  # G is this step's own buffer
    )
    if kept:
        # the step ended normally: its activations and caches, which no caller ever
        # saw, serve the next step (or fit) instead of going back to the system
        _scratch.keep([a for ws in kept for a in ws.all_arrays()])
    return new_params, new_state, value
