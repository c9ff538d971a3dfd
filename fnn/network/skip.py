"""Skipping the gradients a training step does not read: leaves frozen by the
optimizer's mask, and the layers below the lowest trained one. :func:`gradient_skip`
builds, once per structure and mask, a backward pass that leaves them out with the
same bits for every gradient it computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fnn import tree
from fnn._types import BoolArray, FloatArray
from fnn.layers.base import (
    Context,
    Layer,
    LayerCache,
    Workspace,
    backward_kernel,
)
from fnn.network._plan import GradientSkip, no_d_in
from fnn.network.values import Network
from fnn.tree import leaves_with_paths


def gradient_skip(params: Network, unused: BoolArray | None) -> GradientSkip | None:
    """The backward pass for a step whose update reads no gradient where ``unused``
    (P,) (flat, ``params.layout`` order; :func:`fnn.optim.transforms.unused_gradient`)
    is True, or None to run the full one (``unused`` None or skipping nothing).

    A leaf is skipped when all its entries are unused; a layer is run when it has a
    needed trainable leaf or one above it does. The layers below the lowest such layer
    are not run: a layer there with state leaves (batch norm's running statistics)
    writes its new state with its optional ``state_into(cache, grads)``, or, without
    one, the pass goes down to it. Every skipped leaf's gradient is zero. The gradients
    computed are the full pass's bits: the same kernels run on the same inputs.
    Computed once per network structure and mask, then kept."""
    if unused is None:
        return None
    plan = params._plan
    assert plan is not None
    key = np.packbits(unused).tobytes()
    if key not in plan.skips:
        plan.skips[key] = _build_skip(params, unused)
    return plan.skips[key]


def _build_skip(params: Network, unused: BoolArray) -> GradientSkip | None:
    layers = params.layers
    n = len(layers)
    trainable = tree.trainable_mask(params)
    needed = [False] * n
    has_state = [False] * n
    zero: list[list[int]] = [[] for _ in range(n)]  # per layer: skipped leaf indices
    counts = [0] * n
    lo = 0  # the leaf's offset in the flat layout (leaves in tree order)
    for path, leaf in leaves_with_paths(params):
        i = int(path.split(".")[1])  # paths are "layers.<i>...."
        j, counts[i] = counts[i], counts[i] + 1
        size = int(np.size(leaf))
        if not trainable[path]:
            has_state[i] = True
        elif unused[lo : lo + size].all():
            zero[i].append(j)
        else:
            needed[i] = True
        lo += size
    first = next((i for i in range(n) if needed[i]), n)
    hooks: list[tuple[int, Callable[..., None]]] = []
    for i in range(first - 1, -1, -1):
        if not has_state[i]:
            continue
        hook = getattr(type(layers[i]), "state_into", None)
        if hook is None:
            first = i  # no way to get its new state but its backward kernel
            hooks = []  # the layers above it run their backward kernels
        else:
            hooks.append((i, hook))
    default = next(i for i in range(n) if counts[i])  # the plan's lowest layer
    if first == default and not any(zero):
        return None  # the full pass: nothing skipped
    kernels: list[Callable[..., FloatArray | None]] = []
    for i, layer in enumerate(layers):
        # a frozen layer between trained ones passes the gradient down, computing its
        # input gradient alone when it can (an optional input_gradient_into)
        only_d_in = getattr(type(layer), "input_gradient_into", None)
        if i > first and zero[i] and not needed[i] and not has_state[i] and only_d_in:
            kernels.append(_input_gradient_kernel(only_d_in))
        else:
            kernels.append(backward_kernel(type(layer)))
    zeroed = [(i, tuple(z)) for i, z in enumerate(zero) if z]

    def backward(
        L: Sequence[Layer],
        C: Sequence[LayerCache],
        d: FloatArray,
        G: Sequence[Layer],
        ctx: Context,
        ws: Sequence[Workspace],
    ) -> None:
        for i in range(n - 1, first, -1):
            d_in = kernels[i](L[i], C[i], d, G[i], ctx, ws[i], True)
            if d_in is None:
                no_d_in(L, i)
                return
            d = d_in
        if first < n:
            kernels[first](L[first], C[first], d, G[first], ctx, ws[first], False)
        for i, hook in hooks:
            hook(L[i], C[i], G[i])
        for i, idx in zeroed:
            leaves = tree.leaves(G[i])
            for j in idx:
                leaves[j][...] = 0

    return GradientSkip(backward=backward, first=first)


def _input_gradient_kernel(
    method: Callable[..., FloatArray],
) -> Callable[..., FloatArray | None]:
    """A backward kernel that runs a layer's ``input_gradient_into`` (no parameter
    gradients; the caller zeroes them)."""

    def kernel(
        layer: Layer,
        cache: LayerCache,
        d: FloatArray,
        grads: Layer,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool,
    ) -> FloatArray | None:
        return method(layer, cache, d, ctx, ws)

    return kernel
