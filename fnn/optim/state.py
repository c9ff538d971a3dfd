"""An optimizer (a chain of transforms) and its state; the registry of transform
classes that checkpoints rebuild optimizers from."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import attrs
import numpy as np

from fnn import tree
from fnn._registry import Registry
from fnn._types import BoolArray, FloatArray
from fnn.layout import Layout, StructureKey, describe_mismatch
from fnn.optim._arrays import map_record, sealed
from fnn.optim.base import Transform, run_on_copies
from fnn.schedules import value_at

__all__ = [
    "MASK_FIELDS",
    "TRANSFORMS",
    "OptState",
    "Optimizer",
    "check_state_fits",
    "register_transform",
    "transform_config",
]

P = TypeVar("P")
S = TypeVar("S")
"""A transform's state record class, for :meth:`OptState.transform_state`."""

# --- optimizers and their state ----------------------------------------------------


@attrs.frozen(eq=False)
class OptState:
    """An optimizer's state: a frozen tree.

    Attributes:
        step: updates made so far.
        lr_scale: factor on scheduled learning rates (set by reduce-on-plateau).
        states: one state per transform of the optimizer (flat arrays).
        trainable: flat mask of the trainable leaves, or None when all are.
        optimizer: the optimizer that made this state (static), so ``fnn.update``
            needs only the state.
    """

    step: int
    lr_scale: float
    states: tuple[Any, ...]
    trainable: BoolArray | None
    optimizer: Optimizer = attrs.field(metadata=tree.STATIC_META)
    params_key: Any = attrs.field(default=None, metadata=tree.STATIC_META, repr=False)
    """The structure key of the parameters it was made for (see :mod:`fnn.layout`)."""

    def advanced(self, step: int, states: tuple[Any, ...]) -> OptState:
        """This state at ``step`` with new transform ``states`` (no re-validation)."""
        new = object.__new__(OptState)
        put = object.__setattr__
        put(new, "step", step)
        put(new, "lr_scale", self.lr_scale)
        put(new, "states", states)
        put(new, "trainable", self.trainable)
        put(new, "optimizer", self.optimizer)
        put(new, "params_key", self.params_key)
        return new

    def transform_state(self, i: int, cls: type[S]) -> S:
        """The state of transform ``i`` (negative counts from the end), typed as ``cls``:
        ``state.transform_state(0, fnn.optim.AdamState).mu`` is a typed array where
        ``state.states[0]`` is ``Any``. A transform whose state is a tuple holding one
        ``cls`` record gives that record.

        Raises:
            TypeError: transform ``i``'s state is not (and does not hold) a ``cls``.
            IndexError: the optimizer has no transform ``i``.
        """
        n = len(self.states)
        if not -n <= i < n:
            raise IndexError(f"transform index {i} is out of range for {n} transform(s)")
        st = self.states[i]
        if isinstance(st, cls):
            return st
        held = [s for s in st if isinstance(s, cls)] if isinstance(st, tuple) else []
        if len(held) == 1:
            return held[0]
        name = type(self.optimizer.transforms[i]).__name__
        raise TypeError(
            f"states.{i % n} (of the optimizer's {name}) is a {type(st).__name__}, expected "
            f"a {cls.__name__}"
        )

    @property
    def learning_rate(self) -> float:
        """The learning rate the next update will use."""
        return self.optimizer.learning_rate_at(self.step, self.lr_scale)


def _flatten_transforms(parts: tuple[Any, ...]) -> tuple[Transform, ...]:
    out: list[Transform] = []
    for t in parts:
        if isinstance(t, Optimizer):
            out.extend(t.transforms)
        elif isinstance(t, Transform):
            out.append(t)
        else:
            raise TypeError(f"chain takes optimizers and transforms, got {type(t).__name__}")
    if not out:
        raise ValueError("an optimizer needs at least one transform")
    return tuple(out)


@attrs.frozen
class Optimizer:
    """A chain of transforms with ``init`` and ``update``."""

    transforms: tuple[Transform, ...] = attrs.field(converter=_flatten_transforms)

    def init(self, params: Any) -> OptState:
        """The initial state for ``params`` (any tree of float arrays, with at least one).

        Raises:
            TypeError: ``params`` is None or its leaves are not float arrays.
            ValueError: ``params`` is a tree with no leaves (``{}``, ``()``).
        """
        if params is None:
            raise TypeError(
                "params must be a network or a tree of float arrays (what the optimizer "
                "will update), got None"
            )
        if not tree.leaves(params):
            raise ValueError(
                f"params has no arrays to optimize: got an empty {type(params).__name__} "
                f"{params!r}; pass the network (or tree of float arrays) to update"
            )
        flat = tree.ravel(params)
        if flat.dtype.kind != "f":
            raise TypeError(f"parameters must be float arrays, got dtype {flat.dtype}")
        mask = tree.trainable_mask(params)
        trainable = None
        if not all(mask.values()):
            trainable = tree.leaf_mask(params, lambda p: mask[p])
        lay = getattr(params, "layout", None)
        return OptState(
            step=0,
            lr_scale=1.0,
            states=tuple(map_record(sealed, t.init(params, flat)) for t in self.transforms),
            trainable=None if trainable is None else sealed(trainable),
            optimizer=self,
            params_key=lay.key if isinstance(lay, Layout) else None,
        )

    def config(self) -> list[dict[str, Any]]:
        """One :func:`transform_config` per transform: what a checkpoint stores, and what
        decides whether a saved state belongs to this optimizer."""
        return [transform_config(t) for t in self.transforms]

    def learning_rate_at(self, step: int, lr_scale: float = 1.0) -> float:
        """The learning rate of update number ``step + 1`` (the first transform that has one)."""
        for t in self.transforms:
            lr = getattr(t, "learning_rate", None)
            if lr is not None:
                return value_at(lr, step) * lr_scale
        return math.nan

    def step_flat(
        self, p: FloatArray, g: FloatArray, state: OptState
    ) -> tuple[FloatArray, OptState]:
        """The flat parameter change for gradient ``g`` at parameters ``p``, and the new
        state; :meth:`update` on flat vectors. The chain runs through
        :class:`ChainRunner` on private copies (``fnn.fit`` runs it on its own buffers)."""
        frozen = None if state.trainable is None else ~state.trainable
        t = state.step + 1
        u, states = run_on_copies(
            self.transforms, state.states, p, None, g, frozen, [], t, state.lr_scale
        )
        return u, state.advanced(t, states)

    def update(self, params: P, grads: P, state: OptState) -> tuple[P, OptState]:
        """New parameters and state after one step; ``params`` and ``state`` are unchanged.

        ``grads`` has the type and structure of ``params`` (checked: ValueError naming
        the first differing path). Non-trainable leaves (running statistics) take the
        values ``grads`` holds for them (the new state ``backward`` computed).
        """
        if not isinstance(state, OptState):
            raise TypeError(f"state must be an fnn.optim.OptState, got {type(state).__name__}")
        lay = getattr(params, "layout", None)
        if isinstance(lay, Layout):  # a network: its flat buffer, no tree walked
            glay = getattr(grads, "layout", None)
            if type(grads) is not type(params) or not (
                glay is lay or (isinstance(glay, Layout) and glay.key == lay.key)
            ):
                raise ValueError(describe_mismatch(params, grads, "grads"))
            p_flat: FloatArray = params.flat  # type: ignore[attr-defined]
            check_state_fits(state, p_flat, lay.key)
            new, new_state = self._run(p_flat, grads.flat, state, lay.state_slices)  # type: ignore[attr-defined]
            return params.with_flat(new), new_state  # type: ignore[attr-defined]
        if not tree.same_structure(params, grads):
            raise ValueError(describe_mismatch(params, grads, "grads"))
        p = tree.ravel(params)
        g = tree.ravel(grads)
        if p.shape != g.shape:
            raise ValueError(describe_mismatch(params, grads, "grads"))
        check_state_fits(state, p)
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
        mask = tree.trainable_mask(params)
        # as for a network: state leaves hold new statistics, not gradients, so no
        # transform (nor a global norm) sees them, and the new state is taken over
        keep = [] if all(mask.values()) else _runs(~tree.leaf_mask(params, lambda q: mask[q]))
        new, new_state = self._run(p, g, state, keep)
        return tree.unravel(params, new), new_state

    def update_flat(
        self,
        params: P,
        g: FloatArray,
        state: OptState,
        *,
        check: bool = False,
        owned: bool = False,
    ) -> tuple[P, OptState]:
        """:meth:`update` for a network given its gradient as one flat vector ``g`` in
        ``params.layout`` order (the state segments holding the new state), the state
        already checked to fit. ``g`` is not written, unless ``owned`` (a private buffer
        the caller drops: the chain then runs in it, with no copy). ``check``: raise
        :class:`FloatingPointError` (nothing updated) when the gradient or the update is
        not finite."""
        lay: Layout = params.layout  # type: ignore[attr-defined]
        new, new_state = self._run(
            params.flat,  # type: ignore[attr-defined]
            g,
            state,
            lay.state_slices,
            check=check,
            owned=owned,
        )
        return params.with_flat(new), new_state  # type: ignore[attr-defined]

    def _run(
        self,
        p: FloatArray,
        g: FloatArray,
        state: OptState,
        keep: list[tuple[int, int]],
        *,
        check: bool = False,
        owned: bool = False,
    ) -> tuple[FloatArray, OptState]:
        """New flat parameters from ``p`` and the gradient ``g``, and the new state: the
        chain run on private copies of the state and of ``g`` (in ``g`` if ``owned``)."""
        new = np.empty_like(p)
        frozen = None if state.trainable is None else ~state.trainable
        t = state.step + 1
        _, states = run_on_copies(
            self.transforms, state.states, p, new, g, frozen, keep, t, state.lr_scale, check, owned
        )
        return new, state.advanced(t, states)


def _runs(mask: BoolArray) -> list[tuple[int, int]]:
    """``(lo, hi)`` of the runs of True in a flat mask."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2], strict=True)]


def check_state_fits(state: OptState, p: FloatArray, params_key: Any = None) -> None:
    """ValueError when the state was made for another network (``params_key``, the
    parameters' layout key, given) or its flat arrays do not fit parameters ``p``."""
    if params_key is not None and state.params_key is params_key:
        return  # made for parameters of this very layout: nothing to compare
    known = params_key is not None and state.params_key is not None
    if known and state.params_key is not params_key and state.params_key != params_key:
        raise ValueError(
            "opt_state was made for another network: "
            + _key_difference(state.params_key, params_key)
        )
    for i, st in enumerate(state.states):
        for leaf in tree.leaves(st):
            if isinstance(leaf, np.ndarray) and leaf.ndim == 1 and leaf.shape != p.shape:
                raise ValueError(
                    f"opt_state was made for parameters of {leaf.size} elements "
                    f"(states.{i}), but these have {p.size}"
                )
            if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f" and leaf.dtype != p.dtype:
                raise ValueError(
                    f"opt_state has dtype {leaf.dtype} (states.{i}), but the parameters "
                    f"have {p.dtype}"
                )


def _key_difference(made_for: Any, got: Any) -> str:
    """Where two layout keys differ, by path."""
    if isinstance(made_for, StructureKey) and isinstance(got, StructureKey):
        return made_for.difference(got)
    return "its structure differs"


TRANSFORMS: Registry[type[Any]] = Registry("optimizer transform")
"""Transform classes by class name: what checkpoints rebuild optimizers from."""


def register_transform(cls: type[Any]) -> type[Any]:
    """Register a transform class (an attrs class; its fields are its configuration) so
    checkpoints holding it load. Usable as a class decorator."""
    TRANSFORMS.register(cls.__name__, cls)
    return cls


MASK_FIELDS = ("decay_mask", "mask")
"""Transform fields that hold masks (recorded in configs only as set or not)."""


def _lr_config(lr: Any) -> Any:
    if isinstance(lr, int | float):
        return float(lr)
    if attrs.has(type(lr)):
        return {"schedule": type(lr).__name__, **attrs.asdict(lr)}
    raise ValueError(f"the learning-rate schedule {type(lr).__name__} has no config")


def transform_config(t: Any) -> dict[str, Any]:
    """A JSON-friendly description of a built-in transform: its class and fields. Masks
    are recorded only as set or not (the resolved mask lives in the optimizer state)."""
    if not attrs.has(type(t)):
        raise ValueError(f"the transform {type(t).__name__} has no config")
    cfg: dict[str, Any] = {"transform": type(t).__name__}
    for f in attrs.fields(type(t)):
        v = getattr(t, f.name)
        if f.name in MASK_FIELDS:
            cfg[f.name] = None if v is None else "mask"
        elif f.name == "learning_rate":
            if v is not None:  # (a coupled weight decay's: recorded only when set)
                cfg[f.name] = _lr_config(v)
        else:
            cfg[f.name] = v
    return cfg
