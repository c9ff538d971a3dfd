"""Checkpoints: ``fnn.save`` / ``fnn.load``, pickle-free files any program can read.

A checkpoint is a NumPy ``.npz`` archive: one array per parameter (``params/layers.0.W``
...) and optimizer-state leaf (``opt_state/states.0.mu`` ...), plus ``manifest.json``,
a UTF-8 JSON document stored as a uint8 array, that records the format version, the
architecture (layer kinds and static hyper-parameters, the loss), the dtype, the
optimizer's configuration and step, the History, the random generator's state, and the
shape and dtype of every array. A History's best parameters (``best_params/...``) and
validation split (``split/train``, ``split/validation``, int64 row indices) are arrays
too: with the generator's state they let a run resume bit for bit in a new process.
Files that hold none of these three are written as format version 1, which fnn read
before they existed.

Loading reads the archive with ``zipfile`` and ``np.lib.format`` (never pickle) and
builds every object from the manifest by name from fixed tables: nothing in a file is
ever executed or unpickled. It checks the archive's declared size against
``max_bytes`` and every array's declared shape and dtype (zip directory, ``.npy``
header, manifest, architecture, how the layers chain) before inflating any, then reads
the parameters straight into the network's one flat buffer, so memory is bounded by
what a valid checkpoint of that architecture needs, plus one copy at most. A save writes a temporary
file in the same folder, flushes it to disk and renames it over the target, so an
interrupted save leaves the previous checkpoint intact; the file gets the permissions
``open(path, "wb")`` would give, and the next save to the same path removes temporaries
left by saves whose process has died.
"""

from __future__ import annotations

import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

from fnn import losses, optim, schedules, tree
from fnn._atomic import write_atomically
from fnn._bounded_io import MAX_BYTES, check_declared_size, check_max_bytes, read_into
from fnn._types import FloatArray
from fnn.layers import base as _layers
from fnn.layout import Layout, describe_mismatch
from fnn.network import Network, from_flat
from fnn.training import EpochRecord, History, Split, check_best_params

__all__ = ["FORMAT_VERSION", "Checkpoint", "load", "register_layer", "save"]

FORMAT: Final = "fnn-checkpoint"
FORMAT_VERSION: Final = 2
"""The newest format this fnn reads and writes (a file is written with the oldest
version that holds what it has: 1 without a generator state, split or best parameters)."""
_RNG_STATES: Final = ("PCG64", "PCG64DXSM")
"""Bit generators whose state a checkpoint holds (their states are plain integers)."""
_SPLIT_PARTS: Final = ("train", "validation")
_OPT_SCALARS: Final = ("step", "lr_scale")
"""The optimizer state's scalar leaves, kept in the manifest rather than as arrays."""
MANIFEST: Final = "manifest.json"

Builder = Callable[[dict[str, Any], dict[str, np.ndarray[Any, Any]]], Any]
Shapes = Callable[[dict[str, Any]], Mapping[str, Sequence[int]]]


def register_layer(kind: str, build: Builder, shapes: Shapes | None = None) -> None:
    """Teach :func:`load` a layer kind: ``build(config, arrays)`` returns the layer from its
    ``config()`` dict and its arrays keyed by field name (e.g. ``{"W": ..., "b": ...}``).

    ``shapes(config)``, if given, returns the shape of each of the layer's arrays by
    field name (``{"W": (n_in, n_out), "b": (n_out,)}``): :func:`load` then checks the
    file's arrays against the architecture before reading them. Without it, the layer
    built from the file must give back the file's config (``layer.config()``).

    Deprecated: a thin alias of :func:`fnn.layers.register_layer` without a class or an
    example (which the shared property tests need); use that one, which also teaches
    ``fnn.summary``, ``fnn.sequential`` and the property suite the kind.
    """
    warnings.warn(
        "fnn.serialization.register_layer is deprecated; use "
        "fnn.layers.register_layer(name, cls, build=..., shapes=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    _layers.register_layer(kind, object, build=build, shapes=shapes)


# optimizer transforms and schedules register themselves where they are defined
_TRANSFORMS: Final = optim.TRANSFORMS.as_table()
_SCHEDULES: Final = schedules.SCHEDULES.as_table()
_MASK_FIELDS: Final = set(optim.MASK_FIELDS)


@attrs.frozen(eq=False)
class Checkpoint:
    """What :func:`load` returns.

    Attributes:
        params: the network.
        opt_state: the optimizer state, if saved (its optimizer rebuilt from the file).
        history: the training History, if saved (with its validation split and best
            parameters, if it had them).
        rng: a new Generator in the saved generator's state, if one was saved: pass it
            as ``fit(..., rng=ckpt.rng)`` to continue the run exactly.
    """

    params: Network
    opt_state: optim.OptState | None
    history: History | None
    rng: np.random.Generator | None = None


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")


# --- configs -----------------------------------------------------------------------


def _history_config(h: History) -> dict[str, Any]:
    out: dict[str, Any] = {
        "records": [
            attrs.asdict(r) | {"metrics": dict(r.metrics), "val_metrics": dict(r.val_metrics)}
            for r in h.records
        ],
        "best_epoch": h.best_epoch,
        "stopped_early": h.stopped_early,
    }
    if h.split is not None:
        out["split"] = {"fraction": h.split.fraction, "n": h.split.n}
    if h.best_params is not None:
        out["best_params"] = True
    return out


def _rng_config(rng: object) -> dict[str, Any]:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    state = rng.bit_generator.state
    if state.get("bit_generator") not in _RNG_STATES:
        raise ValueError(
            f"cannot save the state of a {type(rng.bit_generator).__name__} generator: "
            f"only {', '.join(_RNG_STATES)} (np.random.default_rng's) states are saved"
        )
    out: dict[str, Any] = json.loads(json.dumps(state))  # plain ints and strings
    return out


# --- save --------------------------------------------------------------------------


def _check_opt_state(opt_state: optim.OptState, params: Network) -> None:
    """ValueError naming the first differing path unless ``opt_state`` is a state its
    optimizer has for ``params`` (what :func:`load` rebuilds and checks it against)."""
    optim.check_state_fits(opt_state, params.flat, params.layout.key)
    if opt_state.params_key is not None:
        return  # made by optimizer.init for a network of this structure (checked above)
    template = opt_state.optimizer.init(params)
    want, got = tree.leaves_with_paths(template), tree.leaves_with_paths(opt_state)
    if [(p, np.shape(x), np.asarray(x).dtype) for p, x in want] != [
        (p, np.shape(x), np.asarray(x).dtype) for p, x in got
    ]:
        raise ValueError(describe_mismatch(template, opt_state, "opt_state"))


def save(
    path: str | os.PathLike[str],
    params: Network,
    *,
    opt_state: optim.OptState | None = None,
    history: History | None = None,
    rng: np.random.Generator | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    Args:
        path: the file to write (``.npz`` is appended if missing).
        params: the network.
        opt_state: an optimizer state to save with it, so a run can resume exactly.
        history: the History to save with it (with its validation split and best
            parameters, if it has them).
        rng: the fit's generator (a callback's ``state.rng``), whose state is saved so
            that ``fit(..., rng=fnn.load(path).rng)`` draws what the run would have
            drawn next (PCG64 and PCG64DXSM generators).

    Returns:
        The path written.
    """
    if not isinstance(params, Network):
        raise TypeError(f"params must be an fnn.Network, got {type(params).__name__}")
    if opt_state is not None and not isinstance(opt_state, optim.OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be an fnn.History, got {type(history).__name__}")
    if opt_state is not None:
        _check_opt_state(opt_state, params)
    rng_state = None if rng is None else _rng_config(rng)
    best = None if history is None else history.best_params
    if best is not None:
        check_best_params(best, params)
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for p, x in tree.flatten(params).items():
        arrays[f"params/{p}"] = np.asarray(x)
    new = rng_state is not None or (
        history is not None and (history.split is not None or best is not None)
    )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION if new else 1,
        "dtype": str(params.dtype),
        "architecture": {
            "loss": params.loss.config(),
            "input_shape": list(params.input_shape or ()),
            "layers": [layer.config() for layer in params.layers],
        },
    }
    if opt_state is not None:
        for t in opt_state.optimizer.transforms:
            if type(t).__name__ not in _TRANSFORMS:
                raise ValueError(
                    f"cannot save the optimizer transform {type(t).__name__}: not built in"
                )
        manifest["optimizer"] = opt_state.optimizer.config()
        manifest["opt_state"] = {"step": opt_state.step, "lr_scale": opt_state.lr_scale}
        for p, x in tree.leaves_with_paths(opt_state):
            if p in _OPT_SCALARS:
                continue
            arrays[f"opt_state/{p}"] = np.asarray(x)
    if history is not None:
        manifest["history"] = _history_config(history)
        if best is not None:
            for p, x in tree.flatten(best).items():
                arrays[f"best_params/{p}"] = np.asarray(x)
        if history.split is not None:
            arrays["split/train"] = np.asarray(history.split.train, dtype=np.int64)
            arrays["split/validation"] = np.asarray(history.split.validation, dtype=np.int64)
    if rng_state is not None:
        manifest["rng"] = rng_state
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
    }
    blob = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)

    payload: dict[str, Any] = {MANIFEST: blob, **arrays}
    write_atomically(target, lambda f: np.savez(f, **payload))
    return target


# --- load: the archive --------------------------------------------------------------

MAX_MANIFEST_BYTES: Final = 64 << 20
"""The largest manifest :func:`load` reads (a History of a million epochs fits)."""
MAX_DEPTH: Final = 32
"""The deepest nesting of JSON lists and objects a manifest may have."""
MAX_MEMBERS: Final = 1 << 16
_MAX_NDIM: Final = 32
_DEFLATE_MAX_RATIO: Final = 1032  # deflate cannot expand data by more than ~1032:1
_ARRAY_DTYPES: Final = {"float32", "float64", "bool"}


class _Malformed(Exception):
    """A manifest entry of the wrong type or value; ``where`` is its dotted JSON path."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} {what}" if where else what)


@attrs.frozen
class _Member:
    """An ``.npy`` member of the archive, from the zip's central directory and the
    member's ``.npy`` header (read before any of its data)."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool


def _npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(d) for d in shape), np.dtype(dtype), bool(fortran)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


class _Archive:
    """A checkpoint opened for reading in bounded memory.

    Opening reads only the zip's central directory and each member's ``.npy`` header,
    and checks that every member's declared size is what its header says and what the
    file can hold (stored members exactly their bytes, deflated ones at most deflate's
    maximal expansion): nothing is decompressed. :meth:`read` then reads one member's
    data into an array allocated at its (checked) size, never more.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.zf = zipfile.ZipFile(path)
        try:
            self.members = self._scan()
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zf.close()

    def _scan(self) -> dict[str, _Member]:
        infos = self.zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _bad(self.path, f"too many members ({len(infos)} > {MAX_MEMBERS})")
        disk = self.path.stat().st_size
        names: set[str] = set()
        for info in infos:  # from the central directory alone: nothing is inflated
            name = info.filename
            if not name.endswith(".npy"):
                raise _bad(self.path, f"unexpected member {name!r} (not an .npy array)")
            if name in names:
                raise _bad(self.path, f"member {name!r} appears twice")
            names.add(name)
            if info.flag_bits & 0x1:
                raise _bad(self.path, f"member {name!r} is encrypted")
            if info.compress_type == zipfile.ZIP_STORED:
                fits = info.file_size == info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                fits = info.file_size <= _DEFLATE_MAX_RATIO * info.compress_size + 1024
            else:
                raise _bad(
                    self.path,
                    f"member {name!r} uses compression method {info.compress_type}; "
                    "only stored and deflated members are read",
                )
            if not fits or info.header_offset + info.compress_size > disk:
                raise _bad(
                    self.path,
                    f"member {name!r} declares {info.file_size} bytes, more than its "
                    f"{info.compress_size} stored bytes can hold (corrupted or a zip bomb)",
                )
        total = sum(info.file_size for info in infos)
        check_declared_size(self.path, "the archive (uncompressed)", total, self.max_bytes)
        members: dict[str, _Member] = {}
        for info in infos:
            name = info.filename
            key = name[: -len(".npy")]
            try:
                with self.zf.open(info) as f:
                    shape, dtype, fortran = _npy_header(f)
                    header_len = f.tell()
            except (ValueError, SyntaxError, RecursionError, MemoryError, EOFError) as e:
                raise _bad(self.path, f"member {name!r} has no valid .npy header ({e})") from e
            if dtype.hasobject:
                raise _bad(self.path, "holds object (pickled) arrays, which are never loaded")
            if dtype.fields is not None or dtype.subdtype is not None or len(shape) > _MAX_NDIM:
                raise _bad(self.path, f"array {key} has an unsupported dtype {dtype} or rank")
            if header_len + _nbytes(shape, dtype) != info.file_size:
                raise _bad(
                    self.path,
                    f"array {key}: its header declares shape {list(shape)} and dtype {dtype} "
                    f"({_nbytes(shape, dtype)} bytes), but the archive declares "
                    f"{info.file_size - header_len} bytes of data",
                )
            members[key] = _Member(info=info, shape=shape, dtype=dtype, fortran=fortran)
        return members

    def read(self, key: str, out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The array of member ``key``: exactly its declared bytes, CRC-checked, inflated
        straight into ``out`` (C-contiguous, writable, of the member's shape and dtype)
        if given, else into a new array."""
        m = self.members[key]
        shape = m.shape[::-1] if m.fortran else m.shape
        fill = np.empty(shape, dtype=m.dtype) if out is None or m.fortran else out
        with self.zf.open(m.info) as f:
            _npy_header(f)
            if read_into(f, fill) < fill.nbytes:
                raise _bad(self.path, f"array {key} is truncated")
            if f.read(1):  # reaching the end also checks the CRC
                raise _bad(self.path, f"array {key} has trailing bytes")
        arr = fill.T if m.fortran else fill
        if out is not None and arr is not out:
            out[...] = arr
            return out
        return arr

    def manifest(self) -> dict[str, Any]:
        """The manifest, parsed: bounded in size and nesting, an object at the top."""
        m = self.members.get(MANIFEST)
        if m is None:
            raise _bad(self.path, f"not an fnn checkpoint (no {MANIFEST})")
        if m.dtype != np.uint8 or len(m.shape) != 1:
            raise _bad(
                self.path,
                f"the manifest must be a 1-D uint8 array, got shape {list(m.shape)} "
                f"and dtype {m.dtype}",
            )
        if m.shape[0] > MAX_MANIFEST_BYTES:
            raise _bad(
                self.path, f"the manifest has {m.shape[0]} bytes (more than {MAX_MANIFEST_BYTES})"
            )
        raw = self.read(MANIFEST).tobytes()
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except RecursionError as e:
            raise _bad(self.path, "the manifest is nested too deeply") from e
        except ValueError as e:  # also UnicodeDecodeError and JSONDecodeError
            raise _bad(self.path, f"the manifest is not valid JSON ({e})") from e
        if _depth(manifest) > MAX_DEPTH:
            raise _bad(self.path, f"the manifest is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _bad(self.path, "not an fnn checkpoint (wrong format field)")
        return manifest


def _depth(x: Any) -> int:
    """The nesting depth of JSON lists and objects in ``x`` (iterative: no recursion)."""
    deepest = 0
    stack = [(x, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        stack.extend((c, d + 1) for c in children)
    return deepest


# --- load: the manifest's types -----------------------------------------------------


def _obj(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise _Malformed(where, f"must be a JSON object, got {_show(x)}")
    return x


def _list(x: Any, where: str) -> list[Any]:
    if not isinstance(x, list):
        raise _Malformed(where, f"must be a JSON list, got {_show(x)}")
    return x


def _str(x: Any, where: str) -> str:
    if not isinstance(x, str):
        raise _Malformed(where, f"must be a string, got {_show(x)}")
    return x


def _int(x: Any, where: str, lo: int = 0) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < lo:
        raise _Malformed(where, f"must be an int >= {lo}, got {_show(x)}")
    return x


def _num(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise _Malformed(where, f"must be a number, got {_show(x)}")
    return float(x)


def _key(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise _Malformed(f"{where}.{key}" if where else key, "is missing")
    return d[key]


def _show(x: Any) -> str:
    text = json.dumps(x) if isinstance(x, str | int | float | bool) or x is None else None
    if text is None:
        text = "a JSON object" if isinstance(x, dict) else "a JSON list"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_version(path: Path, manifest: dict[str, Any]) -> None:
    version = manifest.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise _bad(
            path,
            f"format version {version} is newer than this fnn reads "
            f"({FORMAT_VERSION}); upgrade fnn",
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(
            path,
            f"malformed manifest: version must be an int from 1 to {FORMAT_VERSION}, "
            f"got {_show(version)}",
        )


def _check_manifest(manifest: dict[str, Any]) -> None:
    """Check the JSON types of everything :func:`load` reads (raises :class:`_Malformed`)."""
    dtype = _str(_key(manifest, "dtype", ""), "dtype")
    if dtype not in ("float32", "float64"):
        raise _Malformed("dtype", f"must be 'float32' or 'float64', got {_show(dtype)}")
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
        if len(shape) > _MAX_NDIM:
            raise _Malformed(f"{where}.shape", f"has {len(shape)} dimensions")
        for j, d in enumerate(shape):
            _int(d, f"{where}.shape.{j}")
        dt = _str(_key(spec, "dtype", where), f"{where}.dtype")
        if name.startswith("split/"):
            if dt != "int64" or len(shape) != 1:
                raise _Malformed(where, f"must be a 1-D int64 array, got {dt} {shape}")
        elif dt not in _ARRAY_DTYPES:
            raise _Malformed(
                f"{where}.dtype", f"must be one of {sorted(_ARRAY_DTYPES)}, got {_show(dt)}"
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
            raise _Malformed("opt_state.lr_scale", f"must be finite and >= 0, got {scale!r}")
    if "history" in manifest:
        h = _obj(manifest["history"], "history")
        for i, r in enumerate(_list(_key(h, "records", "history"), "history.records")):
            _check_record(_obj(r, f"history.records.{i}"), f"history.records.{i}")
        best = h.get("best_epoch")
        if best is not None:
            _int(best, "history.best_epoch", 1)
        if not isinstance(h.get("stopped_early", False), bool):
            raise _Malformed(
                "history.stopped_early", f"must be true or false, got {_show(h['stopped_early'])}"
            )
        if "split" in h:
            sp = _obj(h["split"], "history.split")
            fraction = _num(_key(sp, "fraction", "history.split"), "history.split.fraction")
            if not 0 < fraction < 1:
                raise _Malformed("history.split.fraction", f"must be in (0, 1), got {fraction!r}")
            _int(_key(sp, "n", "history.split"), "history.split.n", 2)
        if h.get("best_params", True) is not True:
            raise _Malformed("history.best_params", f"must be true, got {_show(h['best_params'])}")
    if "rng" in manifest:
        _check_rng(manifest["rng"])
    uses = [k for k in ("rng", "history.split", "history.best_params") if _has(manifest, k)]
    if uses and manifest["version"] < 2:
        raise _Malformed("version", f"is {manifest['version']}, which holds no {uses[0]}")


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
    if name not in _RNG_STATES:
        raise _Malformed(
            "rng.bit_generator", f"must be one of {list(_RNG_STATES)}, got {_show(name)}"
        )
    keys = {"bit_generator", "state", "has_uint32", "uinteger"}
    if set(st) != keys:
        raise _Malformed("rng", f"must have the fields {sorted(keys)}, got {sorted(st)}")
    inner = _obj(st["state"], "rng.state")
    if set(inner) != {"state", "inc"}:
        raise _Malformed("rng.state", f"must have the fields ['inc', 'state'], got {sorted(inner)}")
    for where, v, bound in (
        ("rng.state.state", inner["state"], 1 << 128),
        ("rng.state.inc", inner["inc"], 1 << 128),
        ("rng.has_uint32", st["has_uint32"], 2),
        ("rng.uinteger", st["uinteger"], 1 << 32),
    ):
        if _int(v, where) >= bound:
            raise _Malformed(where, f"must be < {bound}, got {v}")


def _check_record(r: dict[str, Any], where: str) -> None:
    fields = {f.name for f in attrs.fields(EpochRecord)}
    unknown = sorted(set(r) - fields)
    if unknown:
        raise _Malformed(where, f"has unknown fields {unknown}")
    _int(_key(r, "epoch", where), f"{where}.epoch", 1)
    for k in ("train_loss", "learning_rate", "seconds"):
        _num(_key(r, k, where), f"{where}.{k}")
    if _key(r, "val_loss", where) is not None:
        _num(r["val_loss"], f"{where}.val_loss")
    for k in ("metrics", "val_metrics"):
        for name, v in _obj(_key(r, k, where), f"{where}.{k}").items():
            _num(v, f"{where}.{k}.{name}")


# --- load: building the values ------------------------------------------------------


def _layer_shapes(
    path: Path, i: int, kind: str, cfg: dict[str, Any]
) -> dict[str, tuple[int, ...]] | None:
    shapes = _layers.LAYERS[kind].shapes if kind in _layers.LAYERS else None
    if shapes is None:
        return None
    try:
        got = shapes(cfg)
        return None if got is None else {str(f): tuple(int(d) for d in s) for f, s in got.items()}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _bad(path, f"malformed manifest: architecture.layers.{i} ({kind}): {e}") from e


def _build_network(path: Path, manifest: dict[str, Any], ar: _Archive) -> Network:
    """The network, read straight into its one flat buffer.

    The whole architecture is checked before any array is read: each layer's arrays
    against its config (shape and dtype), then each layer built from placeholders (one
    layer at a time) and the network from those layers (how layers chain, the loss, the
    input shape). Only then are the arrays read, each into its slice of the buffer.
    """
    dtype = np.dtype(manifest["dtype"])
    declared: dict[str, Any] = manifest["arrays"]
    loss = manifest["architecture"]["loss"]
    name = loss if isinstance(loss, str) else loss["name"]
    if name not in losses.LOSSES:
        raise _bad(
            path,
            f"architecture.loss has unknown loss {name!r} (register it with fnn.losses.register)",
        )
    keys = {k for k in declared if k.startswith("params/")}
    size = sum(math.prod(ar.members[k].shape) for k in keys)
    # zeros: the buffer's pages are not touched before the arrays are read into them;
    # until then, views of it stand in for the layers' arrays
    flat = np.zeros(size, dtype=dtype)
    layers = [
        _placeholder_layer(path, i, cfg, ar, dtype, flat)
        for i, cfg in enumerate(manifest["architecture"]["layers"])
    ]
    try:
        arch = manifest["architecture"]
        shape = arch.get("input_shape")
        net = Network(
            layers=layers,
            loss=losses.get(arch["loss"]),
            input_shape=tuple(shape) if shape else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise _bad(path, f"the network cannot be built from the file: {e}") from e
    lay = net.layout
    expected_keys = {f"params/{p}" for p in lay.paths}
    if expected_keys != keys:
        raise _bad(
            path,
            f"parameter arrays do not match the architecture: {sorted(keys ^ expected_keys)}",
        )
    return _read_flat(ar, "params/", net, flat)  # into the stand-ins' buffer


def _placeholder_layer(
    path: Path, i: int, cfg: dict[str, Any], ar: _Archive, dtype: np.dtype[Any], flat: FloatArray
) -> Any:
    """Layer ``i`` as the file declares it, checked (its arrays' shapes and dtype against
    its config, its build, its config) but holding views of ``flat`` in place of its
    arrays: nothing of the file's arrays is read. Built from placeholders, it costs one
    copy of this layer's arrays for as long as the build takes."""
    kind = cfg["kind"]
    if kind not in _layers.LAYERS:
        raise _bad(
            path,
            f"layers.{i} has unknown kind {kind!r} (register it with fnn.layers.register_layer)",
        )
    prefix = f"params/layers.{i}."
    own = {k[len(prefix) :]: k for k in ar.members if k.startswith(prefix)}
    expected = _layer_shapes(path, i, kind, cfg)
    if expected is not None and set(expected) != set(own):
        raise _bad(
            path,
            f"layers.{i} ({kind}) has the arrays {sorted(own)} in the file, but its "
            f"architecture needs {sorted(expected)}",
        )
    needs = f"the architecture (architecture.layers.{i}: {_describe(cfg)})"
    stand_in = {}
    for field, key in own.items():
        m = ar.members[key]
        want = m.shape if expected is None else expected[field]
        _check_member(path, key, m, want, dtype, needs)
        stand_in[field] = flat[: math.prod(want)].reshape(want)
    try:
        layer = _layers.LAYERS[kind].build(cfg, stand_in)
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as e:
        raise _bad(path, f"layers.{i} cannot be built from the file: {e}") from e
    if expected is None:
        try:
            built = json.loads(json.dumps(layer.config()))
        except (TypeError, ValueError, AttributeError) as e:
            raise _bad(path, f"layers.{i} built from the file has no config: {e}") from e
        if built != cfg:
            raise _bad(
                path,
                f"layers.{i} built from the file's arrays is {built}, but the manifest's "
                f"architecture says {cfg}",
            )
    lay = Layout(layer)
    return lay.build(flat[: lay.size], writable=True)


def _check_member(
    path: Path, key: str, m: _Member, shape: tuple[int, ...], dtype: np.dtype[Any], needs: str
) -> None:
    """ValueError unless the archive's array ``key`` has ``shape`` and ``dtype`` (checked
    before it is read); ``needs`` names what asks for them."""
    if m.shape != shape or m.dtype != dtype:
        raise _bad(
            path,
            f"array {key} has shape {list(m.shape)} and dtype {m.dtype}, but {needs} needs "
            f"shape {list(shape)} and dtype {dtype}",
        )


def _describe(cfg: dict[str, Any]) -> str:
    sizes = [cfg.get(k) for k in ("n_in", "n_out")]
    if all(isinstance(s, int) for s in sizes):
        return f"{cfg['kind']} {sizes[0]} -> {sizes[1]}"
    return str(cfg["kind"])


def _optimizer_from_config(cfgs: list[dict[str, Any]]) -> optim.Optimizer:
    out = []
    for i, cfg in enumerate(cfgs):
        c = dict(cfg)
        name = c.pop("transform")
        if name not in _TRANSFORMS:
            raise _Malformed(f"optimizer.{i}.transform", f"is unknown: {_show(name)}")
        for k in _MASK_FIELDS & set(c):
            if c[k] not in (None, "mask"):
                raise _Malformed(f"optimizer.{i}.{k}", f"must be null or 'mask', got {_show(c[k])}")
            c[k] = None if c[k] is None else (lambda _p: False)  # the state holds the mask
        if isinstance(c.get("learning_rate"), dict):
            s = dict(c["learning_rate"])
            schedule = s.pop("schedule")
            if schedule not in _SCHEDULES:
                raise _Malformed(
                    f"optimizer.{i}.learning_rate.schedule", f"is unknown: {_show(schedule)}"
                )
            c["learning_rate"] = _SCHEDULES[schedule](**s)
        out.append(_TRANSFORMS[name](**c))
    return optim.Optimizer(transforms=tuple(out))


def _check_opt_arrays(
    path: Path, ar: _Archive, given: set[str], state: optim.OptState, part: int | None = None
) -> None:
    """ValueError unless the file's optimizer-state arrays (``given``, their paths) are
    ``state``'s, in shape and dtype. With ``part``, ``state`` is the state of transform
    number ``part`` alone (as ``states.0``), whose arrays the file must hold."""
    expected = {}
    for q, x in tree.leaves_with_paths(state):
        if q in _OPT_SCALARS:
            continue
        if part is not None and (q == "states.0" or q.startswith("states.0.")):
            q = f"states.{part}" + q[len("states.0") :]
        expected[q] = np.asarray(x)
    wrong = set(expected) - given if part is not None else set(expected) ^ given
    if wrong:
        raise _bad(
            path,
            "the optimizer state cannot be restored: optimizer-state arrays "
            f"{sorted(wrong)} do not match",
        )
    for q, x in expected.items():
        key = f"opt_state/{q}"
        _check_member(
            path, key, ar.members[key], x.shape, x.dtype, "the optimizer state for this network"
        )


def _restore_opt_state(
    path: Path, manifest: dict[str, Any], ar: _Archive, net: Network
) -> optim.OptState:
    """The optimizer state, each array checked against the state this optimizer has for
    ``net`` (shape, rank and dtype) before it is read."""
    try:
        optimizer = _optimizer_from_config(manifest["optimizer"])
    except _Malformed as e:
        raise _bad(path, f"malformed manifest: {e}") from e
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as e:
        raise _bad(path, f"the optimizer cannot be rebuilt from the file: {e}") from e
    given = {k[len("opt_state/") :] for k in manifest["arrays"] if k.startswith("opt_state/")}
    # one transform at a time, so that a manifest declaring many transforms costs at most
    # one transform's state before the file's arrays are found not to match
    for i, t in enumerate(optimizer.transforms):
        one = optim.Optimizer(transforms=(t,)).init(net)
        _check_opt_arrays(path, ar, given, one, part=i)
    template = optimizer.init(net)
    _check_opt_arrays(path, ar, given, template)

    def take(q: str, leaf: Any) -> Any:
        if q in _OPT_SCALARS:
            return leaf
        return tree.read_only(ar.read(f"opt_state/{q}"))

    restored = tree.map_with_path(take, template)
    st = manifest["opt_state"]
    return attrs.evolve(restored, step=int(st["step"]), lr_scale=float(st["lr_scale"]))


def _restore_history(h: dict[str, Any], opt_state: optim.OptState | None) -> History:
    return History(
        records=tuple(
            EpochRecord(
                epoch=r["epoch"],
                train_loss=float(r["train_loss"]),
                val_loss=None if r["val_loss"] is None else float(r["val_loss"]),
                metrics={k: float(v) for k, v in r["metrics"].items()},
                val_metrics={k: float(v) for k, v in r["val_metrics"].items()},
                learning_rate=float(r["learning_rate"]),
                seconds=float(r["seconds"]),
            )
            for r in h["records"]
        ),
        opt_state=opt_state,
        best_epoch=h.get("best_epoch"),
        stopped_early=bool(h.get("stopped_early", False)),
    )


def _restore_best_params(
    path: Path, manifest: dict[str, Any], ar: _Archive, net: Network
) -> Network | None:
    """The History's best parameters, each array checked against ``net``'s before it is
    read (they are parameters of the same architecture)."""
    given = {k for k in manifest["arrays"] if k.startswith("best_params/")}
    if not manifest.get("history", {}).get("best_params", False):
        if given:
            raise _bad(path, f"unexpected array {sorted(given)[0]} (history.best_params is unset)")
        return None
    expected = {f"best_params/{p}": np.asarray(x) for p, x in tree.flatten(net).items()}
    if set(expected) != given:
        raise _bad(
            path,
            f"best-parameter arrays do not match the architecture: {sorted(given ^ set(expected))}",
        )
    for key, x in expected.items():
        _check_member(path, key, ar.members[key], x.shape, x.dtype, "the architecture")
    return _read_flat(ar, "best_params/", net)


def _read_flat(ar: _Archive, prefix: str, net: Network, flat: FloatArray | None = None) -> Network:
    """A network of ``net``'s structure whose arrays, the archive's ``prefix + path``
    (checked against ``net``'s), are read straight into its one flat buffer: ``flat``
    (1-D, ``net.layout.size`` elements, no one else's), or a new one."""
    lay = net.layout
    if flat is None:
        flat = np.empty(lay.size, dtype=lay.dtype)
    _, views = lay.build_with_views(flat)  # writable views of ``flat``, in its order
    for p, view in zip(lay.paths, views, strict=True):
        ar.read(prefix + p, out=view)
    return from_flat(net, flat)


def _restore_split(path: Path, manifest: dict[str, Any], ar: _Archive) -> Split | None:
    """The History's validation split: two sorted, disjoint int64 index arrays that
    together are ``range(n)``, with their sizes checked before they are read."""
    given = {k for k in manifest["arrays"] if k.startswith("split/")}
    spec = manifest.get("history", {}).get("split")
    expected = {f"split/{part}" for part in _SPLIT_PARTS}
    if spec is None:
        if given:
            raise _bad(path, f"unexpected array {sorted(given)[0]} (history.split is unset)")
        return None
    if given != expected:
        raise _bad(path, f"the split arrays do not match: {sorted(given ^ expected)}")
    n = spec["n"]
    sizes = [ar.members[k].shape[0] for k in sorted(expected)]
    if sum(sizes) != n or min(sizes) < 1:
        raise _bad(
            path,
            f"the split's arrays have {sizes} rows, but history.split.n is {n} "
            "(both parts non-empty)",
        )
    tr, va = ar.read("split/train"), ar.read("split/validation")
    # each strictly increasing within [0, n), and no row in both: then, with n rows in
    # all, they cover range(n) (checked with n bytes of flags, not a copy of the rows)
    seen = np.zeros(n, dtype=bool)
    ok = True
    for part in (tr, va):
        ok = ok and bool(
            part[0] >= 0 and part[-1] < n and np.all(part[1:] > part[:-1]) and not seen[part].any()
        )
        if ok:
            seen[part] = True
    if not ok:
        raise _bad(
            path,
            f"the split's rows are not two sorted, disjoint index arrays covering range({n})",
        )
    return Split(fraction=float(spec["fraction"]), train=tr, validation=va)


def _restore_rng(path: Path, manifest: dict[str, Any]) -> np.random.Generator | None:
    if "rng" not in manifest:
        return None
    st = manifest["rng"]
    try:
        bit_generator = getattr(np.random, st["bit_generator"])()
        bit_generator.state = st
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise _bad(path, f"the random generator cannot be restored from the file: {e}") from e
    return np.random.Generator(bit_generator)


def _load(path: Path, ar: _Archive) -> Checkpoint:
    manifest = ar.manifest()
    _check_version(path, manifest)
    try:
        _check_manifest(manifest)
    except _Malformed as e:
        raise _bad(path, f"malformed manifest: {e}") from e
    declared: dict[str, Any] = manifest["arrays"]
    names = set(ar.members) - {MANIFEST}
    if set(declared) != names:
        missing, extra = sorted(set(declared) - names), sorted(names - set(declared))
        raise _bad(
            path, f"the manifest does not match the arrays (missing {missing}, extra {extra})"
        )
    for name in sorted(names):
        m, spec = ar.members[name], declared[name]
        if list(m.shape) != spec["shape"] or str(m.dtype) != spec["dtype"]:
            raise _bad(
                path,
                f"array {name} has shape {list(m.shape)} and dtype {m.dtype}, but the manifest "
                f"says {spec['shape']} and {spec['dtype']}",
            )
        if not (
            name.startswith("params/")
            or (name.startswith("opt_state/") and "optimizer" in manifest)
            or (name.startswith(("best_params/", "split/")) and "history" in manifest)
        ):
            raise _bad(path, f"unexpected array {name} (neither a parameter nor optimizer state)")
    net = _build_network(path, manifest, ar)
    opt_state = _restore_opt_state(path, manifest, ar, net) if "optimizer" in manifest else None
    history = None
    if "history" in manifest:
        history = attrs.evolve(
            _restore_history(manifest["history"], opt_state),
            best_params=_restore_best_params(path, manifest, ar, net),
            split=_restore_split(path, manifest, ar),
        )
    rng = _restore_rng(path, manifest)
    return Checkpoint(params=net, opt_state=opt_state, history=history, rng=rng)


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> Checkpoint:
    """Read a checkpoint written by :func:`save`, in memory bounded by what its manifest
    declares.

    Before any array is read, the archive's declared size must be at most
    ``max_bytes``, and the zip's central directory, each array's ``.npy`` header, the
    manifest and the architecture it describes must agree on every array's shape and
    dtype (the layers must chain into a network, and the optimizer state must be the
    one its optimizer has for that network); an archive member that declares more than
    its stored bytes can expand to is refused before it is decompressed. The
    parameters are then inflated straight into the network's one flat buffer.

    Args:
        path: the checkpoint (``.npz`` is appended if there is no file at ``path``).
        max_bytes: the most bytes the archive may declare in all (uncompressed); 2 GiB
            by default, raise it to load larger checkpoints.

    Returns a :class:`Checkpoint` with bit-identical arrays of the saved dtype.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file (and the array or manifest entry), if it is
            truncated, corrupted, of a newer format version, holds object arrays, has a
            malformed manifest, declares more than ``max_bytes``, or has arrays that
            contradict the manifest or its architecture.
    """
    max_bytes = check_max_bytes(max_bytes)
    p = Path(path)
    if not p.exists() and p.suffix != ".npz" and p.with_name(p.name + ".npz").exists():
        p = p.with_name(p.name + ".npz")
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}")
    if not zipfile.is_zipfile(p):
        raise _bad(p, "corrupted or truncated checkpoint (not a zip archive)")
    try:
        with _Archive(p, max_bytes) as ar:
            return _load(p, ar)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error) as e:
        raise _bad(p, f"corrupted or truncated checkpoint ({e})") from e
    except OSError as e:
        if isinstance(e, PermissionError | IsADirectoryError | FileNotFoundError):
            raise
        raise _bad(p, f"corrupted or truncated checkpoint ({e})") from e
