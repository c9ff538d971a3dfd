"""Layers made of layers (fnn.Residual, fnn.Parallel): shapes, paths, errors, workspaces,
and the math against PyTorch autograd in float64 (outputs, parameter gradients, input
gradients and the new running statistics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn.layers import Composite, Kept, Workspace
from fnn.layers.conv2d import resolve_padding

s = fnn.specs


def resnet_arch(dtype: Any = np.float64) -> fnn.Architecture:
    """Convolutions, batch norm, a projection shortcut, an identity shortcut, a
    concatenation with an identity branch, a nested block and a dense 'add' head."""
    return fnn.sequential(
        (6, 6, 3),
        [
            s.residual(
                [
                    s.conv2d(4, 3, stride=2, padding=1),
                    s.batch_norm(),
                    s.activation("relu"),
                    s.conv2d(4, 3, padding="same"),
                ],
                [s.conv2d(4, 1, stride=2), s.batch_norm()],
            ),
            s.parallel(
                [
                    [s.conv2d(2, 1)],
                    [s.conv2d(3, 3, padding="same"), s.batch_norm()],
                    [],
                ]
            ),
            s.residual([s.conv2d(9, 3, padding="same", activation="tanh")]),
            s.global_avg_pool2d(),
            s.dense(5, activation="relu"),
            s.parallel(
                [[s.dense(3, activation="tanh")], [s.residual([s.dense(5)]), s.dense(3)]],
                merge="add",
            ),
        ],
        output="softmax",
        dtype=dtype,
    )


def data(n: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 3)), rng.integers(0, 3, n)


def net_with_state() -> fnn.Network:
    """The network with non-trivial biases and running statistics."""
    net = fnn.init(resnet_arch(), rng=0)
    rng = np.random.default_rng(5)
    flat = net.flat.copy()
    flat += 0.1 * rng.normal(size=flat.shape)
    lay = net.layout
    for lo, hi in lay.state_slices:  # running variances must stay positive
        flat[lo:hi] = np.abs(flat[lo:hi]) + 0.5
    return net.with_flat(flat)


# --- structure ------------------------------------------------------------------------


def test_inner_leaves_have_paths_in_the_one_flat_layout() -> None:
    net = fnn.init(resnet_arch(), rng=0)
    paths = list(fnn.tree.flatten(net))
    for p in (
        "layers.0.body.0.W",
        "layers.0.body.1.running_var",
        "layers.0.body.3.b",
        "layers.0.shortcut.0.W",
        "layers.0.shortcut.1.scale",
        "layers.1.branches.0.0.W",
        "layers.1.branches.1.1.shift",
        "layers.2.body.0.W",
        "layers.5.branches.1.0.body.0.W",
    ):
        assert p in paths
    # every leaf is a view of the network's one buffer
    for leaf in fnn.tree.leaves(net):
        assert np.shares_memory(leaf, net.flat)
    # running statistics inside blocks are state: optimizers never change them
    mask = fnn.tree.trainable_mask(net)
    assert not mask["layers.0.shortcut.1.running_mean"] and mask["layers.0.shortcut.1.scale"]


def test_shapes_are_inferred_inside_blocks() -> None:
    net = fnn.init(resnet_arch(), rng=0)
    assert net.shapes == ((3, 3, 4), (3, 3, 9), (3, 3, 9), (9,), (5,), (3,))
    res = net.layers[0]
    assert isinstance(res, fnn.Residual)
    assert isinstance(res.body[0], fnn.Conv2D) and res.body[0].W.shape == (3, 3, 3, 4)
    assert isinstance(res.shortcut[0], fnn.Conv2D) and res.shortcut[0].W.shape == (1, 1, 3, 4)


def test_summary_shows_the_nesting() -> None:
    text = fnn.summary(resnet_arch())
    lines = text.splitlines()
    row = {line.split()[0]: line for line in lines if line and line[0].isdigit()}
    assert row["0"].split()[1] == "Residual"
    assert "(None, 3, 3, 4)" in row["0.body.0"] and "Conv2D" in row["0.body.0"]
    assert "BatchNorm" in row["0.shortcut.1"]
    assert "(None, 3, 3, 2)" in row["1.branches.0.0"]
    assert "Dense" in row["5.branches.1.0.body.0"]
    # inner rows are indented below their block; the totals count each leaf once
    assert row["0.body.0"].index("Conv2D") > row["0"].index("Residual")
    net = fnn.init(resnet_arch(), rng=0)
    total = sum(int(np.size(x)) for x in fnn.tree.leaves(net))
    assert f"Total params: {total:,}" in text


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [s.residual([s.conv2d(8, 3, padding="same")])],
            r"layers\.0 \(Residual\): body gives \(6, 6, 8\), input is \(6, 6, 3\); add a shortcut",
        ),
        (
            [s.conv2d(3, 1), s.residual([s.conv2d(4, 3)], [s.conv2d(4, 1)])],
            r"layers\.1 \(Residual\): body gives \(4, 4, 4\), shortcut gives \(6, 6, 4\)",
        ),
        (
            [s.parallel([[s.conv2d(2, 3)], []])],
            r"layers\.0 \(Parallel\): branches\.0 gives \(4, 4, 2\), branches\.1 gives \(6, 6, 3\); 'concat'",
        ),
        (
            [s.parallel([[s.conv2d(2, 1)], []], merge="add")],
            r"layers\.0 \(Parallel\): branches\.0 gives \(6, 6, 2\), branches\.1 gives \(6, 6, 3\); 'add'",
        ),
        (
            [s.residual([s.conv2d(3, 1), s.dense(3)])],
            r"layers\.0\.body\.1 \(Dense\) expects inputs of shape .*, got \(6, 6, 3\)",
        ),
        (
            [s.parallel([[], [s.residual([s.conv2d(2, 1)])]])],
            r"layers\.0\.branches\.1\.0 \(Residual\): body gives \(6, 6, 2\), input is \(6, 6, 3\)",
        ),
    ],
)
def test_blocks_whose_shapes_do_not_merge_are_refused_when_described(
    layers: list[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fnn.sequential((6, 6, 3), [*layers, s.flatten(), s.dense(2)])


def test_blocks_whose_shapes_do_not_merge_are_refused_when_the_network_is_built() -> None:
    rng = np.random.default_rng(0)
    dense = fnn.Dense(W=rng.normal(size=(3, 4)))
    with pytest.raises(
        ValueError, match=r"layers\.0 \(Residual\): body gives \(4,\), input is \(3,\)"
    ):
        fnn.Network(layers=[fnn.Residual(body=[dense]), fnn.Dense(W=np.ones((4, 1)))], loss="mse")
    with pytest.raises(
        ValueError,
        match=r"layers\.1 \(Parallel\): branches\.0 gives \(4,\), branches\.1 gives \(3,\); 'add'",
    ):
        fnn.Network(
            layers=[fnn.Activation("relu"), fnn.Parallel([[dense], []], merge="add")],
            loss="mse",
            input_shape=(3,),
        )


def test_bad_block_arguments_name_themselves() -> None:
    dense = fnn.Dense(W=np.ones((3, 3)))
    with pytest.raises(ValueError, match="at least 2 branches, got 1"):
        fnn.Parallel([[dense]])
    with pytest.raises(ValueError, match="merge must be 'concat' or 'add', got 'sum'"):
        fnn.Parallel([[dense], []], merge="sum")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"body\.1 is a int, not an fnn layer"):
        fnn.Residual(body=[dense, 3])
    with pytest.raises(TypeError, match=r"body\[0\] must be a layer spec"):
        s.residual([dense])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least 2 branches"):
        s.parallel([[s.dense(2)]])
    # None and () are the identity shortcut; a single layer is a chain of one
    assert fnn.Residual(body=dense, shortcut=None).shortcut == ()
    assert fnn.Residual(body=dense).body == (dense,)


# --- training ---------------------------------------------------------------------------


def test_gradients_agree_with_central_differences() -> None:
    X, y = data(5)
    net = net_with_state()
    fnn.testing.check_grads(net, X, y)
    fnn.testing.check_grads(net, X, y, train=True)


def test_fit_equals_a_loop_of_train_step_bit_for_bit() -> None:
    # in fit each inner layer keeps its own arrays between steps (ws.child): a shared
    # workspace would let one inner layer overwrite another's output, and fit would drift
    X, y = data(24)
    net0 = net_with_state()
    opt = fnn.adam(1e-2)
    fitted, _ = fnn.fit(net0, opt, X, y, epochs=2, batch_size=8, shuffle=False, verbose=0, rng=0)
    net, state = net0, opt.init(net0)
    for _ in range(2):
        for i in range(0, 24, 8):
            net, state, _ = fnn.train_step(net, state, X[i : i + 8], y[i : i + 8])
    np.testing.assert_array_equal(fitted.flat, net.flat)
    # the running statistics inside the blocks moved
    assert not np.array_equal(
        fitted.layers[0].shortcut[1].running_mean,  # type: ignore[attr-defined]
        net0.layers[0].shortcut[1].running_mean,  # type: ignore[attr-defined]
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    X, y = data(16)
    opt = fnn.sgd(0.05, momentum=0.9)
    net, h = fnn.fit(net_with_state(), opt, X, y, epochs=1, batch_size=8, verbose=0, rng=0)
    path = tmp_path / "resnet.npz"
    fnn.save(path, net, opt_state=h.opt_state, history=h)
    ck = fnn.load(path)
    assert ck.params.layout.key == net.layout.key
    np.testing.assert_array_equal(ck.params.flat, net.flat)
    np.testing.assert_array_equal(fnn.predict(ck.params, X), fnn.predict(net, X))
    assert ck.opt_state is not None
    fnn.train_step(ck.params, ck.opt_state, X[:8], y[:8])


def test_a_user_composite_built_as_documented_trains_like_a_builtin() -> None:
    """A composite of the user's own: y = a(x) * b(x) elementwise, its inner layers each
    in their own child workspace."""

    @attrs.frozen(eq=False)
    class Gated(fnn.layers.LayerBase):
        a: fnn.Dense
        b: fnn.Dense

        @property
        def n_in(self) -> int:
            return int(self.a.W.shape[0])

        def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
            return (int(self.a.W.shape[1]),)

        def forward_into(self, X: Any, ctx: Any, ws: Workspace) -> Any:
            ha, ca = self.a.forward_into(X, ctx, ws.child("a"))
            hb, cb = self.b.forward_into(X, ctx, ws.child("b"))
            out = np.multiply(ha, hb, out=ws.empty("out", ha.shape, ha.dtype))
            return out, (ca, cb, ha, hb)

        def backward_into(
            self,
            cache: Any,
            d_out: Any,
            grads: Any,
            ctx: Any,
            ws: Workspace,
            need_d_in: bool = True,
        ) -> Any:
            ca, cb, ha, hb = cache
            da = self.a.backward_into(ca, d_out * hb, grads.a, ctx, ws.child("a"), need_d_in)
            db = self.b.backward_into(cb, d_out * ha, grads.b, ctx, ws.child("b"), need_d_in)
            return None if da is None or db is None else da + db

        def config(self) -> dict[str, object]:
            return {"kind": "gated"}

    rng = np.random.default_rng(0)
    gated = Gated(
        a=fnn.Dense(W=rng.normal(size=(3, 4)), activation="tanh"),
        b=fnn.Dense(W=rng.normal(size=(3, 4)), activation="sigmoid"),
    )
    net = fnn.Network(layers=[gated, fnn.Dense(W=rng.normal(size=(4, 1)))], loss="mse")
    X = rng.normal(size=(12, 3))
    y = rng.normal(size=12)
    fnn.testing.check_grads(net, X, y)
    opt = fnn.sgd(0.1)
    fitted, _ = fnn.fit(net, opt, X, y, epochs=3, batch_size=4, shuffle=False, verbose=0, rng=0)
    loop, state = net, opt.init(net)
    for _ in range(3):
        for i in range(0, 12, 4):
            loop, state, _ = fnn.train_step(loop, state, X[i : i + 4], y[i : i + 4])
    np.testing.assert_array_equal(fitted.flat, loop.flat)


def test_kept_workspaces_give_each_child_its_own_arrays() -> None:
    ws = Kept()
    a = ws.child(("body", 0)).empty("out", (2, 3), np.dtype(np.float64))
    b = ws.child(("body", 1)).empty("out", (2, 3), np.dtype(np.float64))
    assert not np.shares_memory(a, b)
    assert ws.child(("body", 0)).empty("out", (2, 3), np.dtype(np.float64)) is a  # kept
    assert len(ws.all_arrays()) == 2
    fresh = Workspace()
    assert fresh.child("x") is fresh  # fresh arrays need no separation


def test_composites_are_composite() -> None:
    net = fnn.init(resnet_arch(), rng=0)
    kinds = [type(layer) for layer in net.layers if isinstance(layer, Composite)]
    assert kinds == [fnn.Residual, fnn.Parallel, fnn.Residual, fnn.Parallel]


# --- against PyTorch autograd, float64 ----------------------------------------------------


def _torch() -> Any:
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed (extra 'bench' installs it)"
    )


class TorchMirror:
    """Runs an fnn network's layers with torch operations on NHWC tensors, one torch
    leaf tensor per fnn leaf (by path), batch norm in training mode."""

    def __init__(self, torch: Any, net: fnn.Network) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.leaves = {
            p: torch.tensor(np.array(x), requires_grad=True)
            for p, x in fnn.tree.flatten(net).items()
        }
        self.new_state: dict[str, Any] = {}

    def chain(self, layers: Any, x: Any, prefix: str) -> Any:
        for j, layer in enumerate(layers):
            x = self.layer(layer, x, f"{prefix}.{j}")
        return x

    def layer(self, layer: Any, x: Any, path: str) -> Any:
        torch, F = self.torch, self.F
        L = self.leaves
        if isinstance(layer, fnn.Residual):
            return self.chain(layer.body, x, f"{path}.body") + self.chain(
                layer.shortcut, x, f"{path}.shortcut"
            )
        if isinstance(layer, fnn.Parallel):
            outs = [self.chain(b, x, f"{path}.branches.{k}") for k, b in enumerate(layer.branches)]
            return torch.cat(outs, dim=-1) if layer.merge == "concat" else sum(outs)
        if isinstance(layer, fnn.Conv2D):
            kh, kw = layer.W.shape[:2]
            pads, _ = resolve_padding(
                layer.padding, (x.shape[1], x.shape[2]), (kh, kw), layer.stride
            )
            xc = F.pad(x.permute(0, 3, 1, 2), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            w = L[f"{path}.W"].permute(3, 2, 0, 1)
            out = F.conv2d(xc, w, L[f"{path}.b"], stride=layer.stride).permute(0, 2, 3, 1)
            return self.act(layer.activation.name, out)
        if isinstance(layer, fnn.BatchNorm):
            rm = L[f"{path}.running_mean"].detach().clone()
            rv = L[f"{path}.running_var"].detach().clone()
            xc = x.reshape(-1, x.shape[-1])
            out = F.batch_norm(
                xc,
                rm,
                rv,
                L[f"{path}.scale"],
                L[f"{path}.shift"],
                training=True,
                momentum=layer.momentum,
                eps=layer.eps,
            )
            self.new_state[f"{path}.running_mean"] = rm
            self.new_state[f"{path}.running_var"] = rv
            return out.reshape(x.shape)
        if isinstance(layer, fnn.Dense):
            return self.act(layer.activation.name, x @ L[f"{path}.W"] + L[f"{path}.b"])
        if isinstance(layer, fnn.Activation):
            return self.act(layer.activation.name, x)
        if isinstance(layer, fnn.GlobalAvgPool2D):
            return x.mean(dim=(1, 2))
        raise AssertionError(f"no mirror for {type(layer).__name__}")

    def act(self, name: str, x: Any) -> Any:
        return {"identity": x, "relu": self.torch.relu(x), "tanh": self.torch.tanh(x)}[name]


def test_network_of_blocks_equals_torch_autograd() -> None:
    torch = _torch()
    X, y = data(7)
    net = net_with_state()
    out, cache = fnn.forward(net, X, train=True)
    grads = fnn.backward(net, cache, y)

    m = TorchMirror(torch, net)
    logits = m.chain(net.layers, torch.tensor(X), "layers")
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss.backward()
    np.testing.assert_allclose(cache.logits, logits.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        out, torch.softmax(logits, -1).detach().numpy(), rtol=1e-9, atol=1e-12
    )
    g = fnn.tree.flatten(grads)
    mask = fnn.tree.trainable_mask(net)
    assert sum(not t for t in mask.values()) == 6  # three batch norms: running mean, var
    for p, t in mask.items():
        want = m.leaves[p].grad.numpy() if t else m.new_state[p].numpy()
        np.testing.assert_allclose(g[p], want, rtol=1e-9, atol=1e-12, err_msg=p)


@pytest.mark.parametrize("index", [0, 1, 2, 5])
def test_each_block_equals_torch_autograd_with_its_input_gradient(index: int) -> None:
    torch = _torch()
    X, _ = data(7)
    net = net_with_state()
    h = X
    for layer in net.layers[:index]:
        h, _ = layer.forward(h, train=True, rng=None)
    block = net.layers[index]
    out, cache = block.forward(h, train=True, rng=None)
    g = np.random.default_rng(9).normal(size=out.shape)
    grads, d_in = block.backward(cache, g)

    m = TorchMirror(
        torch,
        fnn.Network(
            layers=[block, fnn.Flatten(), fnn.Dense(W=np.ones((out[0].size, 1)))],
            loss="mse",
            input_shape=h.shape[1:],
        ),
    )
    xt = torch.tensor(h, requires_grad=True)
    ot = m.layer(block, xt, "layers.0")
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_in, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    mask = fnn.tree.trainable_mask(block)
    for p, x in fnn.tree.flatten(grads).items():
        want = m.leaves[f"layers.0.{p}"].grad if mask[p] else m.new_state[f"layers.0.{p}"]
        np.testing.assert_allclose(x, want.numpy(), rtol=1e-9, atol=1e-12, err_msg=p)


def test_blocks_report_their_inner_layers_working_size_and_batch_needs() -> None:
    # inference chunks count the convolutions' im2col matrices inside a block, and fit
    # refuses a one-row batch for batch norm inside a block before the first step
    block = fnn.init(resnet_arch(), rng=0).layers[0]
    assert isinstance(block, fnn.Residual)
    conv = block.body[0]
    assert isinstance(conv, fnn.Conv2D)
    assert block.working_size((6, 6, 3)) > conv.working_size((6, 6, 3)) > 4 * 3 * 3 * 4
    dense_bn = fnn.sequential((3,), [s.residual([s.dense(3), s.batch_norm()]), s.dense(1)])
    net = fnn.init(dense_bn, rng=0)
    assert net.layers[0].min_batch_rows((3,)) == 2  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"layers\.0 \(Residual\) needs at least 2 rows"):
        fnn.fit(
            net,
            fnn.sgd(0.1),
            np.zeros((5, 3)),
            np.zeros(5),
            epochs=1,
            batch_size=4,
            rng=0,
            verbose=0,
        )
