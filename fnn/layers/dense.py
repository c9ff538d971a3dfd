"""Dense (fully connected) layer: ``a = f(X @ W + b)``.

``W`` has shape (n_in, n_out) and ``b`` shape (n_out,) or None (no bias); ``f`` is the
layer's activation. It acts on the last axis, as ``torch.nn.Linear`` does: ``X`` is
(n, n_in) or a sequence (n, T, n_in), and then every position is a row. With
``z = X @ W + b`` and ``dz = d_out * f'(z)``, over the rows (positions) of the batch,

    dW = X^T dz,    db = sum over the rows of dz,    dX = dz W^T.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn._types import FloatArray
from fnn._validation import float_dtype
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, config_size, register_layer
from fnn.tree import STATIC_META, readonly


def _optional_readonly(x: Any) -> FloatArray | None:
    return None if x is None else readonly(x)


__all__ = ["Dense", "DenseCache", "backward", "create", "forward", "init", "output_shape"]


def output_shape(input_shape: tuple[int, ...], n_in: int | None, n_out: int) -> tuple[int, ...]:
    """The per-sample output shape of a dense layer of ``n_in -> n_out`` units (``n_in``
    None: any) for ``input_shape`` (n_in,) or (T, n_in): (n_out,) or (T, n_out).
    ValueError (naming the layer as ``{layer}``) when the input does not fit."""
    if len(input_shape) not in (1, 2):
        n = "n_in" if n_in is None else n_in
        raise ValueError(
            f"{{layer}} (Dense) expects inputs of shape ({n},) or (T, {n}), "
            f"got {tuple(input_shape)} (add flatten() or global_avg_pool2d() first)"
        )
    if n_in is not None and input_shape[-1] != n_in:
        raise ValueError(
            f"{{layer}} expects {n_in} inputs but the previous layer gives "
            f"{input_shape[-1]} ({{layer}}.W has the wrong shape: {(n_in, n_out)})"
        )
    return (*input_shape[:-1], n_out)


@attrs.frozen(eq=False)
class Dense(LayerBase):
    """Parameters of a dense layer (and, with the same type, their gradients).

    Attributes:
        W: weights, shape (n_in, n_out), read-only.
        b: biases, shape (n_out,), read-only, same dtype as ``W`` (default zeros), or
            None for a layer without bias (``specs.dense(..., bias=False)``).
        activation: the elementwise activation (static); a name is looked up once.
    """

    W: FloatArray = attrs.field(converter=readonly)
    b: FloatArray | None = attrs.field(converter=_optional_readonly)
    activation: _activations.Activation = attrs.field(
        default=_activations.Identity(), converter=_activations.get, metadata=STATIC_META
    )

    @b.default
    def _zero_bias(self) -> FloatArray | None:
        return np.zeros(self.W.shape[1] if self.W.ndim == 2 else 0, dtype=self.W.dtype)

    def __attrs_post_init__(self) -> None:
        if self.W.ndim != 2:
            raise ValueError(f"W must have shape (n_in, n_out), got shape {self.W.shape}")
        if self.b is None:
            return
        if self.b.shape != (self.W.shape[1],):
            raise ValueError(f"b must have shape ({self.W.shape[1]},), got {self.b.shape}")
        if self.b.dtype != self.W.dtype:
            raise ValueError(f"b has dtype {self.b.dtype} but W has dtype {self.W.dtype}")

    @property
    def n_in(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.W.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(n_out,)`` for ``(n_in,)``, ``(T, n_out)`` for a sequence ``(T, n_in)`` (``T``
        may be None, any length)."""
        return output_shape(input_shape, self.n_in, self.n_out)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, DenseCache]:
        """``a = f(X @ W + b)`` for ``X`` (batch, n_in) or (batch, T, n_in); ``a`` (batch,
        n_out) or (batch, T, n_out)."""
        W, b = self.W, self.b
        if X.ndim == 2:
            z = np.dot(X, W, out=ws.empty("z", (X.shape[0], W.shape[1]), W.dtype))
        else:  # a sequence: every position is a row
            X2 = X.reshape(-1, X.shape[-1])
            z = np.dot(X2, W, out=ws.empty("z", (X2.shape[0], W.shape[1]), W.dtype))
            z = z.reshape(*X.shape[:-1], W.shape[1])
        if b is not None:
            z += b
        act = self.activation
        # activations whose derivative reads off the output run in place: a is z
        if act.identity:
            a = z
        else:
            a = act(z, out=z if act.in_place else ws.empty("a", z.shape, z.dtype))
        # the cache record made without attrs' __init__: its slots set by their own
        # descriptors (this runs every step of every dense layer)
        cache: DenseCache = _new(DenseCache)
        _SET_X(cache, X)
        _SET_Z(cache, z)
        _SET_A(cache, a)
        return a, cache

    def backward_into(
        self,
        cache: DenseCache,
        d_out: FloatArray,
        grads: Dense,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``dz = d_out * f'(z)``; ``dW = X^T dz``, ``db = 1^T dz``, ``dX = dz W^T``."""
        act = self.activation
        dz = (
            d_out
            if act.linear
            else act.vjp(cache.z, cache.a, d_out, out=ws.empty("dz", d_out.shape, d_out.dtype))
        )
        x = x_in = cache.x
        if x.ndim != 2:  # a sequence: every position is a row
            x = x.reshape(-1, x.shape[-1])
            dz = dz.reshape(-1, dz.shape[-1])
        np.dot(x.T, dz, out=grads.W)
        if grads.b is not None:
            np.dot(ws.ones("rows", dz.shape[0], dz.dtype), dz, out=grads.b)
        if not need_d_in:
            return None
        d_in = np.dot(dz, self.W.T, out=ws.empty("d_in", x.shape, dz.dtype))
        return d_in if x is x_in else d_in.reshape(x_in.shape)

    def input_gradient_into(
        self, cache: DenseCache, d_out: FloatArray, ctx: Context, ws: Workspace
    ) -> FloatArray:
        """``dX = dz W^T`` alone, shaped like the input: :meth:`backward_into`'s input
        gradient, the same bits, without the parameter gradients (a training step that
        reads none of them: :func:`fnn.network.gradient_skip`)."""
        act = self.activation
        dz = (
            d_out
            if act.linear
            else act.vjp(cache.z, cache.a, d_out, out=ws.empty("dz", d_out.shape, d_out.dtype))
        )
        x = cache.x
        if x.ndim != 2:  # a sequence: every position is a row
            x = x.reshape(-1, x.shape[-1])
            dz = dz.reshape(-1, dz.shape[-1])
        d_in = np.dot(dz, self.W.T, out=ws.empty("d_in", x.shape, dz.dtype))
        return d_in.reshape(cache.x.shape)

    def config(self) -> dict[str, object]:
        return {
            "kind": "dense",
            "n_in": self.n_in,
            "n_out": self.n_out,
            "activation": self.activation.config(),
            **({} if self.b is not None else {"bias": False}),
        }


@attrs.frozen(eq=False)
class DenseCache(LayerCache):
    """What :func:`backward` needs: the input ``x`` (batch, n_in) or (batch, T, n_in),
    the pre-activation ``z`` and the output ``a`` (both (batch, n_out) or (batch, T,
    n_out); the same array when the activation runs in place)."""

    x: FloatArray
    z: FloatArray
    a: FloatArray


_new = object.__new__
_SET_X, _SET_Z, _SET_A = (getattr(DenseCache, name).__set__ for name in ("x", "z", "a"))


def init(
    n_in: int,
    n_out: int,
    *,
    rng: np.random.Generator,
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str = "glorot_uniform",
    dtype: Any = np.float64,
) -> Dense:
    """A new dense layer: ``W`` (n_in, n_out) from ``initializer``, ``b`` zeros (n_out,)."""
    for name, v in (("n_in", n_in), ("n_out", n_out)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"layer width must be >= 1, got {name}={v}")
    d = float_dtype(dtype)
    W = _initializers.get(initializer)((int(n_in), int(n_out)), rng=rng, dtype=d)
    return Dense(W=W, b=np.zeros(int(n_out), dtype=d), activation=_activations.get(activation))


def forward(params: Dense, X: FloatArray) -> tuple[FloatArray, DenseCache]:
    """``a = f(X @ W + b)`` for ``X`` (batch, n_in); returns ``a`` (batch, n_out) and the cache.

    ``Dense.forward`` for a dense layer; for a subclass, the dense math through its
    kernel (``forward_into``), never the subclass's own ``forward``, so a subclass's
    ``forward`` may call this one."""
    out, cache = LayerBase.forward(params, X)
    assert isinstance(cache, DenseCache)
    return out, cache


def backward(params: Dense, cache: DenseCache, d_out: FloatArray) -> tuple[Dense, FloatArray]:
    """Gradients ``(Dense(dW, db), dX)`` given ``d_out = dL/da`` of shape (batch, n_out).

    ``dW`` (n_in, n_out), ``db`` (n_out,), ``dX`` (batch, n_in). As :func:`forward`,
    through the kernel (``backward_into``), so a subclass's ``backward`` may call it.
    """
    return LayerBase.backward(params, cache, d_out)


def _example(rng: np.random.Generator, dtype: np.dtype[Any]) -> tuple[Dense, tuple[int, ...]]:
    layer = init(3, 4, rng=rng, activation="tanh", dtype=dtype)
    return attrs.evolve(layer, b=rng.normal(size=4).astype(dtype)), (3,)


def create(
    input_shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
    dtype: Any,
    n_out: int,
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str | None = None,
    bias: bool = True,
    n_in: int | None = None,
) -> Dense:
    """A dense layer on per-sample inputs ``input_shape`` (n_in,) or (T, n_in) (what
    ``fnn.specs.dense`` describes): ``W`` (n_in, n_out) from ``initializer`` (None: He
    normal before a ReLU-like activation, Glorot uniform otherwise), ``b`` zeros, or no
    ``b`` when ``bias`` is False."""
    output_shape(input_shape, n_in, n_out)
    act = _activations.get(activation)
    init_ = _initializers.for_activation(initializer, act)
    layer = init(input_shape[-1], n_out, rng=rng, activation=act, initializer=init_, dtype=dtype)
    return layer if bias else attrs.evolve(layer, b=None)


register_layer(
    "dense",
    Dense,
    build=lambda cfg, a: Dense(W=a["W"], b=a.get("b"), activation=cfg["activation"]),
    example=_example,
    shapes=lambda cfg: {
        "W": (config_size(cfg, "n_in"), config_size(cfg, "n_out")),
        **({"b": (config_size(cfg, "n_out"),)} if cfg.get("bias", True) else {}),
    },
    weights=("W",),
    create=create,
    shape=lambda s, *, n_out, n_in=None, **_: output_shape(s, n_in, n_out),
)
