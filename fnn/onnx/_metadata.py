"""fnn's metadata in an ONNX model: parsed, checked against what the graph computes,
and used to group the graph's layers as the network that was exported."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import onnx

from fnn import activations as _act
from fnn import losses as _losses
from fnn import tree
from fnn.layers.activation import Activation
from fnn.layers.base import LAYERS, kind_of
from fnn.layers.composite import Parallel, Residual
from fnn.layers.dropout import Dropout
from fnn.onnx._common import FORMAT, FORMAT_VERSION, METADATA_KEY, clip
from fnn.onnx._graph_reader import Block


def takes_activation(layer: Any) -> bool:
    """Whether ``layer`` has an activation of its own, still the identity, that an
    activation read after it may become (a dense or convolution layer)."""
    kind = kind_of(layer)
    fields = attrs.fields_dict(type(layer)) if attrs.has(type(layer)) else {}
    act = getattr(layer, "activation", None)
    return (
        kind is not None
        and kind.name != "activation"
        and "activation" in fields
        and getattr(act, "name", None) in ("identity", "linear")
    )


def rounded(x: Any) -> Any:
    if isinstance(x, float):
        return float(np.float32(x))
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [rounded(v) for v in x]
    return x


def semantics(layer: Any) -> Any:
    """What a graph says of a layer: its config with floats at float32 precision (ONNX
    attributes), pool strides resolved, and without what ONNX does not hold (dropout
    rates, batch-norm momentum)."""
    cfg = dict(layer.config())
    if "stride" in cfg and hasattr(layer, "strides"):  # a pool's stride, resolved
        cfg["stride"] = list(layer.strides)
    for k in ("rate", "momentum"):
        cfg.pop(k, None)
    return rounded(json.loads(json.dumps(cfg)))


def align_block(
    bad: Callable[[str], ValueError], op: Any, cfg: dict[str, Any], where: str
) -> Residual | Parallel:
    """With fnn's metadata: a block of the graph as the metadata's residual or parallel
    layer, each path aligned with its chain of configs."""
    kind = cfg["kind"]
    merge: Any
    if kind == "residual":
        names, cfg_chains, merge = (
            ["body", "shortcut"],
            [cfg.get("body"), cfg.get("shortcut")],
            "add",
        )
    else:
        branches = cfg.get("branches")
        if not isinstance(branches, list):
            raise bad(f"metadata: {where} is not a layer config: {clip(repr(cfg))}")
        names = [f"branches.{k}" for k in range(len(branches))]
        cfg_chains, merge = branches, cfg.get("merge")
    if not isinstance(op, Block) or op.merge != merge or len(op.chains) != len(cfg_chains):
        raise bad(f"metadata: {where} is {clip(repr(cfg))}, but the graph computes {op} there")
    chains = []
    for name, ops, cfgs in zip(names, op.chains, cfg_chains, strict=True):
        if not isinstance(cfgs, list):
            raise bad(f"metadata: {where}.{name} is not a list of layer configs")
        chains.append(align(bad, ops, cfgs, f"{where}.{name}"))
    if kind == "residual":
        return Residual(body=chains[0], shortcut=chains[1])
    return Parallel(branches=chains, merge=merge)


def align(
    bad: Callable[[str], ValueError], ops: list[Any], cfgs: list[Any], where: str = "layers"
) -> list[Any]:
    """With fnn's metadata: the graph's layers grouped as the metadata's, each built from
    the metadata's config and the graph's arrays, checked to compute the same."""
    layers: list[Any] = []
    k = 0
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("kind"), str):
            raise bad(f"metadata: {where}.{i} is not a layer config: {clip(repr(cfg))}")
        kind = cfg["kind"]
        if k >= len(ops):
            raise bad(f"metadata: {where}.{i} ({kind}) has no nodes in the graph")
        op = ops[k]
        k += 1
        if kind in ("residual", "parallel"):
            layers.append(align_block(bad, op, cfg, f"{where}.{i}"))
            continue
        if isinstance(op, Block):
            raise bad(f"metadata: {where}.{i} is {clip(repr(cfg))}, but the graph has a block")
        act = cfg.get("activation")
        if (
            kind in ("dense", "conv2d")
            and takes_activation(op)
            and isinstance(act, dict)
            and act.get("name") not in ("identity", "linear")
        ):
            if k >= len(ops) or not isinstance(ops[k], Activation):
                raise bad(f"metadata: {where}.{i} has activation {act}, the graph none")
            op = attrs.evolve(op, activation=ops[k].activation)
            k += 1
        if kind == "dropout" and isinstance(op, Activation):
            op = Dropout(rate=0.0)
        arrays = tree.flatten(op)
        if cfg.get("bias") is False:  # the graph's layer has zero biases where it has none
            shapes = LAYERS[kind].shapes if kind in LAYERS else None
            implied = shapes(cfg) if shapes is not None else None
            absent = [k for k in arrays if (k == "b" if implied is None else k not in implied)]
            if any(np.any(arrays[k]) for k in absent):
                raise bad(f"metadata: {where}.{i} has no biases, but the graph adds them")
            op = attrs.evolve(op, **dict.fromkeys(absent))
            arrays = {k: v for k, v in arrays.items() if k not in absent}
        try:
            built = LAYERS[kind].build(cfg, arrays)
        except (KeyError, ValueError, TypeError) as e:
            raise bad(f"metadata: {where}.{i} ({kind}) cannot be built from the graph: {e}") from e
        if type(built) is not type(op) or semantics(built) != semantics(op):
            raise bad(f"metadata: {where}.{i} is {cfg}, but the graph computes {op.config()} there")
        layers.append(built)
    rest = ops[k:]
    if any(not (isinstance(o, Activation) and type(o.activation) is _act.Identity) for o in rest):
        raise bad(f"metadata lists {len(cfgs)} layers in {where}, the graph has more: {rest}")
    return layers


def parse_metadata(path: Path, model: onnx.ModelProto) -> dict[str, Any] | None:
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        return None
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError as e:
        raise ValueError(f"{path}: metadata {METADATA_KEY!r} is not JSON: {e}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("version"), int)
        or not isinstance(meta.get("layers"), list)
        or not isinstance(meta.get("loss"), dict)
    ):
        raise ValueError(f"{path}: metadata {METADATA_KEY!r} is not fnn's ({FORMAT})")
    if meta["version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer fnn (metadata version {meta['version']}, this fnn "
            f"reads {FORMAT_VERSION})"
        )
    return meta


def check_metadata(
    path: Path,
    meta: dict[str, Any],
    graph_output: str,
    input_shape: tuple[int | None, ...],
    dtype: np.dtype[Any],
) -> None:
    """fnn's metadata must say what the graph computes: the output activation (a final
    Softmax or Sigmoid node), the input's shape and the dtype."""
    try:
        output = _losses.get(meta["loss"]).output
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: metadata: the loss {clip(repr(meta['loss']))}: {e}") from None
    if output == "softmax" and graph_output != "softmax":
        raise ValueError(
            f"{path}: metadata: the loss's output is softmax, but the graph has no final "
            "Softmax node (it outputs logits)"
        )
    if output == "sigmoid" and graph_output != "sigmoid":
        raise ValueError(
            f"{path}: metadata: the loss's output is sigmoid, but the graph has no final "
            "Sigmoid node (it outputs logits)"
        )
    if graph_output == "softmax" and output != "softmax":
        raise ValueError(
            f"{path}: metadata: the graph ends in Softmax, but the loss's output is {output}"
        )
    if meta.get("input_shape") != list(input_shape):
        raise ValueError(
            f"{path}: metadata: the input shape is {clip(repr(meta.get('input_shape')))}, "
            f"but the graph's input is (batch, {', '.join(map(str, input_shape))})"
        )
    if meta.get("dtype") != str(dtype):
        raise ValueError(
            f"{path}: metadata: the dtype is {clip(repr(meta.get('dtype')))}, but the graph "
            f"computes in {dtype}"
        )
