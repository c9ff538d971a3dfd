"""ONNX export and import (issue 15): fnn.onnx against ONNX Runtime, the ONNX reference
evaluator and PyTorch's exporters.

- Every registered layer kind (its ``example``) and every activation, and random
  architectures mixing them: ONNX Runtime's output equals ``fnn.predict``'s in float32
  (1e-5 of the output's scale); in float64, where ONNX Runtime lacks double kernels
  (Conv, AveragePool), ``onnx.reference.ReferenceEvaluator`` does (1e-12); export then
  load gives identical arrays, configs and loss.
- PyTorch (the 'bench' extra) exports MLPs and small CNNs with batch norm (folded into
  the convolutions and not), with the TorchScript exporter and the default (dynamo)
  one; ``fnn.onnx.load`` of them predicts what PyTorch does.
- Bad files: truncated, random bytes, unsupported operators and attributes, shapes
  that do not fit, data outside the model's folder: each a ValueError saying so.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (extra 'onnx')")

from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import fnn  # noqa: E402
import fnn.onnx as fo  # noqa: E402
from fnn import specs  # noqa: E402
from fnn.layers import LAYERS, LayerKind  # noqa: E402
from fnn.layers.base import input_ids_of  # noqa: E402

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)

# fnn's own layer kinds with an example (a page of the docs may register more for a while)
KINDS: list[LayerKind] = [
    k for _, k in LAYERS.items() if k.example is not None and k.cls.__module__.startswith("fnn.")
]
KIND_PARAMS = [pytest.param(k, id=k.name) for k in KINDS]
# kinds fnn.onnx writes as standard operators but does not read back (none)
WRITE_ONLY: set[str] = set()
ACTIVATIONS = [
    (name, cls)
    for name, cls in fnn.activations.ACTIVATIONS.items()
    if cls.__module__ == "fnn.activations" and name != "linear"
]


def run_onnx(
    path: Path, X: np.ndarray[Any, Any], dtype: np.dtype[Any] | None = None
) -> np.ndarray[Any, Any]:
    """ONNX Runtime in float32, the reference evaluator in float64 (``dtype``: the
    network's, when ``X`` holds token ids)."""
    if (X.dtype if dtype is None else dtype) == np.float32:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out: np.ndarray[Any, Any] = session.run(None, {fo.INPUT_NAME: X})[0]
        return out
    with np.errstate(all="ignore"):  # the reference evaluator's sigmoid may underflow
        outputs: Any = ReferenceEvaluator(str(path)).run(None, {fo.INPUT_NAME: X})
    return np.asarray(outputs[0])


def assert_same_output(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    """1e-5 (float32) or 1e-12 (float64) of the output's scale, elementwise."""
    tol = 1e-5 if want.dtype == np.float32 else 1e-12
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def assert_same_network(a: fnn.Network, b: fnn.Network) -> None:
    assert [layer.config() for layer in a.layers] == [layer.config() for layer in b.layers]
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    assert a.loss == b.loss and a.input_shape == b.input_shape and a.dtype == b.dtype
    assert fnn.tree.flatten(a).keys() == fnn.tree.flatten(b).keys()
    for (path, x), y in zip(fnn.tree.flatten(a).items(), fnn.tree.flatten(b).values(), strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y), path


def check_round_trip(
    net: fnn.Network, tmp_path: Path, X: np.ndarray[Any, Any], load: bool = True, **kw: Any
) -> None:
    path = fo.export(net, tmp_path / "model.onnx", **kw)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert_same_output(run_onnx(path, X, net.dtype), fnn.predict(net, X))
    if load:
        assert_same_network(fo.load(path), net)
    else:
        with pytest.raises(ValueError, match=r"model\.onnx: "):
            fo.load(path)


def head(layers: list[Any], shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> Any:
    """Flatten (for image-shaped outputs) and a dense layer, so the network ends in logits."""
    out = list(layers)
    for layer in layers:
        shape = tuple(layer.output_shape(shape))
    if len(shape) != 1:
        out.append(fnn.Flatten())
        shape = (int(np.prod(shape)),)
    W = rng.normal(size=(shape[0], 3)).astype(dtype)
    out.append(fnn.Dense(W=W, b=rng.normal(size=3).astype(dtype)))
    return out


# --- every kind and activation --------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_every_layer_kind_runs_as_fnn_predicts_and_loads_back(
    kind: LayerKind, dtype: np.dtype[Any], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    assert kind.example is not None
    layer, shape = kind.example(rng, dtype)
    net = fnn.Network(layers=head([layer], shape, rng, dtype), loss="mse", input_shape=shape)
    ids = input_ids_of(layer)
    if ids is not None:
        X = rng.integers(0, ids, size=(5, *shape))
    else:
        X = rng.normal(size=(5, *shape)).astype(dtype)
    check_round_trip(net, tmp_path, X, load=kind.name not in WRITE_ONLY)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_sequence_networks_of_any_length_run_as_fnn_predicts(
    dtype: np.dtype[Any], tmp_path: Path
) -> None:
    """Token ids in, per-position softmax out, through embeddings, a causal transformer
    block and every recurrent layer; the time axis is dynamic ("T")."""
    arch = fnn.sequential(
        (None,),
        [
            specs.embedding(7, 8),
            specs.positional_embedding(10),
            *specs.transformer_block(2),
            specs.multi_head_attention(4, causal=False, bias=False),
            specs.lstm(5, return_sequences=True),
            specs.gru(4, return_sequences=True),
            specs.simple_rnn(6, return_sequences=True),
            specs.dense(7),
        ],
        output="softmax",
        dtype=dtype,
    )
    net = fnn.init(arch, rng=0)
    path = fo.export(net, tmp_path / "seq.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x_info = onnx.load(str(path)).graph.input[0]
    assert [d.dim_param or d.dim_value for d in x_info.type.tensor_type.shape.dim] == ["batch", "T"]
    assert x_info.type.tensor_type.elem_type == onnx.TensorProto.INT64
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Gather", "LSTM", "GRU", "RNN", "Softmax", "Trilu"} <= ops
    for T in (1, 4, 10):
        X = np.random.default_rng(T).integers(0, 7, size=(3, T))
        assert_same_output(run_onnx(path, X, dtype), fnn.predict(net, X))
    rnn = fnn.sequential((5, 3), [specs.gru(4)], dtype=dtype)  # float sequences, last state
    net2 = fnn.init(rnn, rng=1)
    X2 = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(dtype)
    assert_same_output(run_onnx(fo.export(net2, tmp_path / "g.onnx"), X2), fnn.predict(net2, X2))


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name_cls", ACTIVATIONS, ids=lambda a: a[0])
def test_every_activation_in_a_dense_layer_and_as_a_layer(
    name_cls: tuple[str, type[fnn.activations.Activation]], dtype: np.dtype[Any], tmp_path: Path
) -> None:
    name, cls = name_cls
    rng = np.random.default_rng(1)
    make: Any = cls
    act = make()
    if name in ("leaky_relu", "elu"):  # a slope that is not a float32 number
        act = make(0.3)
    d1 = fnn.dense.init(4, 6, rng=rng, activation=act, dtype=dtype)
    d2 = fnn.dense.init(6, 2, rng=rng, dtype=dtype)
    net = fnn.Network(
        layers=[attrs.evolve(d1, b=rng.normal(size=6).astype(dtype)), fnn.Activation(act), d2],
        loss="binary_cross_entropy",
    )
    X = (3 * rng.normal(size=(7, 4))).astype(dtype)
    for opset in (fo.MIN_OPSET, fo.DEFAULT_OPSET, 20):
        check_round_trip(net, tmp_path, X, opset=opset)


# --- random architectures -------------------------------------------------------------


# ONNX holds epsilon as a float32 attribute: 1e-5 becomes 1e-5 - 2.5e-14, which moves a
# float64 layer norm over a few nearly equal values by up to ~1e-9 (fnn.onnx documents
# it); an epsilon that is a float32 number keeps the float64 comparison at 1e-12.
EPS = 2.0**-17


def _activation(draw: Callable[..., Any]) -> fnn.activations.Activation:
    name, make = draw(st.sampled_from(ACTIVATIONS))
    act: fnn.activations.Activation
    if name == "leaky_relu":
        act = make(draw(st.sampled_from([0.01, 0.2, 0.25])))
    elif name == "elu":
        act = make(draw(st.sampled_from([1.0, 0.5, 0.7])))
    else:
        act = make()
    return act


@st.composite
def architectures(draw: Callable[..., Any]) -> fnn.Architecture:
    """Random sequential networks: an optional image part (convolutions, pools, norms,
    activations, dropout) ending in flatten or a global pool, then a vector part."""
    layers: list[Any] = []
    image = draw(st.booleans())
    if image:
        h, w, c = draw(st.integers(5, 8)), draw(st.integers(5, 8)), draw(st.integers(1, 3))
        shape: tuple[int, ...] = (h, w, c)
        for _ in range(draw(st.integers(0, 3))):
            what = draw(st.sampled_from(["conv", "max", "avg", "bn", "ln", "act", "drop"]))
            if what == "conv":
                layers.append(
                    specs.conv2d(
                        draw(st.integers(1, 4)),
                        draw(st.sampled_from([1, 2, 3, (3, 2)])),
                        stride=draw(st.sampled_from([1, 2, (1, 2)])),
                        padding=draw(st.sampled_from(["valid", "same", 1, ((0, 1), (1, 0))])),
                        activation=_activation(draw),
                    )
                )
            elif what in ("max", "avg"):
                pool = specs.max_pool2d if what == "max" else specs.avg_pool2d
                layers.append(pool(draw(st.sampled_from([1, 2])), draw(st.sampled_from([None, 1]))))
            elif what == "bn":
                layers.append(specs.batch_norm(momentum=0.2, eps=EPS))
            elif what == "ln":
                layers.append(specs.layer_norm(eps=EPS))
            elif what == "act":
                layers.append(specs.activation(_activation(draw)))
            else:
                layers.append(specs.dropout(0.3))
        layers.append(draw(st.sampled_from([specs.flatten(), specs.global_avg_pool2d()])))
    else:
        shape = (draw(st.integers(1, 6)),)
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["dense", "bn", "ln", "act", "drop"]))
        if what == "dense":
            layers.append(specs.dense(draw(st.integers(2, 6)), activation=_activation(draw)))
        elif what == "bn":
            layers.append(specs.batch_norm(eps=EPS))
        elif what == "ln":
            layers.append(specs.layer_norm(eps=EPS))
        elif what == "act":
            layers.append(specs.activation(_activation(draw)))
        else:
            layers.append(specs.dropout(0.5))
    output = draw(st.sampled_from(["identity", "sigmoid", "softmax"]))
    layers.append(specs.dense(1 if output == "sigmoid" else draw(st.integers(2, 4))))
    try:
        return fnn.sequential(shape, layers, output=output, dtype=draw(st.sampled_from([F32, F64])))
    except ValueError:  # a window larger than what is left of the image
        reject()


def randomise_state(net: fnn.Network, rng: np.random.Generator) -> fnn.Network:
    """Batch norms with non-trivial scale, shift and running statistics; random biases."""
    layers = []
    for layer in net.layers:
        dt = net.dtype
        if isinstance(layer, fnn.BatchNorm | fnn.LayerNorm):
            c = layer.n_features
            layer = attrs.evolve(
                layer,
                scale=rng.uniform(0.5, 1.5, c).astype(dt),
                shift=rng.normal(size=c).astype(dt),
            )
        if isinstance(layer, fnn.BatchNorm):
            c = layer.n_features
            layer = attrs.evolve(
                layer,
                running_mean=rng.normal(size=c).astype(dt),
                running_var=rng.uniform(0.5, 2.0, c).astype(dt),
            )
        if isinstance(layer, fnn.Dense | fnn.Conv2D) and layer.b is not None:
            layer = attrs.evolve(layer, b=rng.normal(size=layer.b.shape).astype(dt))
        layers.append(layer)
    return fnn.network.pack(attrs.evolve(net, layers=layers))


@settings(max_examples=25, deadline=None)
@given(arch=architectures(), seed=st.integers(0, 2**16), opset=st.sampled_from([17, 18, 20]))
def test_random_architectures_run_as_fnn_predicts_and_load_back(
    arch: fnn.Architecture, seed: int, opset: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rng = np.random.default_rng(seed)
    net = randomise_state(fnn.init(arch, rng=rng), rng)
    X = rng.normal(size=(4, *[int(d or 0) for d in net.input_shape or ()])).astype(net.dtype)
    check_round_trip(net, tmp_path_factory.mktemp("arch"), X, opset=opset)


def test_the_exported_model_is_documented_and_has_a_dynamic_batch(tmp_path: Path) -> None:
    net = fnn.init(fnn.mlp([3, 5, 2], output="softmax", dtype=np.float32), rng=0)
    path = fo.export(net, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import] == [fo.DEFAULT_OPSET] == [18]
    (x,), (y,) = model.graph.input, model.graph.output
    assert x.name == "X" and y.name == "output"
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["batch", 3]
    assert [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == ["batch", 2]
    meta = {p.key: p.value for p in model.metadata_props}
    assert '"loss": {"name": "cross_entropy"' in meta["fnn"] or "cross_entropy" in meta["fnn"]
    for n in (1, 9):
        X = np.ones((n, 3), np.float32)
        assert_same_output(run_onnx(path, X), fnn.predict(net, X))


def test_export_refuses_what_onnx_cannot_hold(tmp_path: Path) -> None:
    @attrs.frozen
    class Swish(fnn.activations.Activation):
        name = "swish_test"

        def __call__(self, z: Any, out: Any = None) -> Any:
            return z * fnn.activations.sigmoid(z)

        def vjp(self, z: Any, a: Any, da: Any, out: Any = None) -> Any:
            return da

    net = fnn.Network(layers=[fnn.Dense(W=np.ones((2, 2)), activation=Swish())], loss="mse")
    with pytest.raises(ValueError, match=r"layers\.0: no ONNX export for the activation Swish"):
        fo.export(net, tmp_path / "m.onnx")
    good = fnn.init(fnn.mlp([2, 1]), rng=0)
    with pytest.raises(ValueError, match="opset must be between 17 and"):
        fo.export(good, tmp_path / "m.onnx", opset=16)
    with pytest.raises(TypeError, match="net must be an fnn.Network"):
        fo.export(fnn.mlp([2, 1]), tmp_path / "m.onnx")  # type: ignore[arg-type]


# --- PyTorch's exporters --------------------------------------------------------------

TORCH_REASON = "PyTorch is not installed (its CPU build is the 'bench' extra)"


def torch_models(torch: Any) -> dict[str, tuple[Any, tuple[int, ...]]]:
    nn = torch.nn
    torch.manual_seed(0)
    models = {
        "mlp": (
            nn.Sequential(
                nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 8),
                nn.LayerNorm(8), nn.Identity(), nn.GELU(approximate="tanh"), nn.Linear(8, 6),
                nn.LeakyReLU(0.1), nn.Linear(6, 6), nn.ELU(), nn.Linear(6, 4), nn.Softplus(),
                nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 2),
            ),
            (5,),
        ),
        "cnn": (
            nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6), nn.GELU(approximate="tanh"),
                nn.AvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(6, 5),
            ),
            (3, 8, 8),
        ),
        "cnn_softmax": (
            nn.Sequential(
                nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.MaxPool2d(2, 1),
                nn.Conv2d(4, 5, (2, 3), padding=(1, 0)), nn.ELU(), nn.Flatten(),
                nn.LayerNorm(5 * 2 * 5), nn.Linear(5 * 2 * 5, 4), nn.Softmax(dim=1),
            ),
            (2, 7, 7),
        ),
        "gap_sigmoid": (
            nn.Sequential(
                nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(4, 1), nn.Sigmoid(),
            ),
            (3, 6, 6),
        ),
    }  # fmt: skip
    for model, _ in models.values():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-1, 1)
        model.eval()
    return models


def torch_export(torch: Any, model: Any, x: Any, path: Path, dynamo: bool, **kw: Any) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                verbose=False,
                **kw,
            )
        else:
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, input_names=["x"],
                dynamic_axes={"x": {0: "batch"}}, **kw,
            )  # fmt: skip
    return path


EXPORTERS = [
    pytest.param(False, {"opset_version": 17}, id="torchscript-17"),
    pytest.param(False, {"opset_version": 17, "do_constant_folding": False}, id="torchscript-bn"),
    pytest.param(False, {"opset_version": 20}, id="torchscript-20"),
    pytest.param(True, {"opset_version": 18}, id="dynamo-18"),
    pytest.param(True, {"opset_version": 20}, id="dynamo-20"),
]


@pytest.mark.parametrize(("dynamo", "kw"), EXPORTERS)
@pytest.mark.parametrize("name", ["mlp", "cnn", "cnn_softmax", "gap_sigmoid"])
def test_pytorch_exports_load_and_predict_what_pytorch_does(
    name: str, dynamo: bool, kw: dict[str, Any], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (extra 'onnx')")
    model, shape = torch_models(torch)[name]
    x = torch.randn(6, *shape)
    path = torch_export(torch, model, x, tmp_path / f"{name}.onnx", dynamo, **kw)
    net = fo.load(path)
    X = x.numpy()
    if X.ndim == 4:
        X = X.transpose(0, 2, 3, 1)  # fnn's channels-last
    with torch.no_grad():
        want = model(x).numpy()
    assert_same_output(fnn.predict(net, X), want)
    expected_output = {"cnn_softmax": "softmax", "gap_sigmoid": "sigmoid"}.get(name, "identity")
    assert net.loss.output == expected_output
    if kw.get("do_constant_folding") is False and name != "mlp":
        assert any(isinstance(layer, fnn.BatchNorm) for layer in net.layers)


def test_a_pytorch_classifier_loads_for_fine_tuning(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    path = torch_export(torch, model.eval(), x, tmp_path / "clf.onnx", False, opset_version=17)
    assert fo.load(path).loss.output == "identity"  # logits
    net = fo.load(path, loss="softmax_cross_entropy")
    with torch.no_grad():
        want = torch.softmax(model(x), dim=1).numpy()
    assert_same_output(fnn.predict(net, x.numpy()), want)
    net2, _ = fnn.fit(net, fnn.adam(1e-2), x.numpy(), np.array([0, 1, 2, 0, 1]), epochs=2, rng=0)
    assert net2.loss.output == "softmax"
    with pytest.raises(ValueError, match="ends in Softmax"):
        clf = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
        fo.load(torch_export(torch, clf, x, tmp_path / "s.onnx", False), loss="mse")


def test_the_exact_gelu_is_a_clear_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 1))
    for opset in (17, 20):
        path = torch_export(torch, model.eval(), torch.randn(2, 3), tmp_path / "g.onnx", False,
                            opset_version=opset)  # fmt: skip
        with pytest.raises(ValueError, match=r"exact \(erf\) GELU"):
            fo.load(path)


# --- bad files ------------------------------------------------------------------------


def small_model(nodes: list[Any], inits: list[Any], n_in: int = 3, n_out: int = 2) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", n_in])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", n_out])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def save(model: Any, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def w(name: str, *shape: int) -> Any:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_truncated_and_random_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    net = fnn.init(fnn.mlp([3, 8, 2]), rng=0)
    data = fo.export(net, tmp_path / "good.onnx").read_bytes()
    for cut in (len(data) // 2, len(data) - 7, 10):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"{bad.name}: "):
            fo.load(bad)
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(ValueError, match=r"noise\.onnx: not (an|a valid) ONNX model"):
        fo.load(noise)
    with pytest.raises(FileNotFoundError):
        fo.load(tmp_path / "missing.onnx")


def test_unsupported_operators_and_attributes_name_the_node(tmp_path: Path) -> None:
    cases = [
        (
            [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Cos", ["h"], ["y"], name="weird")],
            [w("W", 3, 2)],
            r"node 'weird' \(Cos\): unsupported operator",
        ),
        (
            [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("HardSigmoid", ["h"], ["y"], name="hs")],
            [w("W", 3, 2)],
            r"node 'hs' \(HardSigmoid\): unsupported operator",
        ),
        (
            [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transA=1)],
            [w("W", 3, 2)],
            r"node 'fc' \(Gemm\): only X @ W",
        ),
        (
            [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Softmax", ["h"], ["s"], name="sm"),
             helper.make_node("Relu", ["s"], ["y"], name="r")],
            [w("W", 3, 2)],
            r"node 'sm' \(Softmax\): softmax is only supported as the output",
        ),
        (
            [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Relu", ["h"], ["y"], name="r", domain="com.example")],
            [w("W", 3, 2)],
            r"node 'r' \(Relu\): operator of domain 'com.example'",
        ),
    ]  # fmt: skip
    for k, (nodes, inits, message) in enumerate(cases):
        model = small_model(nodes, inits)
        if any(n.domain for n in nodes):
            model.opset_import.append(helper.make_opsetid("com.example", 1))
        with pytest.raises(ValueError, match=message):
            fo.load(save(model, tmp_path / f"m{k}.onnx"))
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], name="grouped", group=2),
         helper.make_node("Flatten", ["c"], ["y"], name="f")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 2, 5, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 18])],
        initializer=[w("W", 2, 1, 3, 3)],
    )  # fmt: skip
    model = helper.make_model(conv, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    with pytest.raises(ValueError, match=r"node 'grouped' \(Conv\): attribute group=2"):
        fo.load(save(model, tmp_path / "conv.onnx"))


def test_mismatched_shapes_are_errors_naming_the_node(tmp_path: Path) -> None:
    model = small_model(
        [helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
         helper.make_node("Gemm", ["h", "W2"], ["y"], name="fc2")],
        [w("W1", 3, 4), w("W2", 5, 2)],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"node 'fc2' \(Gemm\): weight of shape \(5, 2\) takes 5"):
        fo.load(save(model, tmp_path / "shapes.onnx"))
    model = small_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc")],
                        [w("W", 3, 2), w("b", 5)])  # fmt: skip
    with pytest.raises(ValueError, match=r"node 'fc' \(Gemm\): bias of shape \(5,\)"):
        fo.load(save(model, tmp_path / "bias.onnx"))


def test_data_outside_the_models_folder_is_refused(tmp_path: Path) -> None:
    model = small_model([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [w("W", 3, 2)])
    t = model.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    t.ClearField("raw_data")
    t.ClearField("float_data")
    for key, value in (("location", "../secret.bin"), ("length", "24")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="outside the model's folder"):
        fo.load(save(model, tmp_path / "sub" / "ext.onnx"))


def test_metadata_that_contradicts_the_graph_is_an_error(tmp_path: Path) -> None:
    net = fnn.init(fnn.mlp([3, 4, 2], hidden="tanh"), rng=0)
    model = onnx.load(str(fo.export(net, tmp_path / "m.onnx")))
    for p in model.metadata_props:
        if p.key == "fnn":
            p.value = p.value.replace('"tanh"', '"relu"')
    with pytest.raises(
        ValueError, match=r"metadata: layers\.0 is .*relu.*the graph computes .*tanh"
    ):
        fo.load(save(model, tmp_path / "lie.onnx"))
    del model.metadata_props[:]  # without the metadata: the graph alone, same predictions
    bare = fo.load(save(model, tmp_path / "bare.onnx"))
    X = np.random.default_rng(0).normal(size=(5, 3))
    assert_same_output(fnn.predict(bare, X), fnn.predict(net, X))


# --- command line ---------------------------------------------------------------------


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fnn.__main__ import main

    net = fnn.init(fnn.mlp([4, 6, 3], output="softmax", dtype=np.float32), rng=0)
    ckpt = fnn.save(tmp_path / "ck.npz", net)
    assert main(["export", str(ckpt), str(tmp_path / "m.onnx"), "--opset", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'm.onnx'}: ONNX opset 20") and out.count("\n") == 1
    assert_same_network(fo.load(tmp_path / "m.onnx"), net)
    for args in (["missing.npz", "m.onnx"], [str(ckpt), str(tmp_path / "x.onnx"), "--opset", "3"]):
        assert main(["export", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("python -m fnn export: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_reshape_that_flattens_loads_as_flatten(dynamo: bool, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (extra 'onnx')")
    nn = torch.nn

    # x.view(x.size(0), -1): TorchScript writes Shape, Gather, Unsqueeze, Concat, Reshape
    view = type("View", (nn.Module,), {"forward": lambda self, x: x.view(x.size(0), -1)})
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), view(), nn.Linear(36, 3)).eval()
    x = torch.randn(5, 2, 5, 5)
    net = fo.load(torch_export(torch, model, x, tmp_path / "v.onnx", dynamo, opset_version=18))
    assert [type(layer) for layer in net.layers] == [fnn.Conv2D, fnn.Flatten, fnn.Dense]
    with torch.no_grad():
        assert_same_output(fnn.predict(net, x.numpy().transpose(0, 2, 3, 1)), model(x).numpy())


def test_an_export_that_fails_half_way_leaves_the_previous_model_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    path = fo.export(fnn.init(fnn.mlp([3, 4, 2]), rng=0), tmp_path / "m.onnx")
    before = path.read_bytes()

    def failing(fd: int) -> None:  # the bytes are written, the disk then fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="No space left"):
        fo.export(fnn.init(fnn.mlp([3, 8, 8, 2]), rng=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left
    assert len(fo.load(path).layers) == 2  # the first model, whole


@pytest.mark.parametrize("how", ["same path", "symlink", "hardlink"])
def test_cli_export_refuses_to_write_onto_its_checkpoint(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from fnn.__main__ import main

    ckpt = fnn.save(tmp_path / "ck.npz", fnn.init(fnn.mlp([3, 4, 2]), rng=0))
    before = ckpt.read_bytes()
    target = ckpt
    if how != "same path":
        target = tmp_path / "link.onnx"
        if how == "symlink":
            target.symlink_to(ckpt)
        else:
            os.link(ckpt, target)
    assert main(["export", str(ckpt), str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m fnn export: error: ") and "refusing to write over" in err
    assert ckpt.read_bytes() == before and fnn.load(ckpt).params.input_shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"ck.npz", target.name})


def without_the_last_node(model: Any) -> Any:
    """``model`` with its last node removed: the node before it gives the output."""
    last = model.graph.node[-1]
    del model.graph.node[-1]
    model.graph.node[-1].output[0] = last.output[0]
    return model


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_metadata_of_an_output_activation_the_graph_lacks_is_an_error(
    output: Literal["softmax", "sigmoid"], tmp_path: Path
) -> None:
    net = fnn.init(fnn.mlp([3, 4, 1 if output == "sigmoid" else 3], output=output), rng=0)
    model = onnx.load(str(fo.export(net, tmp_path / "m.onnx")))
    assert model.graph.node[-1].op_type == output.capitalize()
    path = save(without_the_last_node(model), tmp_path / "logits.onnx")
    with pytest.raises(ValueError, match=rf"logits\.onnx: .*no final {output.capitalize()}"):
        fo.load(path)
    with pytest.raises(ValueError, match=rf"no final {output.capitalize()}"):
        fo.load(path, loss="mse")  # the metadata still contradicts the graph


def test_metadata_of_another_dtype_or_input_shape_is_an_error(tmp_path: Path) -> None:
    net = fnn.init(fnn.mlp([3, 4, 2], dtype=np.float32), rng=0)
    model = onnx.load(str(fo.export(net, tmp_path / "m.onnx")))
    for old, new, message in (
        ('"dtype": "float32"', '"dtype": "float64"', "the dtype is 'float64', but the graph"),
        ('"input_shape": [3]', '"input_shape": [4]', r"the input shape is \[4\], but the graph"),
    ):
        lie = onnx.ModelProto()
        lie.CopyFrom(model)
        (prop,) = lie.metadata_props
        assert old in prop.value
        prop.value = prop.value.replace(old, new)
        with pytest.raises(ValueError, match=message):
            fo.load(save(lie, tmp_path / "lie.onnx"))


def scalar(name: str, value: float, dtype: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def between_two_gemms(nodes: list[Any], inits: list[Any], dtype: Any = np.float32) -> Any:
    """x -> Gemm -> h -> ``nodes`` -> m -> Gemm -> y."""
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
            *nodes,
            helper.make_node("Gemm", ["m", "W2"], ["y"], name="fc2"),
        ],
        "g",
        [helper.make_tensor_value_info("x", elem, ["n", 3])],
        [helper.make_tensor_value_info("y", elem, ["n", 2])],
        initializer=[
            *inits,
            numpy_helper.from_array(np.full((3, 4), 20.0, dtype), "W1"),
            numpy_helper.from_array(np.ones((4, 2), dtype), "W2"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def gelu_nodes(c1: float, c0: float) -> list[Any]:
    """PyTorch's tanh-GELU before opset 20, with the given constants."""
    return [
        helper.make_node("Mul", ["h", "h"], ["sq"], name="sq"),
        helper.make_node("Mul", ["h", "sq"], ["cube"], name="cube"),
        helper.make_node("Mul", ["c1", "cube"], ["t1"], name="t1"),
        helper.make_node("Add", ["h", "t1"], ["t2"], name="t2"),
        helper.make_node("Mul", ["c0", "t2"], ["t3"], name="t3"),
        helper.make_node("Tanh", ["t3"], ["t4"], name="t4"),
        helper.make_node("Add", ["one", "t4"], ["t5"], name="t5"),
        helper.make_node("Mul", ["h", "t5"], ["t6"], name="t6"),
        helper.make_node("Mul", ["half", "t6"], ["m"], name="t7"),
    ]


def gelu_inits(c1: float, c0: float) -> list[Any]:
    return [scalar("c1", c1), scalar("c0", c0), scalar("one", 1.0), scalar("half", 0.5)]


SQRT_2_PI = float(np.sqrt(2 / np.pi))

# elementwise nodes that compute no fnn activation, though they equal one on [-30, 30]
NOT_ACTIVATIONS = {
    "min": ([helper.make_node("Min", ["h", "c"], ["m"], name="clip")], [scalar("c", 35.0)]),
    "max": ([helper.make_node("Max", ["h", "c"], ["m"], name="clip")], [scalar("c", -40.0)]),
    "where": (
        [helper.make_node("Greater", ["h", "c"], ["big"], name="clip"),
         helper.make_node("Where", ["big", "zero", "h"], ["m"], name="where")],
        [scalar("c", 31.0), scalar("zero", 0.0)],
    ),
    "mul": ([helper.make_node("Mul", ["h", "c"], ["m"], name="clip")], [scalar("c", 1.000009)]),
    "gelu-c1": (gelu_nodes(0.044716, SQRT_2_PI), gelu_inits(0.044716, SQRT_2_PI)),
    "gelu-c0": (gelu_nodes(0.044715, 0.7978), gelu_inits(0.044715, 0.7978)),
    "leaky-at-1e-3": (
        [helper.make_node("Greater", ["h", "c"], ["pos"], name="clip"),
         helper.make_node("Mul", ["h", "slope"], ["neg"], name="neg"),
         helper.make_node("Where", ["pos", "h", "neg"], ["m"], name="where")],
        [scalar("c", 1e-3), scalar("slope", 0.1)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", NOT_ACTIVATIONS)
def test_arithmetic_that_is_no_activation_exactly_is_an_error_naming_the_node(
    case: str, tmp_path: Path
) -> None:
    nodes, inits = NOT_ACTIVATIONS[case]
    path = save(between_two_gemms(nodes, inits), tmp_path / f"{case}.onnx")
    first = nodes[0].name
    with pytest.raises(ValueError, match=rf"{case}\.onnx: node '{first}' \({nodes[0].op_type}\)"):
        fo.load(path)


def test_pytorch_forms_load_only_with_their_exact_constants(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = (4 * rng.normal(size=(6, 3))).astype(np.float32)
    c1, c0 = float(np.float32(0.044715)), float(np.float32(SQRT_2_PI))
    model = between_two_gemms(gelu_nodes(c1, c0), gelu_inits(c1, c0))
    model.graph.initializer[-2].CopyFrom(
        numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "W1")
    )
    net = fo.load(save(model, tmp_path / "gelu.onnx"))
    assert isinstance(net.layers[0], fnn.Dense)
    assert isinstance(net.layers[0].activation, fnn.activations.GELU)
    session = ort.InferenceSession(str(tmp_path / "gelu.onnx"), providers=["CPUExecutionProvider"])
    assert_same_output(fnn.predict(net, X), session.run(None, {"x": X})[0])
    # where(h > t, h, softplus(h)) is softplus in float32 for t = 20, not in float64
    for dtype, ok in ((np.float32, True), (np.float64, False)):
        nodes = [
            helper.make_node("Softplus", ["h"], ["sp"], name="sp"),
            helper.make_node("Greater", ["h", "t"], ["big"], name="big"),
            helper.make_node("Where", ["big", "h", "sp"], ["m"], name="softplus"),
        ]
        path = save(
            between_two_gemms(nodes, [scalar("t", 20.0, dtype)], dtype), tmp_path / "s.onnx"
        )
        if ok:
            layer = fo.load(path).layers[0]
            assert isinstance(layer, fnn.Dense)
            assert isinstance(layer.activation, fnn.activations.Softplus)
        else:
            with pytest.raises(ValueError, match=r"s\.onnx: node 'sp' \(Softplus\)"):
                fo.load(path)


@pytest.mark.parametrize(
    ("x_type", "w_type", "y_type"),
    [("double", "double", "double"), ("float", "double", "float"), ("float", "double", "double"),
     ("double", "float", "double"), ("double", "double", "float")],
)  # fmt: skip
def test_a_model_keeps_its_dtype_or_is_refused(
    x_type: str, w_type: str, y_type: str, tmp_path: Path
) -> None:
    types: dict[str, tuple[int, np.dtype[Any]]] = {
        "float": (onnx.TensorProto.FLOAT, F32),
        "double": (onnx.TensorProto.DOUBLE, F64),
    }
    W = np.random.default_rng(0).normal(size=(3, 2)).astype(types[w_type][1])
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")],
        "g",
        [helper.make_tensor_value_info("x", types[x_type][0], ["n", 3])],
        [helper.make_tensor_value_info("y", types[y_type][0], ["n", 2])],
        initializer=[numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    path = save(model, tmp_path / "typed.onnx")
    if x_type == w_type == y_type:
        net = fo.load(path)
        assert net.dtype == F64
        layer = net.layers[0]
        assert isinstance(layer, fnn.Dense) and layer.W.dtype == F64
        assert np.array_equal(layer.W, W)  # bit for bit, never rounded
    else:
        where = (
            "the input is .* but the output 'y'"
            if x_type != y_type
            else r"node 'fc' \(Gemm\): 'W' is"
        )
        with pytest.raises(ValueError, match=rf"typed\.onnx: {where}"):
            fo.load(path)


def test_declared_sizes_beyond_max_bytes_are_errors_before_anything_is_made(
    tmp_path: Path,
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "W"], ["y"], name="fc")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 100000, 100000, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 1])],
        initializer=[w("W", 1, 1)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    path = save(model, tmp_path / "huge.onnx")
    assert path.stat().st_size < 200
    with pytest.raises(ValueError, match=r"huge\.onnx: input 'x' declares samples .* max_bytes"):
        fo.load(path)
    small = save(small_model([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")],
                             [w("W", 3, 2)]), tmp_path / "small.onnx")  # fmt: skip
    with pytest.raises(ValueError, match=r"small\.onnx: tensor 'W' declares shape \(3, 2\)"):
        fo.load(small, max_bytes=40)
    assert fo.load(small, max_bytes=48).input_shape == (3,)
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        fo.load(small, max_bytes=0)


def test_a_long_graph_that_is_not_an_activation_gives_a_short_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h0"], name="fc")]
    nodes += [helper.make_node("Add", [f"h{i}", f"h{i}"], [f"h{i + 1}"], name=f"n{i}")
              for i in range(3000)]  # fmt: skip
    nodes.append(helper.make_node("Gemm", ["h3000", "W2"], ["y"], name="fc2"))
    model = small_model(nodes, [w("W", 3, 2), w("W2", 2, 2)])
    with pytest.raises(ValueError, match=r"long\.onnx: node 'n0' \(Add\)") as e:
        fo.load(save(model, tmp_path / "long.onnx"))
    assert len(str(e.value)) < 1000


def image_model(nodes: list[Any], inits: list[Any]) -> Any:
    """x (n, 2, 5, 5) -> ``nodes`` -> c -> Flatten -> y."""
    graph = helper.make_graph(
        [*nodes, helper.make_node("Flatten", ["c"], ["y"], name="f")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 2, 5, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", None])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def test_values_fnn_refuses_are_errors_naming_the_node_and_the_file(tmp_path: Path) -> None:
    conv = image_model(
        [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", strides=[0, 1])],
        [w("W", 3, 2, 3, 3)],
    )
    bn = image_model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["c"], name="bn",
                          epsilon=0.0)],
        [w("s", 2), w("b", 2), w("m", 2), w("v", 2)],
    )  # fmt: skip
    leaky = small_model(
        [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
         helper.make_node("LeakyRelu", ["h"], ["y"], name="leaky", alpha=float("nan"))],
        [w("W", 3, 2)],
    )  # fmt: skip
    for name, model, node in (("conv", conv, "'conv' (Conv)"), ("bn", bn,
                              "'bn' (BatchNormalization)"), ("leaky", leaky, "'leaky' (LeakyRelu)")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"{name}\.onnx: node {re.escape(node)}: ") as e:
            fo.load(save(model, tmp_path / f"{name}.onnx"))
        assert len(str(e.value)) < 1000
    ext = small_model([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")], [w("W", 3, 2)])
    t = ext.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    t.ClearField("raw_data")
    t.ClearField("float_data")
    entry = t.external_data.add()
    entry.key, entry.value = "location", "w\0.bin"
    with pytest.raises(ValueError, match=r"nul\.onnx: tensor 'W' has a NUL byte"):
        fo.load(save(ext, tmp_path / "nul.onnx"))


def test_a_graph_whose_paths_rejoin_by_add_loads_as_a_residual_block(tmp_path: Path) -> None:
    model = small_model(
        [helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
         helper.make_node("Gemm", ["h", "W2"], ["r"], name="fc2"),
         helper.make_node("Relu", ["r"], ["s"], name="relu"),
         helper.make_node("Add", ["s", "h"], ["y"], name="join")],
        [numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32),
                                 "W1"),
         numpy_helper.from_array(np.random.default_rng(1).normal(size=(2, 2)).astype(np.float32),
                                 "W2")],
    )  # fmt: skip
    path = save(model, tmp_path / "res.onnx")
    net = fo.load(path)
    assert [type(layer) for layer in net.layers] == [fnn.Dense, fnn.Residual]
    block = net.layers[1]
    assert isinstance(block, fnn.Residual) and block.shortcut == ()
    assert [type(layer) for layer in block.body] == [fnn.Dense]
    X = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_same_output(fnn.predict(net, X), session.run(None, {"x": X})[0])


def test_paths_that_share_nodes_are_not_a_block(tmp_path: Path) -> None:
    model = small_model(
        [helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
         helper.make_node("Relu", ["h"], ["a"], name="relu"),
         helper.make_node("Tanh", ["h"], ["c"], name="tanh"),
         helper.make_node("Add", ["a", "c"], ["b"], name="inner"),
         helper.make_node("Add", ["b", "a"], ["y"], name="join")],
        [w("W1", 3, 2)],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"cross\.onnx: the graph is not a chain .*feeds 2"):
        fo.load(save(model, tmp_path / "cross.onnx"))


def test_joins_fnn_cannot_express_name_the_node(tmp_path: Path) -> None:
    def two_paths(join: Any, W2: int = 2) -> Any:
        return small_model(
            [helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
             helper.make_node("Gemm", ["h", "W2"], ["r"], name="fc2"), join],
            [w("W1", 3, 2), w("W2", 2, W2)],
            n_out=4,
        )  # fmt: skip

    cases = [
        (helper.make_node("Concat", ["r", "h"], ["y"], name="cat", axis=0), r"'cat' \(Concat\): "
         "concatenates on axis 0"),
        (helper.make_node("Sum", ["r", "h"], ["y"], name="sum"), r"'sum' \(Sum\): adds values"),
    ]  # fmt: skip
    for k, (join, message) in enumerate(cases):
        with pytest.raises(ValueError, match=message):
            fo.load(save(two_paths(join, 3), tmp_path / f"j{k}.onnx"))
    ok = fo.load(save(two_paths(helper.make_node("Concat", ["r", "h"], ["y"], axis=-1)),
                      tmp_path / "ok.onnx"))  # fmt: skip
    assert isinstance(ok.layers[1], fnn.Parallel) and ok.layers[1].merge == "concat"


def test_blocks_nested_too_deep_are_refused(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h0"], name="fc")]
    depth = fo.MAX_BLOCK_DEPTH + 1
    # h_{k+1} = h_k + relu(...(h_depth'...)): each Add closes the block opened before it
    for k in range(depth):
        nodes.append(helper.make_node("Relu", [f"h{k}"], [f"h{k + 1}"], name=f"r{k}"))
    last = f"h{depth}"
    for k in range(depth - 1, -1, -1):
        nodes.append(helper.make_node("Add", [last, f"h{k}"], [f"s{k}"], name=f"add{k}"))
        last = f"s{k}"
    nodes[-1].output[0] = "y"
    model = small_model(nodes, [w("W", 3, 2)])
    with pytest.raises(ValueError, match=rf"deep\.onnx: node .*nested more than {depth - 1} deep"):
        fo.load(save(model, tmp_path / "deep.onnx"))


# --- residual and parallel networks from PyTorch --------------------------------------


def torch_resnet(torch: Any, kind: str) -> tuple[Any, tuple[int, ...]]:
    """A small ResNet (stem, a block with the identity shortcut, one with a projection
    shortcut, global average pool, linear) or an Inception-like block (branches joined
    by torch.cat on the channels, one of them a max pool), in eval mode."""
    nn = torch.nn
    torch.manual_seed(0)

    class Block(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            )  # fmt: skip
            self.shortcut = (
                nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                              nn.BatchNorm2d(c_out))
                if stride != 1 or c_in != c_out
                else nn.Identity()
            )  # fmt: skip

        def forward(self, x: Any) -> Any:
            return torch.relu(self.body(x) + self.shortcut(x))

    class Mixed(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, c: int) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(c, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh())

        def forward(self, x: Any) -> Any:
            return torch.cat([self.a(x), self.b(x), x], dim=1)

    if kind == "resnet":
        model = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            Block(4, 4, 1), Block(4, 6, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
        )  # fmt: skip
    else:
        model = nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.ReLU(), Mixed(3), nn.Flatten(), nn.Linear(10 * 5 * 5, 2)
        )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    return model.eval(), (2, 7, 7)


@pytest.mark.parametrize(("dynamo", "kw"), EXPORTERS)
@pytest.mark.parametrize("kind", ["resnet", "inception"])
def test_pytorch_residual_and_parallel_networks_load_and_predict_what_pytorch_does(
    kind: str, dynamo: bool, kw: dict[str, Any], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (extra 'onnx')")
    model, shape = torch_resnet(torch, kind)
    x = torch.randn(6, *shape)
    path = torch_export(torch, model, x, tmp_path / f"{kind}.onnx", dynamo, **kw)
    net = fo.load(path)
    with torch.no_grad():
        want = model(x).numpy()
    X = x.numpy().transpose(0, 2, 3, 1)  # fnn's channels-last
    assert_same_output(fnn.predict(net, X), want)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_same_output(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], want)
    composite = fnn.Residual if kind == "resnet" else fnn.Parallel
    blocks = [layer for layer in net.layers if isinstance(layer, composite)]
    assert len(blocks) == (2 if kind == "resnet" else 1)
    if kind == "resnet":
        assert isinstance(blocks[0], fnn.Residual) and blocks[0].shortcut == ()
        assert isinstance(blocks[1], fnn.Residual)
        assert type(blocks[1].shortcut[0]) is fnn.Conv2D
    if kw.get("do_constant_folding") is False:  # batch norm kept, inside the blocks too
        inner = [layer for b in blocks for _, c in b.chains for layer in c]
        assert any(isinstance(layer, fnn.BatchNorm) for layer in inner)
    # it trains: one epoch of fit moves the loss
    y = np.random.default_rng(0).normal(size=want.shape).astype(np.float32)
    _, history = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=3, batch_size=6, rng=0)
    assert history.train_loss[-1] < history.train_loss[0]


def test_composites_export_with_the_layout_of_their_inputs(tmp_path: Path) -> None:
    """Nested residual and parallel blocks over images (channels-first inside the
    model) and vectors, every merge, in float32 and float64."""
    for dtype in (F32, F64):
        conv = specs.conv2d(3, 3, padding="same", activation="relu")
        arch = fnn.sequential(
            (6, 6, 2),
            [
                specs.conv2d(3, 3, padding="same"),
                specs.residual([conv, specs.batch_norm(eps=EPS)]),
                specs.parallel([[specs.max_pool2d(2)], [specs.conv2d(2, 2, stride=2)]]),
                specs.residual([specs.conv2d(5, 1)], shortcut=[specs.conv2d(5, 1)]),
                specs.parallel(
                    [[specs.layer_norm(eps=EPS)], [], [specs.conv2d(5, 3, padding="same")]],
                    merge="add",
                ),
                specs.global_avg_pool2d(),
                specs.parallel([[specs.dense(3)], [specs.residual([specs.dense(5)])]]),
                specs.dense(2),
            ],
            output="softmax",
            dtype=dtype,
        )
        net = randomise_state(fnn.init(arch, rng=0), np.random.default_rng(1))
        X = np.random.default_rng(2).normal(size=(4, 6, 6, 2)).astype(dtype)
        check_round_trip(net, tmp_path, X)
        model = onnx.load(str(tmp_path / "model.onnx"))
        ops = [n.op_type for n in model.graph.node]
        assert ops.count("Concat") == 2 and ops.count("Add") >= 2 and ops.count("Sum") == 1


# --- embeddings and recurrent layers from PyTorch ---------------------------------------


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("tokens", [True, False], ids=["tokens", "floats"])
@pytest.mark.parametrize("last", [True, False], ids=["last-step", "sequence"])
def test_pytorch_recurrent_models_load_predict_what_pytorch_does_and_train(
    kind: str, tokens: bool, last: bool, tmp_path: Path
) -> None:
    """nn.Embedding (or float sequences) -> one batch-first nn.RNN/LSTM/GRU -> its last
    step (``y[:, -1]``) or every step -> dense layers, TorchScript exporter."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    nn = torch.nn
    torch.manual_seed(0)

    class Model(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(7, 5)
            self.rnn = getattr(nn, kind)(5, 4, batch_first=True)
            self.fc1 = nn.Linear(4, 6)
            self.fc2 = nn.Linear(6, 3)

        def forward(self, x: Any) -> Any:
            y, _ = self.rnn(self.embed(x) if tokens else x)
            return self.fc2(torch.relu(self.fc1(y[:, -1] if last else y)))

    model = Model().eval()
    x = torch.randint(0, 7, (4, 6)) if tokens else torch.randn(4, 6, 5)
    path = torch_export(torch, model, x, tmp_path / "rnn.onnx", False, opset_version=17)
    net = fo.load(path)
    cls = {"RNN": fnn.SimpleRNN, "LSTM": fnn.LSTM, "GRU": fnn.GRU}[kind]
    assert [type(layer) for layer in net.layers] == [
        *([fnn.Embedding] if tokens else []),
        cls,
        fnn.Dense,
        fnn.Dense,
    ]
    rnn = net.layers[1 if tokens else 0]
    assert isinstance(rnn, cls) and rnn.return_sequences is not last
    np.testing.assert_array_equal(rnn.W_ih, model.rnn.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(rnn.b_hh, model.rnn.bias_hh_l0.detach().numpy())
    with torch.no_grad():
        want = model(x).numpy()
    assert_same_output(fnn.predict(net, x.numpy()), want)
    y = np.random.default_rng(0).integers(0, 3, size=want.shape[:-1])
    net = fo.load(path, loss="softmax_cross_entropy")
    _, history = fnn.fit(net, fnn.adam(1e-2), x.numpy(), y, epochs=5, batch_size=4, rng=0)
    assert history.train_loss[-1] < history.train_loss[0]
    # and back out: fnn's export of it runs as PyTorch's model did
    out = fo.export(net, tmp_path / "again.onnx")
    proba = torch.softmax(torch.from_numpy(want), dim=-1).numpy()
    assert_same_output(run_onnx(out, x.numpy(), net.dtype), proba)


def test_recurrent_operators_fnn_cannot_express_name_the_node(tmp_path: Path) -> None:
    def model(**attrs_: Any) -> Any:
        rng = np.random.default_rng(0)
        inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
                 for n, s in (("W", (1, 8, 3)), ("R", (1, 8, 2)), ("Wd", (2, 2)))]  # fmt: skip
        graph = helper.make_graph(
            [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["t", "W", "R"], ["", "h"], name="lstm", hidden_size=2,
                              **attrs_),
             helper.make_node("Squeeze", ["h", "zero"], ["s"]),
             helper.make_node("Gemm", ["s", "Wd"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 5, 3])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 2])],
            initializer=[*inits, numpy_helper.from_array(np.array([0]), "zero")],
        )  # fmt: skip
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)

    net = fo.load(save(model(), tmp_path / "ok.onnx"))
    assert isinstance(net.layers[0], fnn.LSTM) and not net.layers[0].return_sequences
    X = np.random.default_rng(1).normal(size=(3, 5, 3)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "ok.onnx"), providers=["CPUExecutionProvider"])
    assert_same_output(fnn.predict(net, X), session.run(None, {"x": X})[0])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"direction": "bidirectional"}, "only one forward direction"),
         ({"clip": 3.0}, r"only LSTM with activations .*, no clip"),
         ({"activations": ["Sigmoid", "Relu", "Tanh"]}, "only LSTM with activations")]  # fmt: skip
    for k, (kw, message) in enumerate(cases):
        with pytest.raises(ValueError, match=rf"r{k}\.onnx: node 'lstm' \(LSTM\): {message}"):
            fo.load(save(model(**kw), tmp_path / f"r{k}.onnx"))
