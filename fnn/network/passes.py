"""The pure functions on a network: :func:`forward`, :func:`backward`,
:func:`value_and_grad` and :func:`loss`, and the one training step every way of
training runs (:func:`batch_gradient`: forward kernels, loss, backward kernels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fnn import tree
from fnn._diverged import NonFinite
from fnn._types import ArrayLike, FloatArray, RNGLike
from fnn._validation import (
    as_generator,
    check_sample_weight,
)
from fnn.layers.base import (
    FRESH,
    TRAINING,
    Context,
    LayerCache,
    Workspace,
    context,
    seal,
)
from fnn.layout import StructureKey
from fnn.network._plan import GradientSkip
from fnn.network.inference import logits_of
from fnn.network.values import (
    Network,
    NetworkCache,
    check_input,
    check_network,
    new_cache,
    output_length,
    prepare_targets,
    set_cached,
)


def forward_pass(
    params: Network, X: FloatArray, ctx: Context, workspaces: Sequence[Workspace]
) -> tuple[FloatArray, tuple[LayerCache, ...]]:
    """The layers' forward kernels in order on a validated batch: ``(logits, caches)``.
    ``workspaces`` holds one workspace per layer (may repeat one)."""
    plan = params._plan
    assert plan is not None
    return plan.forward(params.layers, X, ctx, workspaces)


def _rng_for(params: Network, train: bool, rng: RNGLike | None) -> np.random.Generator | None:
    gen = None if rng is None else as_generator(rng)
    if train and gen is None and params.has_dropout:
        raise ValueError("rng is required when train=True and the network has dropout")
    return gen


def forward(
    params: Network, X: ArrayLike, *, train: bool = False, rng: RNGLike | None = None
) -> tuple[FloatArray, NetworkCache]:
    """Run the network on a batch.

    Args:
        params: the network.
        X: inputs (n_samples, *input_shape), e.g. (n_samples, n_features); converted
            once to the network's dtype.
        train: training mode (dropout active, batch statistics used). Needs ``rng`` if
            the network has dropout.
        rng: a Generator or int seed for dropout masks.

    Returns:
        ``(out, cache)``: ``out`` (n_samples, n_outputs) after the output activation
        (probabilities for sigmoid/softmax outputs), a fresh array the caller owns, and
        the cache for :func:`backward` (read-only leaves).
    """
    params = check_network(params)
    Xa = check_input(params, X)
    if isinstance(X, np.ndarray) and np.may_share_memory(Xa, X):
        Xa = Xa.copy()  # the cache keeps it: a later write into X must not change it
    ctx = context(train, _rng_for(params, train, rng))
    logits, caches = forward_pass(params, Xa, ctx, [FRESH] * len(params.layers))
    out = params.loss.link(logits)
    if np.may_share_memory(out, logits):
        out = out.copy()
    seal(caches)
    return out, new_cache(caches, logits, params.loss, params.layout.key)


def check_cache(params: Network, cache: object) -> NetworkCache:
    """``cache`` if it comes from :func:`forward` of a network of ``params``' structure."""
    if not isinstance(cache, NetworkCache):
        raise TypeError(
            f"cache must be an fnn.NetworkCache from forward, got {type(cache).__name__}"
        )
    key = params.layout.key
    if cache.network_key is not key and cache.network_key != key:
        where = (
            key.difference(cache.network_key)
            if isinstance(cache.network_key, StructureKey)
            else "it was not made by fnn.forward"
        )
        raise ValueError(
            f"cache does not come from a forward pass of this network: {where} "
            "(this network, then the cache's)"
        )
    return cache


def batch_gradient(
    params: Network,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    ctx: Context,
    workspaces: Sequence[Workspace],
    grads: Network,
    *,
    out: FloatArray | None = None,
    scale: float | None = None,
    check: bool = False,
    skip: GradientSkip | None = None,
) -> float:
    """One batch's loss, gradient and new layer state: the training step every way of
    training runs (``value_and_grad``, ``train_step``, ``fit``, ``fnn.distributed.fit``).

    The layers' forward kernels on the validated batch ``X`` (n, *input_shape), then
    :func:`gradient_from_logits`. Returns the batch's mean loss. ``skip``: leave out
    the gradients the step does not read (:func:`gradient_skip`).
    """
    plan = params._plan
    assert plan is not None
    logits, caches = plan.forward(params.layers, X, ctx, workspaces)
    return gradient_from_logits(
        params, logits, caches, y, w, ctx, workspaces, grads, True, out, scale, check, skip
    )


def gradient_from_logits(
    params: Network,
    logits: FloatArray,
    caches: Sequence[LayerCache],
    y: FloatArray,
    w: FloatArray | None,
    ctx: Context,
    workspaces: Sequence[Workspace],
    grads: Network,
    value: bool = True,
    out: FloatArray | None = None,
    scale: float | None = None,
    check: bool = False,
    skip: GradientSkip | None = None,
) -> float:
    """The loss of a forward pass's ``logits`` (n, n_outputs) or (n, T, n_outputs) for
    prepared targets ``y`` and weights ``w`` (n,), and the backward pass from its
    gradient into ``grads`` (writable views of a flat buffer: every leaf written, the
    non-trainable ones with the layers' new state). Returns the loss (NaN when not
    ``value``: then only the loss gradient is computed).

    ``out``, if given, receives the batch's predictions (the output activation). A
    data-parallel shard passes ``scale``, its share of the global batch's weight (the
    loss gradient is scaled by it); an empty shard, or one with nothing counted
    (``scale == 0``), adds nothing. ``check``: raise :class:`fnn._diverged.NonFinite`,
    before the backward pass, when the loss is not finite.
    """
    loss_fn = params.loss
    if logits.shape[0] == 0 or scale == 0:
        v, d = 0.0, np.zeros_like(logits)
    elif value:
        v, d = loss_fn.value_and_grad(logits, y, w)  # one pass for both
    else:
        v, d = float("nan"), loss_fn.grad(logits, y, w)  # the gradient alone
    if out is not None:
        out[...] = loss_fn.link(logits)
    if check and not math.isfinite(v):
        raise NonFinite("loss", v)
    if scale is not None:
        d *= d.dtype.type(scale)
    if skip is not None:
        skip.backward(params.layers, caches, d, grads.layers, ctx, workspaces)
        return v
    plan = params._plan
    assert plan is not None
    plan.backward(params.layers, caches, d, grads.layers, ctx, workspaces)
    return v


def fresh_gradient(params: Network) -> tuple[FloatArray, Network, list[FloatArray]]:
    """A fresh flat gradient buffer (uninitialised; a backward pass writes all of it), a
    tree of ``params``' structure whose leaves are writable views of it (no cached
    fields set), and the list of those leaves."""
    lay = params.layout
    G = np.empty(lay.size, lay.dtype)
    grads, views = lay.build_with_views(G)
    return G, grads, views


def _sealed_gradient(
    params: Network, gradient: tuple[FloatArray, Network, list[FloatArray]]
) -> Network:
    """A :func:`fresh_gradient` made read-only, as a :class:`Network` with ``params``'
    cached fields."""
    G, grads, views = gradient
    tree.read_only(G)
    tree.read_only_each(views)
    set_cached(grads, params, G.view())
    return grads


def training_inputs(
    params: Network, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """``(X, y, w)`` validated and prepared for ``params`` (targets for its loss)."""
    Xa = check_input(params, X)
    ya = prepare_targets(params, y, Xa.shape[0], output_length(params, Xa))
    w = check_sample_weight(sample_weight, Xa.shape[0], params.dtype)
    return Xa, ya, w


def backward(
    params: Network, cache: NetworkCache, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> Network:
    """Gradient of the network's mean loss with respect to its parameters.

    Args:
        params: the network given to :func:`forward`.
        cache: the cache :func:`forward` returned.
        y: targets: (n,) or (n, 1) for one output; (n, k) for k outputs; integer labels
            (n,) or probabilities (n, k) for softmax cross-entropy.
        sample_weight: optional non-negative weights (n,); the loss is their weighted mean.

    Returns:
        A :class:`Network` of the same structure whose arrays are the gradients; its
        non-trainable leaves hold the layers' new state (updated running statistics
        after a training-mode forward), which :func:`fnn.update` takes over.
    """
    params = check_network(params)
    cache = check_cache(params, cache)
    n, T = cache.logits.shape[0], (cache.logits.shape[1] if cache.logits.ndim == 3 else 0)
    ya = prepare_targets(params, y, n, T)
    w = check_sample_weight(sample_weight, n, params.dtype)
    gradient = fresh_gradient(params)
    # the backward pass's temporaries are never handed out: no need to seal them
    fresh = [FRESH] * len(params.layers)
    gradient_from_logits(
        params, cache.logits, cache.layers, ya, w, TRAINING, fresh, gradient[1], value=False
    )
    return _sealed_gradient(params, gradient)


def value_and_grad(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    train: bool = False,
    rng: RNGLike | None = None,
) -> tuple[float, Network]:
    """``(loss, grads)`` for a batch: :func:`forward` then :func:`backward`."""
    params = check_network(params)
    Xa, ya, w = training_inputs(params, X, y, sample_weight)
    ctx = context(train, _rng_for(params, train, rng))
    gradient = fresh_gradient(params)
    value = batch_gradient(params, Xa, ya, w, ctx, [FRESH] * len(params.layers), gradient[1])
    return value, _sealed_gradient(params, gradient)


def loss(
    params: Network, X: ArrayLike, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> float:
    """The network's mean loss on ``(X, y)`` at inference (no dropout), a float."""
    params = check_network(params)
    Xa = check_input(params, X)
    logits = logits_of(params, Xa)
    n, T = logits.shape[0], (logits.shape[1] if logits.ndim == 3 else 0)
    ya = prepare_targets(params, y, n, T)
    w = check_sample_weight(sample_weight, n, params.dtype)
    return params.loss.value(logits, ya, w)
