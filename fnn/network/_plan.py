"""What a network's structure fixes: its layers' output shapes and forward and backward
passes, written once when the network is built and shared by every network of the
same structure (its gradients, its updated parameters); and the backward passes that
leave out gradients a training step does not read (:class:`GradientSkip`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from fnn._types import FloatArray
from fnn.layers.base import (
    Layer,
    LayerCache,
    backward_kernel,
    forward_kernel,
    input_ids_of,
)


@attrs.frozen(eq=False)
class Plan:
    """What a network's structure fixes, computed when it is built and shared by every
    network of that structure (its gradients, its updated parameters).

    Attributes:
        shapes: each layer's per-sample output shape.
        forward: ``forward(layers, X, ctx, workspaces) -> (out, caches)``, the layers'
            forward kernels in order.
        backward: ``backward(layers, caches, d, grad_layers, ctx, workspaces)``, their
            backward kernels in reverse order, down to the first layer with leaves
            (which is not asked for an input gradient; the layers below it are not run).
        needs_rng: whether training draws random numbers (a layer's ``needs_rng``).
        per_position: whether the logits are per position (the last shape is (T, k)).
        input_ids: the first layer's vocabulary size when it takes token ids, else None.
        (Both read every step by the pure functions' checks: kept here, not recomputed.)
        output_elements: ``(a, b)``: the layers' outputs hold ``a + b T`` elements per
            sample of ``T`` positions (``b`` counts the outputs with a time axis).
    """

    shapes: tuple[tuple[int, ...], ...]
    forward: Callable[..., tuple[FloatArray, tuple[LayerCache, ...]]]
    backward: Callable[..., None]
    needs_rng: bool
    per_position: bool
    input_ids: int | None
    output_elements: tuple[int, int]
    # the backward passes that skip unused gradients, by mask (see gradient_skip)
    skips: dict[bytes, GradientSkip | None] = attrs.field(factory=dict)

    @staticmethod
    def of(layers: Sequence[Layer], shapes: tuple[tuple[int, ...], ...], first: int) -> Plan:
        forward, backward = compile_passes(layers, first)
        return Plan(
            shapes=shapes,
            forward=forward,
            backward=backward,
            needs_rng=any(getattr(layer, "needs_rng", False) for layer in layers),
            per_position=len(shapes[-1]) == 2,
            input_ids=input_ids_of(layers[0]),
            output_elements=_output_elements(shapes),
        )


def _output_elements(shapes: Sequence[tuple[int | None, ...]]) -> tuple[int, int]:
    fixed = per_position = 0
    for shape in shapes:
        size = math.prod(d for d in shape if d is not None)
        if None in shape:
            per_position += size
        else:
            fixed += size
    return fixed, per_position


def compile_passes(
    layers: Sequence[Layer], first: int
) -> tuple[Callable[..., tuple[FloatArray, tuple[LayerCache, ...]]], Callable[..., None]]:
    """The forward and backward passes of a network's structure as straight-line
    Python: one call of each layer's kernel (looked up once, from its class), with no
    loop, zip or list in between.

    Measured against a plain loop over the same kernels (issue 19; alternating fresh
    processes on a busy 2-core machine, benchmarks/speed.py workloads): the loop made
    the step of ``fit`` about 3-5% slower on tiny (about 1.5 us of 33 us) and the same
    within noise on mnist-mlp, while generating the code is most of the cost of building
    a ``Network`` (170 us against 34 us with the loop). Kept for the step: the build cost
    is paid when a network is built from layers; the networks fnn makes from another of
    the same structure (updates, gradients: :func:`from_flat`) share its plan."""
    n = len(layers)
    consts: dict[str, Any] = {"_failed": layer_failed, "no_d_in": no_d_in}
    for i, layer in enumerate(layers):
        consts[f"f{i}"] = forward_kernel(type(layer))
        consts[f"b{i}"] = backward_kernel(type(layer))
    fwd = ["def forward(L, h, ctx, ws):", "    i = 0", "    try:"]
    for i in range(n):
        fwd.append(f"        h, c{i} = f{i}(L[{i}], h, ctx, ws[{i}])")
        fwd.append(f"        i = {i + 1}")
    fwd.append("    except ValueError as e:")
    fwd.append("        _failed(L, i, e)")
    fwd.append(f"    return h, ({''.join(f'c{i}, ' for i in range(n))})")
    bwd = ["def backward(L, C, d, G, ctx, ws):"]
    for i in range(n - 1, first, -1):
        bwd.append(f"    d = b{i}(L[{i}], C[{i}], d, G[{i}], ctx, ws[{i}], True)")
        bwd.append(f"    if d is None: no_d_in(L, {i})")
    bwd.append(f"    b{first}(L[{first}], C[{first}], d, G[{first}], ctx, ws[{first}], False)")
    src = "\n".join(fwd) + "\n" + "\n".join(bwd) + "\n"
    exec(compile(src, "<fnn.network passes>", "exec"), consts)  # code written here, not read
    return consts["forward"], consts["backward"]


def layer_failed(layers: Sequence[Layer], i: int, e: ValueError) -> None:
    """Re-raise a layer's ValueError naming the layer (``layers.i (Kind): ...``)."""
    msg = str(e)
    if not msg.startswith("layers."):
        msg = f"layers.{i} ({type(layers[i]).__name__}): {msg}"
    raise ValueError(msg) from None


def no_d_in(layers: Sequence[Layer], i: int) -> None:
    raise TypeError(
        f"layers.{i} ({type(layers[i]).__name__}): backward_into returned None, but the "
        "layer below needs the input gradient (need_d_in=True)"
    )


@attrs.frozen(eq=False)
class GradientSkip:
    """A backward pass that leaves out the gradients a training step does not read
    (from :func:`gradient_skip`).

    Attributes:
        backward: ``backward(layers, caches, d, grad_layers, ctx, workspaces)``, like
            the plan's, from the last layer down to ``first``.
        first: the lowest layer run (it computes no input gradient); the layers below
            it get no backward kernel call, only their new state.
    """

    backward: Callable[..., None]
    first: int
