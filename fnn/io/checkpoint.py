"""Saving and loading checkpoints: :func:`save` and :func:`load`."""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from fnn import optim, tree
from fnn._atomic import write_atomically
from fnn._bounded_io import MAX_BYTES, check_max_bytes
from fnn.datasets.text import CharVocab
from fnn.io._archive import FORMAT, MANIFEST, Archive, Malformed, bad
from fnn.io._build import (
    TRANSFORMS,
    build_network,
    restore_best_params,
    restore_history,
    restore_opt_state,
    restore_rng,
    restore_split,
)
from fnn.io._manifest import OPT_SCALARS, RNG_STATES, check_manifest, check_version
from fnn.io._migrate import migrate_optimizer
from fnn.layout import describe_mismatch
from fnn.losses import LOSSES, Loss
from fnn.network import Network
from fnn.schedules import SCHEDULES
from fnn.training import History, check_best_params

__all__ = ["Checkpoint", "load", "save"]


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
        vocab: the vocabulary of a language model, if one was saved with it (the
            ``vocab`` of :func:`save`), else None.
    """

    params: Network
    opt_state: optim.OptState | None
    history: History | None
    rng: np.random.Generator | None = None
    vocab: CharVocab | None = None


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
    if state.get("bit_generator") not in RNG_STATES:
        raise ValueError(
            f"cannot save the state of a {type(rng.bit_generator).__name__} generator: "
            f"only {', '.join(RNG_STATES)} (np.random.default_rng's) states are saved"
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


def _loads_as_another(table: Any, name: str, cls: type[Any]) -> bool:
    return name in table and table[name] is not cls


def _check_registered(loss: Loss, optimizer: optim.Optimizer | None) -> None:
    """ValueError when :func:`load` would rebuild the loss, a transform or a
    learning-rate schedule as another kind: its name registered to another class (a
    subclass that keeps its parent's name). A name not registered at all is saved:
    :func:`load` says how to register it. Transforms must be registered, and a schedule
    must be a class (a function has no config)."""
    name = loss.config()["name"]
    if _loads_as_another(LOSSES, name, type(loss)):
        raise ValueError(
            f"cannot save the loss {type(loss).__name__}: its name {name!r} is registered "
            f"to {LOSSES[name].__name__}, which the file would load as; give it its own "
            "name and register it with fnn.losses.register"
        )
    for t in () if optimizer is None else optimizer.transforms:
        cls = type(t)
        if cls.__name__ not in TRANSFORMS or TRANSFORMS[cls.__name__] is not cls:
            raise ValueError(
                f"cannot save the optimizer transform {cls.__name__}: it is not registered; "
                "register it with fnn.optim.register_transform"
            )
        lr = getattr(t, "learning_rate", None)
        if not callable(lr):
            continue
        kind = type(lr)
        if not attrs.has(kind) or _loads_as_another(SCHEDULES, kind.__name__, kind):
            raise ValueError(
                f"cannot save the learning-rate schedule {lr!r} of {cls.__name__}: only "
                "schedule classes registered under their class name are saved; make it an "
                "attrs class and register it with fnn.schedules.register_schedule"
            )


def _oldest_version(
    opt_state: optim.OptState | None, history: History | None, rng_state: Any
) -> int:
    """The oldest format version that holds what the file will: 3 for decoupled weight
    decay (``fnn.adamw``'s), 2 for a generator state, a validation split or best
    parameters, 1 otherwise (files an older fnn reads as they are)."""
    transforms = () if opt_state is None else opt_state.optimizer.transforms
    if any(
        isinstance(t, optim.AddDecayedWeights) and t.learning_rate is not None for t in transforms
    ):
        return 3
    if rng_state is not None or (
        history is not None and (history.split is not None or history.best_params is not None)
    ):
        return 2
    return 1


def save(
    path: str | os.PathLike[str],
    params: Network,
    *,
    opt_state: optim.OptState | None = None,
    history: History | None = None,
    rng: np.random.Generator | None = None,
    vocab: CharVocab | None = None,
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
        vocab: a language model's vocabulary (:func:`fnn.datasets.char_vocab`), kept in
            the manifest as ``{"kind": "char_vocab", "chars": ...}`` and given back as
            :attr:`Checkpoint.vocab` (an fnn that predates it loads the file and
            ignores it).

    Returns:
        The path written.
    """
    if not isinstance(params, Network):
        raise TypeError(f"params must be an fnn.Network, got {type(params).__name__}")
    if opt_state is not None and not isinstance(opt_state, optim.OptState):
        raise TypeError(f"opt_state must be an fnn.optim.OptState, got {type(opt_state).__name__}")
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be an fnn.History, got {type(history).__name__}")
    if vocab is not None and not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be an fnn.datasets.CharVocab, got {type(vocab).__name__}")
    _check_registered(params.loss, None if opt_state is None else opt_state.optimizer)
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
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": _oldest_version(opt_state, history, rng_state),
        "dtype": str(params.dtype),
        "architecture": {
            "loss": params.loss.config(),
            "input_shape": list(params.input_shape or ()),
            "layers": [layer.config() for layer in params.layers],
        },
    }
    if opt_state is not None:
        manifest["optimizer"] = opt_state.optimizer.config()
        manifest["opt_state"] = {"step": opt_state.step, "lr_scale": opt_state.lr_scale}
        for p, x in tree.leaves_with_paths(opt_state):
            if p in OPT_SCALARS:
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
    if vocab is not None:
        manifest["vocab"] = vocab.config()
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
    }
    blob = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)

    payload: dict[str, Any] = {MANIFEST: blob, **arrays}
    write_atomically(target, lambda f: np.savez(f, **payload))
    return target


def _load(path: Path, ar: Archive) -> Checkpoint:
    manifest = ar.manifest()
    check_version(path, manifest)
    try:
        check_manifest(manifest)
    except Malformed as e:
        raise bad(path, f"malformed manifest: {e}") from e
    declared: dict[str, Any] = manifest["arrays"]
    names = set(ar.members) - {MANIFEST}
    if set(declared) != names:
        missing, extra = sorted(set(declared) - names), sorted(names - set(declared))
        raise bad(
            path, f"the manifest does not match the arrays (missing {missing}, extra {extra})"
        )
    for name in sorted(names):
        m, spec = ar.members[name], declared[name]
        if list(m.shape) != spec["shape"] or str(m.dtype) != spec["dtype"]:
            raise bad(
                path,
                f"array {name} has shape {list(m.shape)} and dtype {m.dtype}, but the manifest "
                f"says {spec['shape']} and {spec['dtype']}",
            )
        if not (
            name.startswith("params/")
            or (name.startswith("opt_state/") and "optimizer" in manifest)
            or (name.startswith(("best_params/", "split/")) and "history" in manifest)
        ):
            raise bad(path, f"unexpected array {name} (neither a parameter nor optimizer state)")
    if "optimizer" in manifest and manifest["version"] < 3:
        try:
            migrate_optimizer(manifest, ar.members)  # weight decay as its own transform
        except Malformed as e:
            raise bad(path, f"malformed manifest: {e}") from e
    net = build_network(path, manifest, ar)
    opt_state = restore_opt_state(path, manifest, ar, net) if "optimizer" in manifest else None
    history = None
    if "history" in manifest:
        history = attrs.evolve(
            restore_history(manifest["history"], opt_state),
            best_params=restore_best_params(path, manifest, ar, net),
            split=restore_split(path, manifest, ar),
        )
    rng = restore_rng(path, manifest)
    vocab = None
    if "vocab" in manifest:
        try:
            vocab = CharVocab.from_config(manifest["vocab"])
        except (TypeError, ValueError) as e:
            raise bad(path, f"malformed manifest: vocab: {e}") from e
    return Checkpoint(params=net, opt_state=opt_state, history=history, rng=rng, vocab=vocab)


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
        raise bad(p, "corrupted or truncated checkpoint (not a zip archive)")
    try:
        with Archive(p, max_bytes) as ar:
            return _load(p, ar)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error) as e:
        raise bad(p, f"corrupted or truncated checkpoint ({e})") from e
    except OSError as e:
        if isinstance(e, PermissionError | IsADirectoryError | FileNotFoundError):
            raise
        raise bad(p, f"corrupted or truncated checkpoint ({e})") from e
