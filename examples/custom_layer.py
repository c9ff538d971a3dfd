"""Example 6: your own layers, activation and loss, typed for mypy --strict.

Two layers written to fnn's kernel protocol (docs/custom-layers.md explains each part):

- ``Scale``: ``out = X * s``, a learnable scale per feature;
- ``Center``: ``out = X - mean + shift``, where ``mean`` is the batch mean in training
  and a running estimate (a non-trainable state leaf) at inference, like batch norm
  without the division;

an activation (``Softsign``, ``z / (1 + |z|)``) and a loss (``LogCosh``, identity
output). Each is registered, so networks using them save and load; the gradients of
each are proved against central differences; then a network of them trains on
make_moons shifted far from the origin, and its running mean finds the data's mean.

Run: python examples/custom_layer.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np

import fnn
from fnn.layers import Context, LayerBase, LayerCache, Workspace
from fnn.layers.base import config_size

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]


@attrs.frozen(eq=False)
class ScaleCache(LayerCache):
    x: FloatArray  # the input (batch, ..., n)


@attrs.frozen(eq=False)
class Scale(LayerBase):
    """``out = X * s`` over the last axis; ``s`` (n,) is learnable."""

    s: FloatArray = attrs.field(converter=fnn.tree.readonly)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if not input_shape or input_shape[-1] != self.s.shape[0]:
            raise ValueError(f"expects a last axis of {self.s.shape[0]}, got {input_shape}")
        return input_shape

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, ScaleCache]:
        out = np.multiply(X, self.s, out=ws.empty("out", X.shape, X.dtype))
        return out, ScaleCache(x=X)

    def backward_into(
        self,
        cache: ScaleCache,
        d_out: FloatArray,
        grads: Scale,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        # dL/ds = sum over the batch of x * d_out;  dL/dX = d_out * s
        n = self.s.shape[0]
        xd = np.multiply(cache.x, d_out, out=ws.empty("xd", d_out.shape, d_out.dtype))
        np.sum(xd.reshape(-1, n), axis=0, out=grads.s)
        if not need_d_in:
            return None
        return np.multiply(d_out, self.s, out=ws.empty("d_in", d_out.shape, d_out.dtype))

    def config(self) -> dict[str, object]:
        return {"kind": "scale", "n_features": int(self.s.shape[0])}


@attrs.frozen(eq=False)
class CenterCache(LayerCache):
    count: int  # values per feature in the (global) batch; 0 at inference
    new_mean: FloatArray  # the running mean after this batch (n,)


@attrs.frozen(eq=False)
class Center(LayerBase):
    """``out = X - mean + shift`` over the last axis: ``mean`` is the batch mean in
    training and ``running_mean`` (a state leaf) at inference; ``shift`` is learnable."""

    shift: FloatArray = attrs.field(converter=fnn.tree.readonly)
    running_mean: FloatArray = fnn.tree.state_field(converter=fnn.tree.readonly)
    momentum: float = attrs.field(default=0.1, converter=float, metadata=fnn.tree.STATIC_META)

    @classmethod
    def create(cls, n: int, *, momentum: float = 0.1, dtype: Any = np.float64) -> Center:
        """A fresh layer for ``n`` features: shift and running mean zeros."""
        return cls(shift=np.zeros(n, dtype), running_mean=np.zeros(n, dtype), momentum=momentum)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if not input_shape or input_shape[-1] != self.shift.shape[0]:
            raise ValueError(f"expects a last axis of {self.shift.shape[0]}, got {input_shape}")
        return input_shape

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, CenterCache]:
        n = self.shift.shape[0]
        x = X.reshape(-1, n)
        out = ws.empty("out", x.shape, x.dtype)
        mean: FloatArray
        new_mean: FloatArray
        if ctx.train:
            # sums over the global batch: all processes' rows in data-parallel training
            count = int(ctx.sum_over_processes(np.array([x.shape[0]], x.dtype))[0])
            mean = ctx.sum_over_processes(x.sum(axis=0)) / count
            m = x.dtype.type(self.momentum)
            new_mean = (1 - m) * self.running_mean + m * mean
        else:
            count, mean, new_mean = 0, self.running_mean, self.running_mean
        np.subtract(x, mean, out=out)
        out += self.shift
        return out.reshape(X.shape), CenterCache(count=count, new_mean=new_mean)

    def backward_into(
        self,
        cache: CenterCache,
        d_out: FloatArray,
        grads: Center,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        n = self.shift.shape[0]
        g = d_out.reshape(-1, n)
        np.sum(g, axis=0, out=grads.shift)  # this process's rows, like every gradient
        np.copyto(grads.running_mean, cache.new_mean)  # a state leaf takes the new state
        if not need_d_in:
            return None
        d_in = ws.empty("d_in", g.shape, g.dtype)
        if cache.count:  # training: the mean depends on every row, dX = g - mean(g)
            np.subtract(g, ctx.sum_over_processes(grads.shift) / cache.count, out=d_in)
        else:
            np.copyto(d_in, g)
        return d_in.reshape(d_out.shape)

    def config(self) -> dict[str, object]:
        return {"kind": "center", "n_features": int(self.shift.shape[0]), "momentum": self.momentum}


def _scale_example(rng: np.random.Generator, dtype: np.dtype[Any]) -> tuple[Scale, tuple[int, ...]]:
    return Scale(s=rng.normal(size=3).astype(dtype)), (3,)


def _center_example(
    rng: np.random.Generator, dtype: np.dtype[Any]
) -> tuple[Center, tuple[int, ...]]:
    shift, mean = rng.normal(size=(2, 3)).astype(dtype)
    return Center(shift=shift, running_mean=mean, momentum=0.2), (2, 3)


fnn.layers.register_layer(
    "scale",
    Scale,
    example=_scale_example,
    shapes=lambda cfg: {"s": (config_size(cfg, "n_features"),)},
)
fnn.layers.register_layer(
    "center",
    Center,
    example=_center_example,
    shapes=lambda cfg: {k: (config_size(cfg, "n_features"),) for k in ("shift", "running_mean")},
)


@attrs.frozen
class Softsign(fnn.activations.Activation):
    """``f(z) = z / (1 + |z|)``; ``f'(z) = (1 - |f(z)|)^2`` reads off the output."""

    name: ClassVar[str] = "softsign"
    in_place: ClassVar[bool] = True  # vjp needs only a, so a may overwrite z

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        d = np.abs(z)
        d += 1
        r: FloatArray = np.divide(z, d, out=d if out is None else out)
        return r

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        t = 1 - np.abs(a)
        t *= t
        r: FloatArray = np.multiply(da, t, out=t if out is None else out)
        return r


fnn.activations.register(Softsign)


@attrs.frozen
class LogCosh(fnn.losses.Loss):
    """``mean(log(cosh(z - y)))`` with an identity output; gradient ``tanh(z - y)``."""

    name: ClassVar[str] = "log_cosh"

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        d = logits - y
        k = logits.shape[1]
        per = None
        if value:  # log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log(2): no overflow
            a = np.abs(d)
            per = (a + np.log1p(np.exp(-2 * a)) - np.log(2)).mean(axis=1)
        return per, np.tanh(d) / k


fnn.losses.register(LogCosh)


def main(quick: bool = False) -> dict[str, float]:
    gen = np.random.default_rng(0)
    x = gen.normal(size=(8, 3))
    worst = max(
        fnn.testing.check_layer_grads(Scale(s=[0.5, -1.0, 2.0]), x, mode="elementwise"),
        fnn.testing.check_layer_grads(Center.create(3), x, train=True, mode="elementwise"),
        fnn.testing.check_layer_grads(Center.create(3), x, mode="elementwise"),
        fnn.testing.check_layer_grads(fnn.layers.Activation(Softsign()), x),
    )
    reg = fnn.Network(layers=[fnn.Dense(W=gen.normal(size=(3, 2)))], loss=LogCosh())
    worst = max(worst, fnn.testing.check_grads(reg, x, gen.normal(size=(8, 2))))
    print(f"gradient checks passed (worst relative error {worst:.1e})")

    # the moons, far from the origin: Center learns where they are
    X, y = fnn.datasets.make_moons(1000, noise=0.2, rng=1)
    X_train, X_test, y_train, y_test = fnn.datasets.train_test_split(
        X + np.array([40.0, -25.0]), y, test_size=0.2, rng=1, stratify=True
    )
    rng = np.random.default_rng(1)
    net = fnn.Network(
        layers=[
            Center.create(2),
            fnn.dense.init(2, 16, rng=rng, activation=Softsign()),
            Scale(s=np.ones(16)),
            fnn.dense.init(16, 1, rng=rng),
        ],
        loss="binary_cross_entropy",
        input_shape=(2,),  # Center takes samples of any shape (..., 2)
    )
    epochs = 10 if quick else 60
    net, _ = fnn.fit(net, fnn.adam(1e-2), X_train, y_train, epochs=epochs, rng=1, verbose=0)
    accuracy = fnn.metrics.accuracy(y_test, fnn.predict(net, X_test))
    center = net.layers[0]
    assert isinstance(center, Center)
    print(f"moons shifted to (40, -25): test accuracy {accuracy:.3f} after {epochs} epochs")
    print(f"running mean {np.round(center.running_mean, 2)}, data mean {X_train.mean(0).round(2)}")

    with tempfile.TemporaryDirectory() as folder:  # removed at the end
        loaded = fnn.load(fnn.save(Path(folder) / "net", net)).params
    same = bool(np.array_equal(fnn.predict(loaded, X_test), fnn.predict(net, X_test)))
    print(f"saved and loaded with its custom kinds: same predictions {same}")
    return {
        "worst_error": worst,
        "test_accuracy": accuracy,
        "mean_error": float(np.abs(center.running_mean - X_train.mean(0)).max()),
        "round_trip": float(same),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Custom layers (one with state), activation and loss: gradient checks, "
        "training on shifted moons, and a checkpoint round trip (in a temporary folder)."
    )
    parser.add_argument("--quick", action="store_true", help="10 epochs (default: 60)")
    main(quick=parser.parse_args().quick)
