"""fnn.MultiHeadAttention against PyTorch autograd in float64 (outputs, parameter and
input gradients to 1e-9 relative), its gradient check, dtypes, varying sequence
lengths, initialisation and bad inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fnn
from fnn.layers import LAYERS

torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench' installs it)")
F = torch.nn.functional

RTOL = 1e-9


def close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=1e-12)


def random_layer(
    rng: np.random.Generator, d: int, heads: int, *, causal: bool, bias: bool
) -> fnn.MultiHeadAttention:
    return fnn.MultiHeadAttention(
        W_in=rng.normal(scale=0.6, size=(d, 3 * d)),
        b_in=rng.normal(size=3 * d) if bias else None,
        W_out=rng.normal(scale=0.6, size=(d, d)),
        b_out=rng.normal(size=d) if bias else None,
        heads=heads,
        causal=causal,
    )


def torch_sdpa_block(layer: fnn.MultiHeadAttention, x: Any) -> tuple[Any, dict[str, Any]]:
    """The same block written with F.scaled_dot_product_attention; returns the output
    and the leaf tensors (fnn orientation) whose gradients to compare."""
    leaves = {
        name: torch.tensor(np.array(a), requires_grad=True)
        for name, a in (
            ("W_in", layer.W_in),
            ("b_in", layer.b_in),
            ("W_out", layer.W_out),
            ("b_out", layer.b_out),
        )
        if a is not None
    }
    n, T, d = x.shape
    h = layer.heads
    qkv = x @ leaves["W_in"]
    if "b_in" in leaves:
        qkv = qkv + leaves["b_in"]
    q, k, v = (t.reshape(n, T, h, d // h).transpose(1, 2) for t in qkv.split(d, dim=-1))
    o = F.scaled_dot_product_attention(q, k, v, is_causal=layer.causal)
    out = o.transpose(1, 2).reshape(n, T, d) @ leaves["W_out"]
    if "b_out" in leaves:
        out = out + leaves["b_out"]
    return out, leaves


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("d", "heads", "T"), [(8, 2, 5), (6, 3, 1), (4, 1, 7)])
def test_attention_equals_torch_sdpa(causal: bool, bias: bool, d: int, heads: int, T: int) -> None:
    rng = np.random.default_rng(d * 10 + heads + T)
    layer = random_layer(rng, d, heads, causal=causal, bias=bias)
    x = rng.normal(size=(3, T, d))
    out, cache = layer.forward(x)
    g = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, g)

    xt = torch.tensor(x, requires_grad=True)
    yt, leaves = torch_sdpa_block(layer, xt)
    yt.backward(torch.tensor(g))
    close(out, yt.detach().numpy())
    close(d_in, xt.grad.numpy())
    for name, t in leaves.items():
        close(getattr(grads, name), t.grad.numpy())
    if not bias:
        assert grads.b_in is None and grads.b_out is None


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_attention_equals_torch_multihead_attention(causal: bool, bias: bool) -> None:
    rng = np.random.default_rng(7)
    d, heads, T = 8, 4, 6
    mha = torch.nn.MultiheadAttention(d, heads, bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # random weights (and biases) rather than the zero-bias init
        mha.in_proj_weight.copy_(torch.tensor(rng.normal(scale=0.6, size=(3 * d, d))))
        mha.out_proj.weight.copy_(torch.tensor(rng.normal(scale=0.6, size=(d, d))))
        if bias:
            mha.in_proj_bias.copy_(torch.tensor(rng.normal(size=3 * d)))
            mha.out_proj.bias.copy_(torch.tensor(rng.normal(size=d)))
    # PyTorch's weights map by a transpose
    layer = fnn.MultiHeadAttention(
        W_in=mha.in_proj_weight.detach().numpy().T,
        b_in=mha.in_proj_bias.detach().numpy() if bias else None,
        W_out=mha.out_proj.weight.detach().numpy().T,
        b_out=mha.out_proj.bias.detach().numpy() if bias else None,
        heads=heads,
        causal=causal,
    )
    x = rng.normal(size=(2, T, d))
    out, cache = layer.forward(x)
    g = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, g)

    xt = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    yt, _ = mha(
        xt, xt, xt, need_weights=False, attn_mask=mask if causal else None, is_causal=causal
    )
    yt.backward(torch.tensor(g))
    close(out, yt.detach().numpy())
    close(d_in, xt.grad.numpy())
    close(grads.W_in, mha.in_proj_weight.grad.numpy().T)
    close(grads.W_out, mha.out_proj.weight.grad.numpy().T)
    if bias:
        close(grads.b_in, mha.in_proj_bias.grad.numpy())
        close(grads.b_out, mha.out_proj.bias.grad.numpy())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_attention_gradient_check(causal: bool, bias: bool) -> None:
    rng = np.random.default_rng(3)
    layer = random_layer(rng, 6, 2, causal=causal, bias=bias)
    err = fnn.testing.check_layer_grads(layer, rng.normal(size=(2, 4, 6)))
    assert err < 1e-5


def test_causal_output_ignores_the_future() -> None:
    rng = np.random.default_rng(4)
    layer = random_layer(rng, 4, 2, causal=True, bias=True)
    x = rng.normal(size=(2, 6, 4))
    x2 = x.copy()
    x2[:, 3:] = rng.normal(size=(2, 3, 4)) * 100  # change positions 3.. only
    a, _ = layer.forward(x)
    b, _ = layer.forward(x2)
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_sequence_length_varies_between_calls() -> None:
    rng = np.random.default_rng(5)
    layer = random_layer(rng, 4, 2, causal=True, bias=True)
    for T in (1, 3, 9):
        x = rng.normal(size=(2, T, 4))
        out, cache = layer.forward(x)
        assert out.shape == (2, T, 4)
        grads, d_in = layer.backward(cache, np.ones_like(out))
        assert d_in.shape == x.shape and grads.W_in.shape == (4, 12)
    # one position attends to itself only: out = (x W_v + b_v) W_out + b_out
    x = rng.normal(size=(3, 1, 4))
    out, _ = layer.forward(x)
    assert layer.b_in is not None and layer.b_out is not None
    v = x[:, 0] @ layer.W_in[:, 8:] + layer.b_in[8:]
    np.testing.assert_allclose(out[:, 0], v @ layer.W_out + layer.b_out, rtol=1e-12)


def test_float32_stays_float32_and_large_scores_stay_finite() -> None:
    rng = np.random.default_rng(6)
    layer = fnn.MultiHeadAttention.create(8, 2, causal=True, rng=rng, dtype=np.float32)
    x = (rng.normal(size=(2, 5, 8)) * 300).astype(np.float32)  # huge scores: softmax saturates
    with np.errstate(all="raise", under="ignore"):
        out, cache = layer.forward(x)
        grads, d_in = layer.backward(cache, np.ones_like(out))
    assert out.dtype == d_in.dtype == np.float32
    assert all(leaf.dtype == np.float32 for leaf in fnn.tree.leaves(grads))
    assert np.isfinite(out).all() and np.isfinite(d_in).all()


def test_initialisation_follows_torch() -> None:
    d = 16
    layer = fnn.MultiHeadAttention.create(d, 4, rng=np.random.default_rng(0))
    a_in = math.sqrt(6 / (d + 3 * d))  # xavier_uniform over (3d, d)
    assert layer.W_in.shape == (d, 3 * d) and np.abs(layer.W_in).max() <= a_in
    assert np.abs(layer.W_in).max() > 0.9 * a_in
    a_out = 1 / math.sqrt(d)  # nn.Linear's kaiming_uniform(a=sqrt(5)) bound
    assert np.abs(layer.W_out).max() <= a_out and np.abs(layer.W_out).max() > 0.9 * a_out
    assert layer.b_in is not None and layer.b_out is not None
    assert not layer.b_in.any() and not layer.b_out.any()
    tm = torch.nn.MultiheadAttention(d, 4)
    # PyTorch's own draws fill the same ranges
    t_in = float(tm.in_proj_weight.detach().abs().max())
    t_out = float(tm.out_proj.weight.detach().abs().max())
    assert 0.9 * a_in < t_in <= a_in and 0.9 * a_out < t_out <= a_out
    no_bias = fnn.MultiHeadAttention.create(d, 4, bias=False, rng=np.random.default_rng(0))
    assert no_bias.b_in is None and no_bias.b_out is None
    assert len(fnn.tree.leaves(no_bias)) == 2


def test_spec_builds_a_network_and_trains() -> None:
    rng = np.random.default_rng(8)
    spec = fnn.specs.multi_head_attention(2, causal=True)
    layer = spec.init(rng=rng, dtype=np.dtype(np.float64), input_shape=(5, 6))
    assert isinstance(layer, fnn.MultiHeadAttention)
    assert layer.config() == {
        "kind": "multi_head_attention",
        "d_model": 6,
        "heads": 2,
        "causal": True,
        "bias": True,
    }
    kind = LAYERS["multi_head_attention"]
    assert kind.shapes is not None
    assert kind.shapes(layer.config()) == {
        "W_in": (6, 18),
        "W_out": (6, 6),
        "b_in": (18,),
        "b_out": (6,),
    }
    rebuilt = kind.build(
        layer.config(),
        {"W_in": layer.W_in, "W_out": layer.W_out, "b_in": layer.b_in, "b_out": layer.b_out},
    )
    x = rng.normal(size=(2, 5, 6))
    np.testing.assert_array_equal(rebuilt.forward(x)[0], layer.forward(x)[0])


def test_heads_not_dividing_d_model() -> None:
    spec = fnn.specs.multi_head_attention(3)
    with pytest.raises(ValueError, match=r"heads=3.*d_model=8"):
        spec.init(rng=np.random.default_rng(0), dtype=np.dtype(np.float64), input_shape=(4, 8))
    with pytest.raises(ValueError, match=r"heads=3.*d_model=8"):
        fnn.MultiHeadAttention.create(8, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="heads must be >= 1"):
        fnn.specs.multi_head_attention(0)
    with pytest.raises(TypeError, match="heads must be an int"):
        fnn.specs.multi_head_attention(2.0)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    rng = np.random.default_rng(9)
    layer = random_layer(rng, 4, 2, causal=False, bias=True)
    with pytest.raises(ValueError, match=r"\(n, T, 4\)"):
        layer.forward(rng.normal(size=(2, 3, 5)))
    with pytest.raises(ValueError, match=r"\(n, T, 4\)"):
        layer.forward(rng.normal(size=(2, 4)))
    with pytest.raises(ValueError, match=r"\(T, 4\)"):
        layer.output_shape((3, 5))
    with pytest.raises(ValueError, match="W_out must have shape"):
        fnn.MultiHeadAttention(
            W_in=np.zeros((4, 12)), b_in=None, W_out=np.zeros((4, 3)), b_out=None, heads=2
        )
    with pytest.raises(ValueError, match="both be arrays or both be None"):
        fnn.MultiHeadAttention(
            W_in=np.zeros((4, 12)), b_in=np.zeros(12), W_out=np.zeros((4, 4)), b_out=None, heads=2
        )
    with pytest.raises(ValueError, match="W_in must have shape"):
        fnn.MultiHeadAttention(
            W_in=np.zeros((4, 8)), b_in=None, W_out=np.zeros((4, 4)), b_out=None, heads=2
        )


def test_in_a_network_built_from_specs() -> None:
    specs: list[fnn.specs.LayerSpec] = [
        fnn.specs.multi_head_attention(3, causal=True),
        fnn.specs.flatten(),
    ]
    arch = fnn.sequential((5, 6), [*specs, fnn.specs.dense(2)], output="softmax")
    net = fnn.init(arch, rng=0)
    layer = net.layers[0]
    assert isinstance(layer, fnn.MultiHeadAttention) and layer.heads == 3 and layer.causal
    X = np.random.default_rng(0).normal(size=(4, 5, 6))
    out, cache = fnn.forward(net, X)
    grads = fnn.backward(net, cache, np.array([0, 1, 1, 0]))
    assert out.shape == (4, 2)
    assert isinstance(grads.layers[0], fnn.MultiHeadAttention)
    assert np.abs(grads.layers[0].W_in).max() > 0
    # heads not dividing the width: ValueError when the network is built, naming both
    with pytest.raises(ValueError, match=r"layers\.0.*heads=4 does not divide.*d_model=6"):
        fnn.sequential((5, 6), [fnn.specs.multi_head_attention(4), *specs[1:]])
