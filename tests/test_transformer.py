"""fnn.specs.transformer_block: a pre-LayerNorm GPT block built from Residual, LayerNorm,
MultiHeadAttention and Dense (no new math); a small character model on token ids."""

from __future__ import annotations

import numpy as np
import pytest

import fnn

s = fnn.specs


def gpt(vocab: int = 11, d: int = 16, context: int = 8, bias: bool = True) -> fnn.Architecture:
    return fnn.sequential(
        (None,),
        [
            s.embedding(vocab, d),
            s.positional_embedding(context),
            *s.transformer_block(4, bias=bias),
            *s.transformer_block(4, bias=bias),
            s.layer_norm(),
            s.dense(vocab, bias=False),
        ],
        output="softmax",
    )


def test_the_block_is_two_residuals_of_existing_kinds() -> None:
    net = fnn.init(gpt(), rng=0)
    attn, mlp = net.layers[2], net.layers[3]
    assert isinstance(attn, fnn.Residual) and isinstance(mlp, fnn.Residual)
    assert [type(x).__name__ for x in attn.body] == ["LayerNorm", "MultiHeadAttention"]
    assert [type(x).__name__ for x in mlp.body] == ["LayerNorm", "Dense", "Dense"]
    assert mlp.body[1].W.shape == (16, 64) and mlp.body[2].W.shape == (64, 16)  # type: ignore[attr-defined]
    assert attn.shortcut == () and mlp.shortcut == ()
    no_bias = fnn.init(gpt(bias=False), rng=0)
    assert not any(p.endswith(".b") for p in fnn.tree.flatten(no_bias))


def test_gradients_and_causality() -> None:
    net = fnn.init(gpt(), rng=0)
    rng = np.random.default_rng(1)
    X, y = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    fnn.testing.check_grads(net, X, y)
    fnn.testing.check_grads(net, X[:, :5], y[:, :5])  # any length up to the context
    # position t sees positions <= t only: changing the last token changes nothing before
    X2 = X.copy()
    X2[:, -1] = (X2[:, -1] + 1) % 11
    a, b = fnn.predict(net, X), fnn.predict(net, X2)
    np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
    assert not np.allclose(a[:, -1], b[:, -1])


def test_fit_equals_a_loop_of_train_step_and_learns() -> None:
    net = fnn.init(gpt(), rng=0)
    # a sequence that repeats: the next token is (token + 1) % 11
    start = np.random.default_rng(2).integers(0, 11, 24)
    X = (start[:, None] + np.arange(8)) % 11
    y = (X + 1) % 11
    opt = fnn.adam(1e-2)
    fitted, h = fnn.fit(net, opt, X, y, epochs=3, batch_size=8, rng=0, shuffle=False, verbose=0)
    loop, state = net, opt.init(net)
    for _ in range(3):
        for i in range(0, 24, 8):
            loop, state, _ = fnn.train_step(loop, state, X[i : i + 8], y[i : i + 8])
    np.testing.assert_array_equal(fitted.flat, loop.flat)
    assert h.train_loss[-1] < h.train_loss[0]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divide"):
        fnn.sequential((None,), [s.embedding(5, 6), *s.transformer_block(4), s.dense(5)])
    with pytest.raises(ValueError):
        s.transformer_block(4, dropout=1.5)
    with pytest.raises(ValueError, match="mlp_ratio"):
        s.transformer_block(4, mlp_ratio=0)
