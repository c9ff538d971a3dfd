"""An activation as a layer of its own: ``a = f(X)`` elementwise, any input shape.

Used between a batch-norm layer and the next block (``Dense`` (identity) ->
``BatchNorm`` -> ``Activation``); a dense layer's own activation is the cheaper choice
otherwise. The backward pass is the activation's vector-Jacobian product,
``d_in = d_out * f'(X)``.
"""

from __future__ import annotations

from typing import Any

import attrs

from fnn import activations as _activations
from fnn._types import FloatArray
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, register_layer, same_shape
from fnn.tree import STATIC_META

__all__ = ["Activation", "ActivationCache"]


@attrs.frozen(eq=False)
class Activation(LayerBase):
    """A layer applying an activation elementwise; no leaves.

    ``fnn.Activation("relu")`` or ``fnn.Activation(fnn.activations.LeakyReLU(0.2))``.

    Attributes:
        activation: the activation (static); a name is looked up once.
    """

    activation: _activations.Activation = attrs.field(
        converter=_activations.get, metadata=STATIC_META
    )

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, ActivationCache]:
        """``a = f(X)``, same shape as ``X``."""
        a = self.activation(X, out=ws.empty("out", X.shape, X.dtype))
        return a, ActivationCache(x=X, a=a)

    def backward_into(
        self,
        cache: ActivationCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``d_in = d_out * f'(X)``."""
        if not need_d_in:
            return None
        return self.activation.vjp(
            cache.x, cache.a, d_out, out=ws.empty("d_in", d_out.shape, d_out.dtype)
        )

    def config(self) -> dict[str, object]:
        return {"kind": "activation", "activation": self.activation.config()}


@attrs.frozen(eq=False)
class ActivationCache(LayerCache):
    """The input ``x`` and output ``a`` (same shape)."""

    x: FloatArray
    a: FloatArray


register_layer(
    "activation",
    Activation,
    build=lambda cfg, a: Activation(cfg["activation"]),
    example=lambda rng, dtype: (Activation("elu"), (2, 3)),
    shapes=lambda cfg: {},
    create=lambda s, *, rng, dtype, activation: Activation(activation),
    shape=same_shape,
)
