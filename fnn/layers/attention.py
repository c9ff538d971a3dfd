"""Multi-head self-attention, PyTorch's ``nn.MultiheadAttention`` conventions.

For ``X`` of shape (n, T, d), with ``h`` heads of ``d_h = d / h`` features each:

    [Q | K | V] = X W_in + b_in                       W_in (d, 3d), b_in (3d,)
    S = Q_i K_i^T / sqrt(d_h)                          per head i, (T, T)
    P = softmax(S) over the last axis                  causal: S[t, s] = -inf for s > t
    O_i = P V_i,   out = [O_1 | ... | O_h] W_out + b_out   W_out (d, d), b_out (d,)

as ``torch.nn.functional.scaled_dot_product_attention`` per head. PyTorch's
``in_proj_weight`` (3d, d) is ``W_in.T`` and ``out_proj.weight`` is ``W_out.T``.

Backward, with ``G = dL/dout`` and ``C`` the concatenated heads:

    dW_out = C^T G,   db_out = sum G,   dC = G W_out^T  (split back into heads dO_i)
    dV_i = P^T dO_i,   dP = dO_i V_i^T,
    dS = P * (dP - rowsum(P * dP)) / sqrt(d_h)   (softmax backward; rowsum(P * dP)
                                                  equals rowsum(dO_i * O_i))
    dQ_i = dS K_i,   dK_i = dS^T Q_i,
    dW_in = X^T [dQ | dK | dV],  db_in = sum [dQ | dK | dV],  dX = [dQ | dK | dV] W_in^T.

The sequence length ``T`` is not part of the parameters: any ``T >= 1`` works.

Reference: Vaswani et al. 2017, "Attention Is All You Need".
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, config_size, register_layer
from fnn.tree import STATIC_META, read_only, readonly

__all__ = ["MultiHeadAttention", "MultiHeadAttentionCache", "check_heads", "output_shape"]


def _readonly_or_none(x: Any) -> FloatArray | None:
    return None if x is None else readonly(x)


def check_heads(heads: Any, d_model: int) -> int:
    """``heads`` as an int that divides ``d_model``; ValueError naming both otherwise."""
    if isinstance(heads, bool) or not isinstance(heads, int | np.integer):
        raise TypeError(f"heads must be an int, got {type(heads).__name__}")
    if heads < 1:
        raise ValueError(f"heads must be >= 1, got {heads}")
    if d_model % heads:
        raise ValueError(f"heads={heads} does not divide the model width d_model={d_model}")
    return int(heads)


def output_shape(input_shape: tuple[int, ...], d_model: int | None, heads: int) -> tuple[int, ...]:
    """The per-sample input shape (T, d_model) itself (``d_model`` None: any that
    ``heads`` divides); ValueError (naming the layer as ``{layer}``) otherwise."""
    if (
        len(input_shape) != 2
        or (input_shape[0] or 1) < 1
        or (d_model is not None and input_shape[1] != d_model)
    ):
        d = "d_model" if d_model is None else d_model
        raise ValueError(
            f"{{layer}} (MultiHeadAttention) expects per-sample inputs of shape (T, {d}) "
            f"with T >= 1, got {tuple(input_shape)}"
        )
    check_heads(heads, int(input_shape[1]))
    return tuple(input_shape)


_MASKS: dict[int, np.ndarray[Any, np.dtype[np.bool_]]] = {}


def _future(T: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """(T, T) read-only boolean mask over (key s, query t), True where s > t: the keys
    a causal query may not see, in the keys-first layout of the attention weights."""
    m = _MASKS.get(T)
    if m is None:
        m = read_only(np.tril(np.ones((T, T), dtype=bool), k=-1))
        if len(_MASKS) < 32:
            _MASKS[T] = m
    return m


@attrs.frozen(eq=False)
class MultiHeadAttention(LayerBase):
    """A multi-head self-attention layer (and, with the same type, its gradients).

    Attributes:
        W_in: the fused query/key/value projection (d, 3d): columns ``[0, d)`` give Q,
            ``[d, 2d)`` K, ``[2d, 3d)`` V (PyTorch's ``in_proj_weight.T``).
        b_in: its bias (3d,), or None when the layer has no biases.
        W_out: the output projection (d, d) (PyTorch's ``out_proj.weight.T``).
        b_out: its bias (d,), or None (exactly when ``b_in`` is None).
        heads: number of heads (static), dividing d.
        causal: position t attends only to positions <= t (static).
    """

    W_in: FloatArray = attrs.field(converter=readonly)
    b_in: FloatArray | None = attrs.field(converter=_readonly_or_none)
    W_out: FloatArray = attrs.field(converter=readonly)
    b_out: FloatArray | None = attrs.field(converter=_readonly_or_none)
    heads: int = attrs.field(default=1, metadata=STATIC_META)
    causal: bool = attrs.field(default=False, converter=bool, metadata=STATIC_META)

    def __attrs_post_init__(self) -> None:
        if self.W_in.ndim != 2 or self.W_in.shape[1] != 3 * self.W_in.shape[0]:
            raise ValueError(f"W_in must have shape (d, 3d), got {self.W_in.shape}")
        d = self.W_in.shape[0]
        if d == 0:
            raise ValueError("W_in must have shape (d, 3d) with d >= 1, got (0, 0)")
        check_heads(self.heads, d)
        if self.W_out.shape != (d, d):
            raise ValueError(f"W_out must have shape ({d}, {d}), got {self.W_out.shape}")
        if (self.b_in is None) != (self.b_out is None):
            raise ValueError("b_in and b_out must both be arrays or both be None")
        for name, a, shape in (("b_in", self.b_in, (3 * d,)), ("b_out", self.b_out, (d,))):
            if a is not None and a.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        for name, a in (("W_out", self.W_out), ("b_in", self.b_in), ("b_out", self.b_out)):
            if a is not None and a.dtype != self.W_in.dtype:
                raise ValueError(f"{name} has dtype {a.dtype} but W_in has {self.W_in.dtype}")

    @classmethod
    def create(
        cls,
        d_model: int,
        heads: int,
        *,
        causal: bool = False,
        bias: bool = True,
        rng: np.random.Generator,
        dtype: Any = np.float64,
    ) -> MultiHeadAttention:
        """A fresh layer, initialised as ``torch.nn.MultiheadAttention``: ``W_in``
        Xavier-uniform over PyTorch's (3d, d) weight, i.e. U(-a, a) with
        ``a = sqrt(6 / (d + 3d))``; ``W_out`` as ``nn.Linear``'s default,
        U(-1/sqrt(d), 1/sqrt(d)); biases zero."""
        if isinstance(d_model, bool) or not isinstance(d_model, int | np.integer):
            raise TypeError(f"d_model must be an int, got {type(d_model).__name__}")
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        d = int(d_model)
        heads = check_heads(heads, d)
        a_in = math.sqrt(6.0 / (d + 3 * d))
        a_out = 1.0 / math.sqrt(d)
        return cls(
            W_in=rng.uniform(-a_in, a_in, (d, 3 * d)).astype(dtype),
            b_in=np.zeros(3 * d, dtype) if bias else None,
            W_out=rng.uniform(-a_out, a_out, (d, d)).astype(dtype),
            b_out=np.zeros(d, dtype) if bias else None,
            heads=heads,
            causal=causal,
        )

    @property
    def d_model(self) -> int:
        return int(self.W_in.shape[0])

    @property
    def bias(self) -> bool:
        return self.b_in is not None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return output_shape(input_shape, self.d_model, self.heads)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, MultiHeadAttentionCache]:
        """Self-attention over ``X`` (n, T, d) -> out (n, T, d) (module docstring)."""
        if X.ndim != 3 or X.shape[2] != self.d_model or X.shape[1] < 1:
            raise ValueError(f"X must have shape (n, T, {self.d_model}) with T >= 1, got {X.shape}")
        n, T, d = X.shape
        h = self.heads
        dh = d // h
        dt = self.W_in.dtype
        x = X.reshape(n * T, d)
        qkv = ws.empty("qkv", (n * T, 3 * d), dt)
        np.dot(x, self.W_in, out=qkv)
        if self.b_in is not None:
            qkv += self.b_in
        # (n, T, 3, h, dh) -> (3, n, h, T, dh): contiguous per-head blocks for matmul
        qkvh = ws.empty("qkvh", (3, n, h, T, dh), dt)
        np.copyto(qkvh, qkv.reshape(n, T, 3, h, dh).transpose(2, 0, 3, 1, 4))
        q, k, v = qkvh[0], qkvh[1], qkvh[2]
        # the weights keys first, pt[s, t] = P[t, s] (n, h, T_keys, T_queries): reducing
        # over the keys is then an elementwise max / sum of contiguous rows, 4x faster
        # in NumPy than a reduction along each short last-axis row
        pt = ws.empty("p", (n, h, T, T), dt)
        np.matmul(k, q.swapaxes(-1, -2), out=pt)  # S^T = K Q^T
        pt *= dt.type(1.0 / math.sqrt(dh))
        if self.causal and T > 1:
            # exp(-inf) = 0; the diagonal is never masked, so every query keeps a finite max
            np.copyto(pt, dt.type(-np.inf), where=_future(T))
        # stable softmax over the keys: subtract each query's max before exp
        col = ws.empty("row", (n, h, 1, T), dt)
        np.max(pt, axis=-2, keepdims=True, out=col)
        pt -= col
        np.exp(pt, out=pt)
        np.sum(pt, axis=-2, keepdims=True, out=col)
        pt /= col
        o = ws.empty("o", (n, h, T, dh), dt)
        np.matmul(pt.swapaxes(-1, -2), v, out=o)  # O = P V
        # heads side by side again: (n, h, T, dh) -> (n, T, h, dh) = (n T, d)
        c = ws.empty("concat", (n * T, d), dt)
        np.copyto(c.reshape(n, T, h, dh), o.transpose(0, 2, 1, 3))
        out = ws.empty("out", (n * T, d), dt)
        np.dot(c, self.W_out, out=out)
        if self.b_out is not None:
            out += self.b_out
        return out.reshape(n, T, d), MultiHeadAttentionCache(x=x, qkvh=qkvh, pt=pt, o=o, concat=c)

    def backward_into(
        self,
        cache: MultiHeadAttentionCache,
        d_out: FloatArray,
        grads: MultiHeadAttention,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Gradients of the projections and ``d_in`` (n, T, d) (module docstring)."""
        n, T, d = d_out.shape
        h = self.heads
        dh = d // h
        dt = self.W_in.dtype
        g = d_out.reshape(n * T, d)
        rows = ws.ones("rows", n * T, dt)
        np.dot(cache.concat.T, g, out=grads.W_out)
        if grads.b_out is not None:
            np.dot(rows, g, out=grads.b_out)
        dc = ws.empty("d_concat", (n * T, d), dt)
        np.dot(g, self.W_out.T, out=dc)
        do = ws.empty("d_o", (n, h, T, dh), dt)
        np.copyto(do, dc.reshape(n, T, h, dh).transpose(0, 2, 1, 3))
        q, k, v = cache.qkvh[0], cache.qkvh[1], cache.qkvh[2]
        pt = cache.pt  # P^T, keys first (see forward_into)
        dqkvh = ws.empty("d_qkvh", (3, n, h, T, dh), dt)
        np.matmul(pt, do, out=dqkvh[2])  # dV = P^T dO
        dst = ws.empty("d_p", (n, h, T, T), dt)
        np.matmul(v, do.swapaxes(-1, -2), out=dst)  # dP^T = V dO^T
        # softmax backward: dS = P (dP - rowsum(P dP)), with rowsum(P dP) = rowsum(dO O),
        # one value per query: a row (1, T) of the keys-first layout
        prod = ws.empty("d_o_o", (n, h, T, dh), dt)
        np.multiply(do, cache.o, out=prod)
        row = ws.empty("d_row", (n, h, T), dt)
        np.sum(prod, axis=-1, out=row)
        dst -= row.reshape(n, h, 1, T)
        dst *= pt  # masked entries have P = 0, so they get no gradient
        dst *= dt.type(1.0 / math.sqrt(dh))
        np.matmul(dst.swapaxes(-1, -2), k, out=dqkvh[0])  # dQ = dS K
        np.matmul(dst, q, out=dqkvh[1])  # dK = dS^T Q
        dqkv = ws.empty("d_qkv", (n * T, 3 * d), dt)
        np.copyto(dqkv.reshape(n, T, 3, h, dh), dqkvh.transpose(1, 3, 0, 2, 4))
        np.dot(cache.x.T, dqkv, out=grads.W_in)
        if grads.b_in is not None:
            np.dot(rows, dqkv, out=grads.b_in)
        if not need_d_in:
            return None
        d_in = ws.empty("d_in", (n * T, d), dt)
        np.dot(dqkv, self.W_in.T, out=d_in)
        return d_in.reshape(n, T, d)

    def config(self) -> dict[str, object]:
        return {
            "kind": "multi_head_attention",
            "d_model": self.d_model,
            "heads": self.heads,
            "causal": self.causal,
            "bias": self.bias,
        }


@attrs.frozen(eq=False)
class MultiHeadAttentionCache(LayerCache):
    """What the backward pass needs: ``x`` the input (n T, d); ``qkvh`` the projected
    queries, keys and values per head (3, n, h, T, d_h); ``pt`` the attention weights
    keys first, ``pt[..., s, t] = P[..., t, s]`` (n, h, T, T); ``o`` the per-head outputs
    (n, h, T, d_h); ``concat`` the heads side by side (n T, d)."""

    x: FloatArray
    qkvh: FloatArray
    pt: FloatArray
    o: FloatArray
    concat: FloatArray


def _example(
    rng: np.random.Generator, dtype: np.dtype[Any]
) -> tuple[MultiHeadAttention, tuple[int, ...]]:
    # no biases: the key bias b_in[d:2d] has an exactly zero gradient (softmax ignores
    # a constant added to a row), which central differences see as rounding noise
    # relative to nothing; tests/test_attention_torch.py covers the biases
    d, heads = 4, 2
    bias = False
    layer = MultiHeadAttention(
        W_in=rng.normal(size=(d, 3 * d)).astype(dtype),
        b_in=rng.normal(size=3 * d).astype(dtype) if bias else None,
        W_out=rng.normal(size=(d, d)).astype(dtype),
        b_out=rng.normal(size=d).astype(dtype) if bias else None,
        heads=heads,
        causal=bool(rng.integers(2)),
    )
    return layer, (3, d)


def _build(cfg: dict[str, Any], a: dict[str, Any]) -> MultiHeadAttention:
    return MultiHeadAttention(
        W_in=a["W_in"],
        b_in=a.get("b_in"),
        W_out=a["W_out"],
        b_out=a.get("b_out"),
        heads=int(cfg["heads"]),
        causal=bool(cfg["causal"]),
    )


def _shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    d = config_size(cfg, "d_model")
    check_heads(cfg.get("heads"), d)
    out: dict[str, tuple[int, ...]] = {"W_in": (d, 3 * d), "W_out": (d, d)}
    if cfg.get("bias", True):
        out |= {"b_in": (3 * d,), "b_out": (d,)}
    return out


register_layer(
    "multi_head_attention",
    MultiHeadAttention,
    build=_build,
    example=_example,
    shapes=_shapes,
    create=lambda s, *, rng, dtype, heads, causal=False, bias=True: MultiHeadAttention.create(
        output_shape(s, None, heads)[1], heads, causal=causal, bias=bias, rng=rng, dtype=dtype
    ),
    shape=lambda s, *, heads, **_: output_shape(s, None, heads),
)
