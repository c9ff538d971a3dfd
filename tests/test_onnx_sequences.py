"""Sequence models through ONNX (issue 20, point 6 leftovers): PyTorch's recurrent
layers as its default (dynamo) exporter writes them, and fnn's own transformer
(embedding, positional embedding, attention) exported and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (extra 'onnx')")

import fnn  # noqa: E402
import fnn.onnx as fo  # noqa: E402
from fnn import specs  # noqa: E402
from tests.test_onnx import (  # noqa: E402
    TORCH_REASON,
    assert_same_network,
    assert_same_output,
    run_onnx,
    torch_export,
)

CASES = [
    pytest.param(kind, tokens, last, True, id=f"{kind}-{t_id}-{l_id}")
    for kind in ("RNN", "LSTM", "GRU")
    for tokens, t_id in ((True, "tokens"), (False, "floats"))
    for last, l_id in ((True, "last-step"), (False, "sequence"))
] + [
    pytest.param(kind, False, False, False, id=f"{kind}-no-bias") for kind in ("RNN", "LSTM", "GRU")
]


@pytest.mark.parametrize(("kind", "tokens", "last", "bias"), CASES)
def test_pytorch_dynamo_recurrent_models_load_and_predict_what_pytorch_does(
    kind: str, tokens: bool, last: bool, bias: bool, tmp_path: Path
) -> None:
    """nn.Embedding (or float sequences) -> one batch-first nn.RNN/LSTM/GRU -> its last
    step or every step -> a dense layer, written by torch.onnx.export(dynamo=True): the
    LSTM and GRU as ONNX's operators with zero states made by Expand, nn.RNN written
    out step by step."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (extra 'onnx')")
    nn = torch.nn
    torch.manual_seed(0)

    class Model(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(7, 5)
            self.rnn = getattr(nn, kind)(5, 4, batch_first=True, bias=bias)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: Any) -> Any:
            y, _ = self.rnn(self.embed(x) if tokens else x)
            return self.fc(y[:, -1] if last else y)

    model = Model().eval()
    x = torch.randint(0, 7, (4, 6)) if tokens else torch.randn(4, 6, 5)
    path = torch_export(torch, model, x, tmp_path / "rnn.onnx", True, opset_version=18)
    net = fo.load(path)
    cls = {"RNN": fnn.SimpleRNN, "LSTM": fnn.LSTM, "GRU": fnn.GRU}[kind]
    assert [type(layer) for layer in net.layers] == [
        *([fnn.Embedding] if tokens else []),
        cls,
        fnn.Dense,
    ]
    rnn = net.layers[1 if tokens else 0]
    assert isinstance(rnn, cls) and rnn.return_sequences is not last
    np.testing.assert_array_equal(rnn.W_ih, model.rnn.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(rnn.W_hh, model.rnn.weight_hh_l0.detach().numpy().T)
    if bias:
        b = (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0).detach().numpy()
        np.testing.assert_allclose(rnn.b_ih + rnn.b_hh, b, rtol=1e-6, atol=1e-6)
    else:
        assert not np.any(rnn.b_ih) and not np.any(rnn.b_hh)
    with torch.no_grad():
        want = model(x).numpy()
    X = x.numpy()
    assert_same_output(fnn.predict(net, X), want)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_same_output(fnn.predict(net, X), session.run(None, {"x": X})[0])
    y = np.random.default_rng(0).integers(0, 3, size=want.shape[:-1])
    net = fo.load(path, loss="softmax_cross_entropy")
    _, history = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=5, batch_size=4, rng=0)
    assert history.train_loss[-1] < history.train_loss[0]


def transformer(dtype: Any, causal: bool, bias: bool) -> fnn.Network:
    arch = fnn.sequential(
        (None,),
        [
            specs.embedding(7, 8),
            specs.positional_embedding(10),
            *specs.transformer_block(2, causal=causal, bias=bias),
            specs.multi_head_attention(4, causal=not causal, bias=not bias),
            specs.layer_norm(),
            specs.dense(7, bias=bias),
        ],
        output="softmax",
        dtype=dtype,
    )
    return fnn.init(arch, rng=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_a_transformer_exported_by_fnn_loads_back(
    dtype: Any, causal: bool, bias: bool, tmp_path: Path
) -> None:
    """Embedding, positional embedding, a transformer block and attention: exported,
    run by ONNX Runtime as fnn.predict, read back as the same network (with fnn's
    metadata) or one that computes the same (without it), for any length up to max_len."""
    net = transformer(np.dtype(dtype), causal, bias)
    path = fo.export(net, tmp_path / "t.onnx")
    back = fo.load(path)
    assert_same_network(back, net)
    assert back.input_shape == (None,)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    plain = fo.load(bare)
    kinds = [type(layer) for layer in plain.layers]
    assert kinds.count(fnn.MultiHeadAttention) == 1 and fnn.PositionalEmbedding in kinds
    # a layer norm's epsilon (1e-5) is a float32 attribute in the graph: in float64, the
    # runtime, and a network read without fnn's metadata, add a slightly different one,
    # which moves the output by up to about 1e-9 relative (see fnn.onnx)
    tol = 1e-5 if net.dtype == np.float32 else 1e-9
    for T in (1, 4, 10):
        X = np.random.default_rng(T).integers(0, 7, size=(3, T))
        want = fnn.predict(net, X)
        assert_same_output(fnn.predict(back, X), want)
        for got in (run_onnx(path, X, net.dtype), fnn.predict(plain, X)):
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_attention_that_is_not_exactly_fnns_is_refused(tmp_path: Path) -> None:
    """The attention pattern is read only with its exact scale: another one is an
    error naming the file, never an approximation."""
    net = transformer(np.dtype(np.float32), True, True)
    model = onnx.load(str(fo.export(net, tmp_path / "t.onnx")))
    for t in model.graph.initializer:
        if t.name.endswith(".scale"):
            t.CopyFrom(onnx.numpy_helper.from_array(np.array(0.4, np.float32), t.name))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(ValueError, match=r"bad\.onnx: "):
        fo.load(tmp_path / "bad.onnx")


@pytest.mark.parametrize("last", [True, False], ids=["last-step", "sequence"])
def test_float_sequences_of_any_length_load_back(last: bool, tmp_path: Path) -> None:
    """A network on float sequences (None, features): its time axis stays dynamic."""
    arch = fnn.sequential(
        (None, 3),
        [specs.gru(4, return_sequences=not last), specs.layer_norm(), specs.dense(2)],
        dtype=np.float32,
    )
    net = fnn.init(arch, rng=0)
    back = fo.load(fo.export(net, tmp_path / "g.onnx"))
    assert back.input_shape == (None, 3)
    assert_same_network(back, net)
    for T in (1, 7):
        X = np.random.default_rng(T).normal(size=(2, T, 3)).astype(np.float32)
        assert_same_output(fnn.predict(back, X), fnn.predict(net, X))
