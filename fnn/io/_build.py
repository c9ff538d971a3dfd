"""Building a checkpoint's values (network, optimizer state, History, split, generator)
from its checked manifest and archive, by name from the registries: nothing is executed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

from fnn import losses, optim, schedules, tree
from fnn._types import FloatArray
from fnn.io._archive import Archive, Malformed, Member, bad
from fnn.io._manifest import OPT_SCALARS, SPLIT_PARTS, show
from fnn.layers import base as _layers
from fnn.layout import Layout
from fnn.network import Network, from_flat
from fnn.training import EpochRecord, History, Split

TRANSFORMS: Final = optim.TRANSFORMS.as_table()
_SCHEDULES: Final = schedules.SCHEDULES.as_table()
_MASK_FIELDS: Final = set(optim.MASK_FIELDS)


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
        raise bad(path, f"malformed manifest: architecture.layers.{i} ({kind}): {e}") from e


def build_network(path: Path, manifest: dict[str, Any], ar: Archive) -> Network:
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
        raise bad(
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
        raise bad(path, f"the network cannot be built from the file: {e}") from e
    lay = net.layout
    expected_keys = {f"params/{p}" for p in lay.paths}
    if expected_keys != keys:
        raise bad(
            path,
            f"parameter arrays do not match the architecture: {sorted(keys ^ expected_keys)}",
        )
    return _read_flat(ar, "params/", net, flat)  # into the stand-ins' buffer


def _placeholder_layer(
    path: Path, i: int, cfg: dict[str, Any], ar: Archive, dtype: np.dtype[Any], flat: FloatArray
) -> Any:
    """Layer ``i`` as the file declares it, checked (its arrays' shapes and dtype against
    its config, its build, its config) but holding views of ``flat`` in place of its
    arrays: nothing of the file's arrays is read. Built from placeholders, it costs one
    copy of this layer's arrays for as long as the build takes."""
    kind = cfg["kind"]
    if kind not in _layers.LAYERS:
        raise bad(
            path,
            f"layers.{i} has unknown kind {kind!r} (register it with fnn.layers.register_layer)",
        )
    prefix = f"params/layers.{i}."
    own = {k[len(prefix) :]: k for k in ar.members if k.startswith(prefix)}
    expected = _layer_shapes(path, i, kind, cfg)
    if expected is not None and set(expected) != set(own):
        raise bad(
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
        raise bad(path, f"layers.{i} cannot be built from the file: {e}") from e
    if expected is None:
        try:
            built = json.loads(json.dumps(layer.config()))
        except (TypeError, ValueError, AttributeError) as e:
            raise bad(path, f"layers.{i} built from the file has no config: {e}") from e
        if built != cfg:
            raise bad(
                path,
                f"layers.{i} built from the file's arrays is {built}, but the manifest's "
                f"architecture says {cfg}",
            )
    lay = Layout(layer)
    return lay.build(flat[: lay.size], writable=True)


def _check_member(
    path: Path, key: str, m: Member, shape: tuple[int, ...], dtype: np.dtype[Any], needs: str
) -> None:
    """ValueError unless the archive's array ``key`` has ``shape`` and ``dtype`` (checked
    before it is read); ``needs`` names what asks for them."""
    if m.shape != shape or m.dtype != dtype:
        raise bad(
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
        if name not in TRANSFORMS:
            raise Malformed(
                f"optimizer.{i}.transform",
                f"is unknown: {show(name)} (register it with fnn.optim.register_transform)",
            )
        for k in _MASK_FIELDS & set(c):
            if c[k] not in (None, "mask"):
                raise Malformed(f"optimizer.{i}.{k}", f"must be null or 'mask', got {show(c[k])}")
            c[k] = None if c[k] is None else (lambda _p: False)  # the state holds the mask
        if isinstance(c.get("learning_rate"), dict):
            s = dict(c["learning_rate"])
            schedule = s.pop("schedule")
            if schedule not in _SCHEDULES:
                raise Malformed(
                    f"optimizer.{i}.learning_rate.schedule",
                    f"is unknown: {show(schedule)} (register it with "
                    "fnn.schedules.register_schedule)",
                )
            c["learning_rate"] = _SCHEDULES[schedule](**s)
        out.append(TRANSFORMS[name](**c))
    return optim.Optimizer(transforms=tuple(out))


def _check_opt_arrays(
    path: Path, ar: Archive, given: set[str], state: optim.OptState, part: int | None = None
) -> None:
    """ValueError unless the file's optimizer-state arrays (``given``, their paths) are
    ``state``'s, in shape and dtype. With ``part``, ``state`` is the state of transform
    number ``part`` alone (as ``states.0``), whose arrays the file must hold."""
    expected = {}
    for q, x in tree.leaves_with_paths(state):
        if q in OPT_SCALARS:
            continue
        if part is not None and (q == "states.0" or q.startswith("states.0.")):
            q = f"states.{part}" + q[len("states.0") :]
        expected[q] = np.asarray(x)
    wrong = set(expected) - given if part is not None else set(expected) ^ given
    if wrong:
        raise bad(
            path,
            "the optimizer state cannot be restored: optimizer-state arrays "
            f"{sorted(wrong)} do not match",
        )
    for q, x in expected.items():
        key = f"opt_state/{q}"
        _check_member(
            path, key, ar.members[key], x.shape, x.dtype, "the optimizer state for this network"
        )


def restore_opt_state(
    path: Path, manifest: dict[str, Any], ar: Archive, net: Network
) -> optim.OptState:
    """The optimizer state, each array checked against the state this optimizer has for
    ``net`` (shape, rank and dtype) before it is read."""
    try:
        optimizer = _optimizer_from_config(manifest["optimizer"])
    except Malformed as e:
        raise bad(path, f"malformed manifest: {e}") from e
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as e:
        raise bad(path, f"the optimizer cannot be rebuilt from the file: {e}") from e
    given = {k[len("opt_state/") :] for k in manifest["arrays"] if k.startswith("opt_state/")}
    # one transform at a time, so that a manifest declaring many transforms costs at most
    # one transform's state before the file's arrays are found not to match
    for i, t in enumerate(optimizer.transforms):
        one = optim.Optimizer(transforms=(t,)).init(net)
        _check_opt_arrays(path, ar, given, one, part=i)
    template = optimizer.init(net)
    _check_opt_arrays(path, ar, given, template)

    def take(q: str, leaf: Any) -> Any:
        if q in OPT_SCALARS:
            return leaf
        return tree.read_only(ar.read(f"opt_state/{q}"))

    restored = tree.map_with_path(take, template)
    st = manifest["opt_state"]
    return attrs.evolve(restored, step=int(st["step"]), lr_scale=float(st["lr_scale"]))


def restore_history(h: dict[str, Any], opt_state: optim.OptState | None) -> History:
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


def restore_best_params(
    path: Path, manifest: dict[str, Any], ar: Archive, net: Network
) -> Network | None:
    """The History's best parameters, each array checked against ``net``'s before it is
    read (they are parameters of the same architecture)."""
    given = {k for k in manifest["arrays"] if k.startswith("best_params/")}
    if not manifest.get("history", {}).get("best_params", False):
        if given:
            raise bad(path, f"unexpected array {sorted(given)[0]} (history.best_params is unset)")
        return None
    expected = {f"best_params/{p}": np.asarray(x) for p, x in tree.flatten(net).items()}
    if set(expected) != given:
        raise bad(
            path,
            f"best-parameter arrays do not match the architecture: {sorted(given ^ set(expected))}",
        )
    for key, x in expected.items():
        _check_member(path, key, ar.members[key], x.shape, x.dtype, "the architecture")
    return _read_flat(ar, "best_params/", net)


def _read_flat(ar: Archive, prefix: str, net: Network, flat: FloatArray | None = None) -> Network:
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


def restore_split(path: Path, manifest: dict[str, Any], ar: Archive) -> Split | None:
    """The History's validation split: two sorted, disjoint int64 index arrays that
    together are ``range(n)``, with their sizes checked before they are read."""
    given = {k for k in manifest["arrays"] if k.startswith("split/")}
    spec = manifest.get("history", {}).get("split")
    expected = {f"split/{part}" for part in SPLIT_PARTS}
    if spec is None:
        if given:
            raise bad(path, f"unexpected array {sorted(given)[0]} (history.split is unset)")
        return None
    if given != expected:
        raise bad(path, f"the split arrays do not match: {sorted(given ^ expected)}")
    n = spec["n"]
    sizes = [ar.members[k].shape[0] for k in sorted(expected)]
    if sum(sizes) != n or min(sizes) < 1:
        raise bad(
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
        raise bad(
            path,
            f"the split's rows are not two sorted, disjoint index arrays covering range({n})",
        )
    return Split(fraction=float(spec["fraction"]), train=tr, validation=va)


def restore_rng(path: Path, manifest: dict[str, Any]) -> np.random.Generator | None:
    if "rng" not in manifest:
        return None
    st = manifest["rng"]
    try:
        bit_generator = getattr(np.random, st["bit_generator"])()
        bit_generator.state = st
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise bad(path, f"the random generator cannot be restored from the file: {e}") from e
    return np.random.Generator(bit_generator)
