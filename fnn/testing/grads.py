"""Gradient checks against central differences, in float64.

- :func:`check_grads` compares a network's analytic gradient (``fnn.backward``) with
  central differences of its loss.
- :func:`check_layer_grads` does the same for one layer's ``backward`` (parameters and
  input), through a random linear read-out of its output.

Both raise AssertionError naming what disagrees; they return the worst relative error
found when all is well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from fnn import tree
from fnn._types import ArrayLike, FloatArray
from fnn.layers.base import Layer, input_ids_of
from fnn.network import Network, value_and_grad
from fnn.network import loss as _loss_value

__all__ = ["check_grads", "check_layer_grads", "to_float64"]

Mode = Literal["direction", "elementwise"]


def to_float64(params: Any) -> Any:
    """A copy of a tree with every leaf as float64 (structure kept)."""
    return tree.map(lambda x: np.asarray(x, dtype=np.float64), params)


def _rel_err(a: float, b: float, atol: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), atol)


def _compare(
    f: Callable[[FloatArray], float],
    flat: FloatArray,
    analytic: FloatArray,
    paths: list[tuple[str, tuple[int, ...], int]],
    *,
    mode: Mode,
    eps: float,
    rtol: float,
    atol: float,
    n_directions: int,
    seed: int,
    what: str,
) -> float:
    worst = 0.0
    if mode == "direction":
        gen = np.random.default_rng(seed)
        for i in range(n_directions):
            v = gen.standard_normal(flat.shape)
            v /= np.linalg.norm(v) or 1.0
            num = (f(flat + eps * v) - f(flat - eps * v)) / (2 * eps)
            ana = float(analytic @ v)
            err = _rel_err(num, ana, atol)
            worst = max(worst, err)
            if abs(num - ana) > atol + rtol * max(abs(num), abs(ana)):
                raise AssertionError(
                    f"{what}: directional derivative {i} differs: analytic {ana:.10g}, "
                    f"central difference {num:.10g} (relative error {err:.3g})"
                )
        return worst
    if mode != "elementwise":
        raise ValueError(f"mode must be 'direction' or 'elementwise', got {mode!r}")
    worst_at: tuple[str, tuple[int, ...], float, float] = ("", (), 0.0, 0.0)
    failed = False
    for j in range(flat.size):
        e = np.zeros_like(flat)
        e[j] = eps
        num = (f(flat + e) - f(flat - e)) / (2 * eps)
        ana = float(analytic[j])
        err = _rel_err(num, ana, atol)
        bad = abs(num - ana) > atol + rtol * max(abs(num), abs(ana))
        if (bad and not failed) or (bad == failed and err > worst):
            path, index = _locate(paths, j)
            worst_at = (path, index, ana, num)
        failed = failed or bad
        worst = max(worst, err)
    if failed:
        path, index, ana, num = worst_at
        raise AssertionError(
            f"{what}: gradient of {path}{list(index)} differs: analytic {ana:.10g}, central "
            f"difference {num:.10g} (worst relative error {worst:.3g})"
        )
    return worst


def _trainable_only(
    t: Any, f: Callable[[FloatArray], float], flat: FloatArray, analytic: FloatArray
) -> tuple[Callable[[FloatArray], float], FloatArray, FloatArray, list[Any]]:
    """Restrict a check to the trainable leaves: non-trainable ones (running statistics)
    have no gradient; their slots in a gradient tree hold the layer's new state."""
    trainable = tree.trainable_mask(t)
    paths = [p for p in _paths(t) if trainable[p[0]]]
    if len(paths) == len(trainable):
        return f, flat, analytic, paths
    idx = np.flatnonzero(tree.leaf_mask(t, lambda p: trainable[p]))

    def f_sub(v: FloatArray) -> float:
        full = flat.copy()
        full[idx] = v
        return f(full)

    return f_sub, flat[idx], analytic[idx], paths


def _paths(t: Any) -> list[tuple[str, tuple[int, ...], int]]:
    out = []
    for p, x in tree.leaves_with_paths(t):
        out.append((p, tuple(np.shape(x)), int(np.size(x))))
    return out


def _locate(paths: list[tuple[str, tuple[int, ...], int]], j: int) -> tuple[str, tuple[int, ...]]:
    for p, shape, size in paths:
        if j < size:
            return p, tuple(int(i) for i in np.unravel_index(j, shape))
        j -= size
    raise IndexError(j)


def check_grads(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    mode: Mode = "direction",
    n_directions: int = 8,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    sample_weight: ArrayLike | None = None,
    train: bool = False,
    seed: int = 0,
) -> float:
    """Check ``fnn.backward`` against central differences of the loss, in float64.

    Args:
        params: the network (converted to float64 for the check).
        X: inputs (n, *input_shape), e.g. (n, n_features), or token ids (n, T).
        y: targets for the network's loss.
        mode: ``"direction"`` compares ``n_directions`` random directional derivatives
            (cheap for any size); ``"elementwise"`` perturbs every parameter and
            reports the worst parameter path and index.
        eps: the central-difference step.
        rtol: relative tolerance; the check is
            ``|num - ana| <= atol + rtol * max(|num|, |ana|)``.
        atol: absolute tolerance.
        sample_weight: optional sample weights (n,).
        train: check the training-mode pass; dropout masks are drawn from ``seed`` anew
            for every evaluation, so they are fixed across the check.
        seed: seeds the dropout masks and the random directions.

    Returns:
        The worst relative error seen.

    Raises:
        AssertionError: naming the direction, or the parameter path and index, that
            disagrees.
    """
    p64: Network = to_float64(params)
    # token ids (a first layer taking ids) stay integers
    X64 = np.asarray(X) if p64.input_ids is not None else np.asarray(X, dtype=np.float64)
    flat = np.array(tree.ravel(p64), dtype=np.float64)

    def f(v: FloatArray) -> float:
        p = tree.unravel(p64, v.copy())
        if train:
            val, _ = value_and_grad(p, X64, y, sample_weight=sample_weight, train=True, rng=seed)
            return val
        return _loss_value(p, X64, y, sample_weight=sample_weight)

    _, g = value_and_grad(
        p64, X64, y, sample_weight=sample_weight, train=train, rng=seed if train else None
    )
    f_sub, flat_sub, ana_sub, paths = _trainable_only(
        p64, f, flat, np.asarray(tree.ravel(g), dtype=np.float64)
    )
    return _compare(
        f_sub,
        flat_sub,
        ana_sub,
        paths,
        mode=mode,
        eps=eps,
        rtol=rtol,
        atol=atol,
        n_directions=n_directions,
        seed=seed,
        what="check_grads",
    )


def check_layer_grads(
    layer: Layer,
    X: ArrayLike,
    *,
    mode: Mode = "direction",
    n_directions: int = 8,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    train: bool = False,
    seed: int = 0,
) -> float:
    """Check a layer's ``backward`` (parameter and input gradients) in float64.

    The scalar checked is ``sum(R * out)`` for a fixed random ``R`` shaped like the
    layer's output, so ``d_out = R``. ``X`` is (batch, *in_shape); for a layer taking
    integer token ids (:func:`fnn.layers.base.input_ids_of`) it holds ids and only the
    parameter gradients are checked. Training-mode randomness
    (dropout masks) is drawn from ``seed`` anew for every evaluation.

    Returns the worst relative error; raises AssertionError naming what disagrees.
    """
    l64: Any = to_float64(layer)
    ids = input_ids_of(layer) is not None  # integer token ids: no input gradient
    X64 = np.array(X) if ids else np.array(X, dtype=np.float64)
    out, cache = l64.forward(X64, train=train, rng=np.random.default_rng(seed))
    R = np.random.default_rng(seed + 1).standard_normal(out.shape)
    grads, d_in = l64.backward(cache, R)

    def scalar(lay: Any, x: FloatArray) -> float:
        o, _ = lay.forward(x, train=train, rng=np.random.default_rng(seed))
        return float((R * o).sum())

    worst = 0.0
    fl, flat, analytic, paths = _trainable_only(
        l64,
        lambda v: scalar(tree.unravel(l64, v.copy()), X64),
        np.array(tree.ravel(l64), dtype=np.float64),
        np.asarray(tree.ravel(grads), dtype=np.float64),
    )
    if flat.size:
        worst = _compare(
            fl,
            flat,
            analytic,
            paths,
            mode=mode,
            eps=eps,
            rtol=rtol,
            atol=atol,
            n_directions=n_directions,
            seed=seed,
            what=f"{type(layer).__name__} parameters",
        )
    if ids:
        return worst
    worst_in = _compare(
        lambda v: scalar(l64, v.reshape(X64.shape)),
        X64.ravel(),
        np.asarray(d_in).ravel(),
        [("X", X64.shape, X64.size)],
        mode=mode,
        eps=eps,
        rtol=rtol,
        atol=atol,
        n_directions=n_directions,
        seed=seed,
        what=f"{type(layer).__name__} input",
    )
    return max(worst, worst_in)
