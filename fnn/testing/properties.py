"""The property checks every layer kind must pass, for fnn's own kinds and a user's.

:func:`check_layer_kind` runs them on a registered kind's ``example`` (see
:func:`fnn.layers.register_layer`); fnn's own test suite runs it over every registered
kind. Each check raises AssertionError naming the property and the path that fails.
Nothing here needs pytest or hypothesis.

The properties:

- ``layer gradients``: the layer's parameter and input gradients agree with central
  differences in float64, in inference and training mode;
- ``network gradients``: so does the gradient of a network with the layer (its loss
  through a dense head), trainable leaves only;
- ``purity``: the pure functions write into none of their arguments (X, the layer,
  the cache, ``d_out``, the gradients, the optimizer state) and hand out read-only
  leaves;
- ``state at inference``: an inference pass leaves the state leaves as they were;
- ``dtypes``: float32 and float64 stay what they are through forward, backward,
  predict and fit;
- ``fit equals train_step``: ``fnn.fit`` gives bit for bit the loop of
  ``fnn.train_step`` it stands for. ``fit`` keeps every workspace's arrays from step to
  step, so a layer that shares a workspace between inner layers, or keeps an array
  from one call to the next, fails here while its pure functions look right;
- ``save and load``: a checkpoint round trip gives the same network, configs, state
  mask and predictions.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fnn import optim, tree
from fnn.layers.base import LAYERS, LayerKind, input_ids_of, output_shape_of
from fnn.layers.dense import Dense
from fnn.layers.flatten import Flatten
from fnn.network import Network, backward, forward, pack, predict
from fnn.serialization import load, save
from fnn.testing.grads import check_grads, check_layer_grads
from fnn.training import fit, train_step

__all__ = ["PROPERTIES", "check_layer_kind", "example_network"]

PROPERTIES = (
    "layer gradients",
    "network gradients",
    "purity",
    "state at inference",
    "dtypes",
    "fit equals train_step",
    "save and load",
)
"""The names of the properties :func:`check_layer_kind` checks, in order."""

N_CLASSES = 3
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def _kind(kind: str | LayerKind) -> LayerKind:
    if isinstance(kind, LayerKind):
        return kind
    if isinstance(kind, str):
        return LAYERS[kind]
    raise TypeError(f"kind must be a registered name or a LayerKind, got {type(kind).__name__}")


def _example(kind: LayerKind, dtype: np.dtype[Any], seed: int) -> tuple[Any, tuple[int, ...]]:
    if kind.example is None:
        raise ValueError(
            f"layer kind {kind.name!r} has no example: register it with "
            "example=lambda rng, dtype: (layer, input_shape)"
        )
    layer, shape = kind.example(np.random.default_rng(seed), dtype)
    return layer, tuple(shape)


def example_network(layer: Any, input_shape: tuple[int, ...], dtype: Any, seed: int = 1) -> Network:
    """``layer`` first (so it sees the raw input), a flatten layer when its output is not
    a vector, then a dense head to 3 logits with softmax cross-entropy."""
    out = output_shape_of(layer, input_shape, "layers.0")
    layers: list[Any] = [layer]
    if len(out) != 1:
        layers.append(Flatten())
    rng = np.random.default_rng(seed)
    d = np.dtype(dtype)
    W = (rng.standard_normal((math.prod(out), N_CLASSES)) / math.sqrt(math.prod(out))).astype(d)
    layers.append(Dense(W=W, b=rng.standard_normal(N_CLASSES).astype(d)))
    return pack(Network(layers=layers, loss="cross_entropy", input_shape=input_shape))


def _data(
    layer: Any, shape: tuple[int, ...], n: int, dtype: np.dtype[Any], seed: int
) -> tuple[Any, Any]:
    """A batch for the example: random floats, or random token ids for a layer that takes
    them (:func:`fnn.layers.base.input_ids_of`), and class labels."""
    rng = np.random.default_rng(seed)
    vocab = input_ids_of(layer)
    if vocab is not None:
        X = rng.integers(0, vocab, (n, *shape))
    else:
        X = rng.standard_normal((n, *shape)).astype(dtype)
    return X, rng.integers(0, N_CLASSES, n)


def _fail(prop: str, kind: LayerKind, what: str) -> AssertionError:
    return AssertionError(f"layer kind {kind.name!r}: {prop}: {what}")


def _arrays(value: object) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """The array leaves of a tree (caches also hold ints and bools)."""
    return [(p, x) for p, x in tree.leaves_with_paths(value) if isinstance(x, np.ndarray)]


def _copies(value: object) -> list[tuple[str, np.ndarray[Any, Any]]]:
    return [(p, x.copy()) for p, x in _arrays(value)]


def _unchanged(
    value: object, before: list[tuple[str, np.ndarray[Any, Any]]], what: str
) -> str | None:
    now = _arrays(value)
    if [p for p, _ in now] != [p for p, _ in before]:
        return f"{what} changed structure"
    for (p, x), (_, x0) in zip(now, before, strict=True):
        if not np.array_equal(x, x0, equal_nan=True):
            return f"{what}: {p} was written"
    return None


def _writable(value: object, what: str) -> str | None:
    for p, x in _arrays(value):
        if x.flags.writeable:
            return f"{what}: leaf {p} is writable"
    return None


def _check_gradients(kind: LayerKind, seed: int) -> None:
    layer, shape = _example(kind, F64, seed)
    X, y = _data(layer, shape, 5, F64, seed + 2)
    net = example_network(layer, shape, F64, seed + 1)
    for train in (False, True):
        mode = "training" if train else "inference"
        try:
            check_layer_grads(layer, X, train=train, mode="elementwise", seed=seed)
        except AssertionError as e:
            raise _fail("layer gradients", kind, f"{mode} mode: {e}") from None
        try:
            check_grads(net, X, y, train=train, mode="elementwise", seed=seed)
        except AssertionError as e:
            raise _fail("network gradients", kind, f"{mode} mode: {e}") from None


def _check_purity(kind: LayerKind, seed: int) -> None:
    prop = "purity"
    layer, shape = _example(kind, F64, seed)
    X, y = _data(layer, shape, 5, F64, seed + 2)
    for train in (False, True):
        X0, layer0 = X.copy(), _copies(layer)
        out, cache = layer.forward(X, train=train, rng=np.random.default_rng(seed))
        cache0 = _copies(cache)
        d_out = np.random.default_rng(seed + 3).standard_normal(out.shape)
        d0 = d_out.copy()
        grads, d_in = layer.backward(cache, d_out)
        problems = [
            None if np.array_equal(X, X0) else "forward wrote into X",
            None if np.array_equal(d_out, d0) else "backward wrote into d_out",
            None if d_in.shape == X.shape else f"d_in has shape {d_in.shape}, X {X.shape}",
            None if type(grads) is type(layer) else "grads are not of the layer's type",
            _unchanged(layer, layer0, "layer"),
            _unchanged(cache, cache0, "cache"),
            _writable(layer, "layer"),
            _writable(grads, "grads"),
        ]
        for problem in problems:
            if problem is not None:
                raise _fail(prop, kind, problem)
    net = example_network(layer, shape, F64, seed + 1)
    X0, y0, net0 = X.copy(), y.copy(), _copies(net)
    out, cache = forward(net, X, train=True, rng=seed)
    cache0 = _copies(cache)
    out[...] = 123.0  # the caller owns `out`: writing it changes nothing fnn keeps
    grads = backward(net, cache, y)
    opt = optim.adam(1e-2)
    state = opt.init(net)
    state0, grads0 = _copies(state), _copies(grads)
    new, new_state = optim.update(net, grads, state)
    problems = [
        None if np.array_equal(X, X0) and np.array_equal(y, y0) else "X or y was written",
        _unchanged(net, net0, "params"),
        _unchanged(cache, cache0, "cache"),
        _unchanged(grads, grads0, "grads after update"),
        _unchanged(state, state0, "optimizer state after update"),
        _writable(net, "params"),
        _writable(grads, "grads"),
        _writable(new, "updated params"),
        _writable(new_state.states, "updated optimizer state"),
    ]
    for problem in problems:
        if problem is not None:
            raise _fail(prop, kind, problem)


def _check_state_at_inference(kind: LayerKind, seed: int) -> None:
    layer, shape = _example(kind, F64, seed)
    X, _ = _data(layer, shape, 4, F64, seed + 2)
    out, cache = layer.forward(X, train=False, rng=None)
    grads, _ = layer.backward(cache, np.ones_like(out))
    mask = tree.trainable_mask(layer)
    for (p, g), (_, s) in zip(
        tree.leaves_with_paths(grads), tree.leaves_with_paths(layer), strict=True
    ):
        if not mask[p] and not np.array_equal(g, s):
            raise _fail("state at inference", kind, f"state leaf {p} changed")


def _check_dtypes(kind: LayerKind, seed: int) -> None:
    for dtype in (F32, F64):
        layer, shape = _example(kind, dtype, seed)
        X, y = _data(layer, shape, 6, dtype, seed + 2)

        def wrong(value: object, what: str, dtype: np.dtype[Any] = dtype) -> None:
            for p, x in _arrays(value):
                if x.dtype != dtype:
                    raise _fail("dtypes", kind, f"{what}: {p} is {x.dtype}, expected {dtype}")

        wrong(layer, "example layer")
        out, cache = layer.forward(X, train=True, rng=np.random.default_rng(seed))
        grads, d_in = layer.backward(cache, np.ones_like(out))
        wrong(
            {"out": out} if input_ids_of(layer) is not None else {"out": out, "d_in": d_in},
            "layer pass",
        )
        wrong(grads, "layer gradients")
        net = example_network(layer, shape, dtype, seed + 1)
        o, c = forward(net, X, train=True, rng=seed)
        wrong({"out": o, "logits": c.logits}, "network forward")
        wrong(backward(net, c, y), "network gradients")
        wrong({"predict": predict(net, X)}, "predict")
        trained, _ = fit(net, optim.adam(1e-2), X, y, epochs=1, batch_size=3, rng=seed, verbose=0)
        wrong(trained, "fit")


def _check_fit_equals_train_step(kind: LayerKind, seed: int) -> None:
    layer, shape = _example(kind, F64, seed)
    net = example_network(layer, shape, F64, seed + 1)
    X, y = _data(layer, shape, 11, F64, seed + 2)  # batches of 4, 4 and 3
    opt = optim.adam(1e-2)
    for shuffle in (False, True):
        fitted, history = fit(
            net, opt, X, y, epochs=2, batch_size=4, rng=seed + 5, shuffle=shuffle, verbose=0
        )
        # what fit does, from ONE generator: a permutation per epoch when shuffling,
        # then per step the layers' draws in layer order
        gen = np.random.default_rng(seed + 5)
        looped, state = net, opt.init(net)
        losses = []
        for _ in range(2):
            order = gen.permutation(len(X)) if shuffle else np.arange(len(X))
            total = 0.0
            for s in range(0, len(X), 4):
                idx = order[s : s + 4]
                looped, state, value = train_step(looped, state, X[idx], y[idx], rng=gen)
                total += value * len(idx)
            losses.append(total / len(X))
        if not np.array_equal(fitted.flat, looped.flat):
            a, b = tree.flatten(fitted), tree.flatten(looped)
            path = next(p for p in a if not np.array_equal(a[p], b[p]))
            raise _fail(
                "fit equals train_step",
                kind,
                f"fit and a loop of train_step differ first at {path} (shuffle={shuffle}); "
                "does an inner layer share its workspace (use ws.child(key)) or a kernel "
                "keep an array between calls?",
            )
        if not np.allclose(history.train_loss, losses, rtol=1e-12, atol=0):
            raise _fail("fit equals train_step", kind, "the recorded losses differ")


def _check_save_and_load(kind: LayerKind, seed: int) -> None:
    prop = "save and load"
    for dtype in (F32, F64):
        layer, shape = _example(kind, dtype, seed)
        config = layer.config()
        if not isinstance(config, dict) or config.get("kind") != kind.name:
            raise _fail(prop, kind, f"config() must record kind {kind.name!r}, got {config!r}")
        net = example_network(layer, shape, dtype, seed + 1)
        X, y = _data(layer, shape, 8, dtype, seed + 2)
        net, h = fit(net, optim.adam(1e-2), X, y, epochs=1, batch_size=4, rng=seed, verbose=0)
        with tempfile.TemporaryDirectory(prefix="fnn-check-") as folder:
            path = save(Path(folder) / "net.npz", net, opt_state=h.opt_state)
            got = load(path).params
        problems = [
            None if got.layout.key == net.layout.key else "another structure came back",
            None if got.dtype == dtype else f"dtype {got.dtype} came back",
            None if np.array_equal(got.flat, net.flat) else "other values came back",
            None
            if [x.config() for x in got.layers] == [x.config() for x in net.layers]
            else "other configs came back",
            None
            if tree.trainable_mask(got) == tree.trainable_mask(net)
            else "another state mask came back",
            None if np.array_equal(predict(got, X), predict(net, X)) else "predictions differ",
            _writable(got, "loaded params"),
        ]
        for problem in problems:
            if problem is not None:
                raise _fail(prop, kind, f"{problem} ({dtype})")


_CHECKS = {
    "layer gradients": _check_gradients,  # with the network's gradients
    "purity": _check_purity,
    "state at inference": _check_state_at_inference,
    "dtypes": _check_dtypes,
    "fit equals train_step": _check_fit_equals_train_step,
    "save and load": _check_save_and_load,
}


def check_layer_kind(kind: str | LayerKind, *, seed: int = 0) -> None:
    """Run the property checks (:data:`PROPERTIES`) on a registered layer kind, a
    user's included, using its registered ``example``.

    Args:
        kind: the registered name (``"dense"``) or the :class:`~fnn.layers.LayerKind`.
        seed: seeds the example, the data and the random draws.

    Raises:
        AssertionError: ``layer kind 'name': property: what`` for the first property that
            does not hold (the path of the leaf, or the argument written).
        ValueError: the kind is not registered or has no example.
    """
    k = _kind(kind)
    for check in _CHECKS.values():
        check(k, seed)
