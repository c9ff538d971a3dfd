"""Checkpoints: ``fnn.save`` / ``fnn.load``, pickle-free files any program can read.

A checkpoint is a NumPy ``.npz`` archive: one array per parameter (``params/layers.0.W``
...) and optimizer-state leaf (``opt_state/states.0.mu`` ...), plus ``manifest.json``,
a UTF-8 JSON document stored as a uint8 array, that records the format version, the
architecture (layer kinds and static hyper-parameters, the loss), the dtype, the
optimizer's configuration and step, the History, and the shape and dtype of every array.

Loading uses ``np.load(allow_pickle=False)`` and builds every object from the manifest by
name from fixed tables: nothing in a file is ever executed or unpickled. A save writes a
temporary file in the same folder, flushes it to disk and renames it over the target, so
an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

from fnn import losses, optim, schedules, tree
from fnn.layers import base as _layers
from fnn.network import Network, pack
from fnn.training import EpochRecord, History

__all__ = ["FORMAT_VERSION", "Checkpoint", "load", "register_layer", "save"]

FORMAT: Final = "fnn-checkpoint"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"


def register_layer(
    kind: str, build: Callable[[dict[str, Any], dict[str, np.ndarray[Any, Any]]], Any]
) -> None:
    """Teach :func:`load` a layer kind: ``build(config, arrays)`` returns the layer from its
    ``config()`` dict and its arrays keyed by field name (e.g. ``{"W": ..., "b": ...}``).

    Same as :func:`fnn.layers.register_layer` without a class or an example (which the
    shared property tests need); prefer that one for new layer kinds.
    """
    _layers.register_layer(kind, object, build=build)


_TRANSFORMS: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (
        optim.SGD,
        optim.Adam,
        optim.AdamW,
        optim.RMSprop,
        optim.Adagrad,
        optim.ClipByGlobalNorm,
        optim.AddDecayedWeights,
        optim.Freeze,
    )
}
_SCHEDULES: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (
        schedules.Constant,
        schedules.PiecewiseConstant,
        schedules.StepDecay,
        schedules.ExponentialDecay,
        schedules.CosineDecay,
        schedules.WarmupCosine,
    )
}
_MASK_FIELDS: Final = set(optim._MASK_FIELDS)


@attrs.frozen(eq=False)
class Checkpoint:
    """What :func:`load` returns.

    Attributes:
        params: the network.
        opt_state: the optimizer state, if saved (its optimizer rebuilt from the file).
        history: the training History, if saved.
    """

    params: Network
    opt_state: optim.OptState | None
    history: History | None


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")


# --- configs -----------------------------------------------------------------------


def _optimizer_from_config(cfgs: list[dict[str, Any]]) -> optim.Optimizer:
    out = []
    for cfg in cfgs:
        c = dict(cfg)
        cls = _TRANSFORMS[c.pop("transform")]
        for k in _MASK_FIELDS & set(c):
            c[k] = None if c[k] is None else (lambda _p: False)  # the state holds the mask
        if isinstance(c.get("learning_rate"), dict):
            s = dict(c["learning_rate"])
            c["learning_rate"] = _SCHEDULES[s.pop("schedule")](**s)
        out.append(cls(**c))
    return optim.Optimizer(transforms=tuple(out))


def _history_config(h: History) -> dict[str, Any]:
    return {
        "records": [
            attrs.asdict(r) | {"metrics": dict(r.metrics), "val_metrics": dict(r.val_metrics)}
            for r in h.records
        ],
        "best_epoch": h.best_epoch,
        "stopped_early": h.stopped_early,
    }


# --- save --------------------------------------------------------------------------


def save(
    path: str | os.PathLike[str],
    params: Network,
    *,
    opt_state: optim.OptState | None = None,
    history: History | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    Args:
        path: the file to write (``.npz`` is appended if missing).
        params: the network.
        opt_state: an optimizer state to save with it, so a run can resume exactly.
        history: the History to save with it.

    Returns:
        The path written.
    """
    if not isinstance(params, Network):
        raise TypeError(f"params must be an fnn.Network, got {type(params).__name__}")
    if opt_state is not None and not isinstance(opt_state, optim.OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for p, x in tree.flatten(params).items():
        arrays[f"params/{p}"] = np.asarray(x)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
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
        for p, x in tree.leaves_with_paths(attrs.evolve(opt_state, step=0, lr_scale=0.0)):
            if p in ("step", "lr_scale"):
                continue
            arrays[f"opt_state/{p}"] = np.asarray(x)
    if history is not None:
        manifest["history"] = _history_config(history)
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
    }
    blob = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            payload: dict[str, Any] = {MANIFEST: blob, **arrays}
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --- load --------------------------------------------------------------------------


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise _bad(path, "corrupted or truncated checkpoint (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if MANIFEST not in names:
                raise _bad(path, f"not an fnn checkpoint (no {MANIFEST})")
            data = {n: z[n] for n in names}
    except zipfile.BadZipFile as e:
        raise _bad(path, f"corrupted or truncated checkpoint ({e})") from e
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise _bad(path, "holds object (pickled) arrays, which are never loaded") from e
        if str(e).startswith(str(path)):
            raise
        raise _bad(path, f"unreadable checkpoint ({e})") from e
    except (OSError, EOFError, zipfile.LargeZipFile) as e:
        raise _bad(path, f"corrupted or truncated checkpoint ({e})") from e
    blob = data.pop(MANIFEST)
    try:
        manifest = json.loads(blob.astype(np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"the manifest is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(path, "not an fnn checkpoint (wrong format field)")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _bad(
            path,
            f"format version {version} is newer than this fnn reads "
            f"({FORMAT_VERSION}); upgrade fnn",
        )
    declared = manifest.get("arrays", {})
    if set(declared) != set(data):
        missing, extra = sorted(set(declared) - set(data)), sorted(set(data) - set(declared))
        raise _bad(
            path, f"the manifest does not match the arrays (missing {missing}, extra {extra})"
        )
    for name, a in data.items():
        spec = declared[name]
        if list(a.shape) != spec.get("shape") or str(a.dtype) != spec.get("dtype"):
            raise _bad(
                path,
                f"array {name} has shape {list(a.shape)} and dtype {a.dtype}, but the manifest "
                f"says {spec.get('shape')} and {spec.get('dtype')}",
            )
        if a.dtype.kind == "O":
            raise _bad(path, f"array {name} is an object array")
    return manifest, data


def _build_network(
    path: Path, manifest: dict[str, Any], data: dict[str, np.ndarray[Any, Any]]
) -> Network:
    arch = manifest.get("architecture") or {}
    layers = []
    for i, cfg in enumerate(arch.get("layers", [])):
        kind = cfg.get("kind")
        if not isinstance(kind, str) or kind not in _layers.LAYERS:
            raise _bad(
                path,
                f"layers.{i} has unknown kind {kind!r} "
                "(register it with fnn.serialization.register_layer)",
            )
        prefix = f"params/layers.{i}."
        own = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
        try:
            layers.append(_layers.LAYERS[kind].build(cfg, own))
        except (KeyError, ValueError, TypeError) as e:
            raise _bad(path, f"layers.{i} cannot be built from the file: {e}") from e
    try:
        shape = arch.get("input_shape")
        net = Network(
            layers=layers,
            loss=losses.get(arch.get("loss", {})),
            input_shape=None if shape is None else tuple(shape),
        )
    except (ValueError, TypeError) as e:
        raise _bad(path, f"the network cannot be built from the file: {e}") from e
    expected = {f"params/{p}" for p in tree.flatten(net)}
    given = {k for k in data if k.startswith("params/")}
    if expected != given:
        raise _bad(
            path, f"parameter arrays do not match the architecture: {sorted(given ^ expected)}"
        )
    return pack(net)


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Returns a :class:`Checkpoint` with bit-identical arrays of the saved dtype.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file, if it is truncated, corrupted, of a newer format
            version, inconsistent with its manifest, or holds object arrays.
    """
    p = Path(path)
    if not p.exists() and p.suffix != ".npz" and p.with_name(p.name + ".npz").exists():
        p = p.with_name(p.name + ".npz")
    manifest, data = _read(p)
    net = _build_network(p, manifest, data)
    opt_state = None
    if "optimizer" in manifest:
        try:
            optimizer = _optimizer_from_config(manifest["optimizer"])
            template = optimizer.init(net)
            leaves = {
                k[len("opt_state/") :]: v for k, v in data.items() if k.startswith("opt_state/")
            }
            body = attrs.evolve(template, step=0, lr_scale=0.0)
            paths = {q for q, _ in tree.leaves_with_paths(body)} - {"step", "lr_scale"}
            if paths != set(leaves):
                raise ValueError(
                    f"optimizer-state arrays {sorted(paths ^ set(leaves))} do not match"
                )

            def take(q: str, ls: list[Any]) -> Any:
                if q in ("step", "lr_scale"):
                    return ls[0]
                v = leaves[q]
                if v.dtype == np.bool_:
                    return v
                v = v.view()
                v.flags.writeable = False
                return v

            restored = tree.map_with_path(lambda q, leaf: take(q, [leaf]), body)
            opt_state = attrs.evolve(
                restored,
                step=int(manifest["opt_state"]["step"]),
                lr_scale=float(manifest["opt_state"]["lr_scale"]),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise _bad(p, f"the optimizer state cannot be restored: {e}") from e
    history = None
    if "history" in manifest:
        try:
            h = manifest["history"]
            history = History(
                records=tuple(EpochRecord(**r) for r in h["records"]),
                opt_state=opt_state,
                best_epoch=h.get("best_epoch"),
                stopped_early=bool(h.get("stopped_early", False)),
            )
        except (KeyError, TypeError) as e:
            raise _bad(p, f"the history cannot be restored: {e}") from e
    return Checkpoint(params=net, opt_state=opt_state, history=history)
