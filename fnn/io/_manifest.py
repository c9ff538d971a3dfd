"""The checkpoint manifest's schema: format version, and the checks that a manifest read
from a file has the types and nesting fnn writes (before anything is built from it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import attrs

from fnn.io._archive import ARRAY_DTYPES, MAX_NDIM, Malformed, bad
from fnn.training import EpochRecord

FORMAT_VERSION: Final = 3
"""The newest format this fnn reads and writes. A file is written with the oldest
version that holds what it has: 1 without a generator state, split or best parameters,
3 with decoupled weight decay (version 3 made weight decay its own transform; the
optimizers of older files are read through :mod:`fnn.io._migrate`)."""
RNG_STATES: Final = ("PCG64", "PCG64DXSM")
"""Bit generators whose state a checkpoint holds (their states are plain integers)."""
SPLIT_PARTS: Final = ("train", "validation")
OPT_SCALARS: Final = ("step", "lr_scale")
"""The optimizer state's scalar leaves, kept in the manifest rather than as arrays."""


def _obj(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise Malformed(where, f"must be a JSON object, got {show(x)}")
    return x


def _list(x: Any, where: str) -> list[Any]:
    if not isinstance(x, list):
        raise Malformed(where, f"must be a JSON list, got {show(x)}")
    return x


def _str(x: Any, where: str) -> str:
    if not isinstance(x, str):
        raise Malformed(where, f"must be a string, got {show(x)}")
    return x


def _int(x: Any, where: str, lo: int = 0) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < lo:
        raise Malformed(where, f"must be an int >= {lo}, got {show(x)}")
    return x


def _num(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise Malformed(where, f"must be a number, got {show(x)}")
    return float(x)


def _key(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise Malformed(f"{where}.{key}" if where else key, "is missing")
    return d[key]


def show(x: Any) -> str:
    text = json.dumps(x) if isinstance(x, str | int | float | bool) or x is None else None
    if text is None:
        text = "a JSON object" if isinstance(x, dict) else "a JSON list"
    return text if len(text) <= 40 else text[:37] + "..."


def check_version(path: Path, manifest: dict[str, Any]) -> None:
    version = manifest.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise bad(
            path,
            f"format version {version} is newer than this fnn reads "
            f"({FORMAT_VERSION}); upgrade fnn",
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(
            path,
            f"malformed manifest: version must be an int from 1 to {FORMAT_VERSION}, "
            f"got {show(version)}",
        )


def check_manifest(manifest: dict[str, Any]) -> None:
    """Check the JSON types of everything :func:`load` reads (raises :class:`Malformed`)."""
    dtype = _str(_key(manifest, "dtype", ""), "dtype")
    if dtype not in ("float32", "float64"):
        raise Malformed("dtype", f"must be 'float32' or 'float64', got {show(dtype)}")
    arch = _obj(_key(manifest, "architecture", ""), "architecture")
    layers = _list(_key(arch, "layers", "architecture"), "architecture.layers")
    for i, cfg in enumerate(layers):
        where = f"architecture.layers.{i}"
        _str(_key(_obj(cfg, where), "kind", where), f"{where}.kind")
    loss = _key(arch, "loss", "architecture")
    if not isinstance(loss, str):
        _str(
            _key(_obj(loss, "architecture.loss"), "name", "architecture.loss"),
            "architecture.loss.name",
        )
    arrays = _obj(_key(manifest, "arrays", ""), "arrays")
    for name, spec in arrays.items():
        where = f"arrays.{name}"
        _obj(spec, where)
        shape = _list(_key(spec, "shape", where), f"{where}.shape")
        if len(shape) > MAX_NDIM:
            raise Malformed(f"{where}.shape", f"has {len(shape)} dimensions")
        for j, d in enumerate(shape):
            _int(d, f"{where}.shape.{j}")
        dt = _str(_key(spec, "dtype", where), f"{where}.dtype")
        if name.startswith("split/"):
            if dt != "int64" or len(shape) != 1:
                raise Malformed(where, f"must be a 1-D int64 array, got {dt} {shape}")
        elif dt not in ARRAY_DTYPES:
            raise Malformed(
                f"{where}.dtype", f"must be one of {sorted(ARRAY_DTYPES)}, got {show(dt)}"
            )
    if "optimizer" in manifest:
        transforms = _list(manifest["optimizer"], "optimizer")
        for i, cfg in enumerate(transforms):
            where = f"optimizer.{i}"
            _str(_key(_obj(cfg, where), "transform", where), f"{where}.transform")
            lr = cfg.get("learning_rate")
            if isinstance(lr, dict):
                _str(
                    _key(lr, "schedule", f"{where}.learning_rate"),
                    f"{where}.learning_rate.schedule",
                )
        st = _obj(_key(manifest, "opt_state", ""), "opt_state")
        _int(_key(st, "step", "opt_state"), "opt_state.step")
        scale = _num(_key(st, "lr_scale", "opt_state"), "opt_state.lr_scale")
        if not (math.isfinite(scale) and scale >= 0):
            raise Malformed("opt_state.lr_scale", f"must be finite and >= 0, got {scale!r}")
    if "history" in manifest:
        h = _obj(manifest["history"], "history")
        for i, r in enumerate(_list(_key(h, "records", "history"), "history.records")):
            _check_record(_obj(r, f"history.records.{i}"), f"history.records.{i}")
        best = h.get("best_epoch")
        if best is not None:
            _int(best, "history.best_epoch", 1)
        if not isinstance(h.get("stopped_early", False), bool):
            raise Malformed(
                "history.stopped_early", f"must be true or false, got {show(h['stopped_early'])}"
            )
        if "split" in h:
            sp = _obj(h["split"], "history.split")
            fraction = _num(_key(sp, "fraction", "history.split"), "history.split.fraction")
            if not 0 < fraction < 1:
                raise Malformed("history.split.fraction", f"must be in (0, 1), got {fraction!r}")
            _int(_key(sp, "n", "history.split"), "history.split.n", 2)
        if h.get("best_params", True) is not True:
            raise Malformed("history.best_params", f"must be true, got {show(h['best_params'])}")
    if "rng" in manifest:
        _check_rng(manifest["rng"])
    if "vocab" in manifest:
        v = _obj(manifest["vocab"], "vocab")
        if _str(_key(v, "kind", "vocab"), "vocab.kind") != "char_vocab":
            raise Malformed("vocab.kind", f"must be 'char_vocab', got {show(v['kind'])}")
        _str(_key(v, "chars", "vocab"), "vocab.chars")
    uses = [k for k in ("rng", "history.split", "history.best_params") if _has(manifest, k)]
    if uses and manifest["version"] < 2:
        raise Malformed("version", f"is {manifest['version']}, which holds no {uses[0]}")
    decoupled = [
        i
        for i, cfg in enumerate(manifest.get("optimizer", ()))
        if cfg["transform"] == "AddDecayedWeights" and "learning_rate" in cfg
    ]
    if decoupled and manifest["version"] < 3:
        raise Malformed(
            "version",
            f"is {manifest['version']}, which holds no decoupled weight decay "
            f"(optimizer.{decoupled[0]}.learning_rate)",
        )


def _has(manifest: dict[str, Any], dotted: str) -> bool:
    node: Any = manifest
    for k in dotted.split("."):
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True


def _check_rng(x: Any) -> None:
    """A PCG64 (or PCG64DXSM) state: ``{"bit_generator", "state": {"state", "inc"},
    "has_uint32", "uinteger"}``, all plain ints in range."""
    st = _obj(x, "rng")
    name = _str(_key(st, "bit_generator", "rng"), "rng.bit_generator")
    if name not in RNG_STATES:
        raise Malformed("rng.bit_generator", f"must be one of {list(RNG_STATES)}, got {show(name)}")
    keys = {"bit_generator", "state", "has_uint32", "uinteger"}
    if set(st) != keys:
        raise Malformed("rng", f"must have the fields {sorted(keys)}, got {sorted(st)}")
    inner = _obj(st["state"], "rng.state")
    if set(inner) != {"state", "inc"}:
        raise Malformed("rng.state", f"must have the fields ['inc', 'state'], got {sorted(inner)}")
    for where, v, bound in (
        ("rng.state.state", inner["state"], 1 << 128),
        ("rng.state.inc", inner["inc"], 1 << 128),
        ("rng.has_uint32", st["has_uint32"], 2),
        ("rng.uinteger", st["uinteger"], 1 << 32),
    ):
        if _int(v, where) >= bound:
            raise Malformed(where, f"must be < {bound}, got {v}")


def _check_record(r: dict[str, Any], where: str) -> None:
    fields = {f.name for f in attrs.fields(EpochRecord)}
    unknown = sorted(set(r) - fields)
    if unknown:
        raise Malformed(where, f"has unknown fields {unknown}")
    _int(_key(r, "epoch", where), f"{where}.epoch", 1)
    for k in ("train_loss", "learning_rate", "seconds"):
        _num(_key(r, k, where), f"{where}.{k}")
    if _key(r, "val_loss", where) is not None:
        _num(r["val_loss"], f"{where}.val_loss")
    for k in ("metrics", "val_metrics"):
        for name, v in _obj(_key(r, k, where), f"{where}.{k}").items():
            _num(v, f"{where}.{k}.{name}")
