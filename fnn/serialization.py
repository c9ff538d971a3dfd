"""Checkpoints: ``fnn.save`` / ``fnn.load`` (kept importable from here; the code lives in
the package :mod:`fnn.io`: ``_archive`` bounded zip reading, ``_manifest`` the manifest's
schema, ``_build`` the values built from a checked file, ``checkpoint`` save and load).

A checkpoint is a NumPy ``.npz`` archive of one array per parameter and optimizer-state
leaf plus ``manifest.json``; loading never unpickles or executes anything from the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fnn._bounded_io import MAX_BYTES as MAX_BYTES
from fnn.io._archive import FORMAT as FORMAT
from fnn.io._archive import MANIFEST as MANIFEST
from fnn.io._archive import MAX_DEPTH as MAX_DEPTH
from fnn.io._archive import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from fnn.io._archive import MAX_MEMBERS as MAX_MEMBERS
from fnn.io._manifest import FORMAT_VERSION
from fnn.io.checkpoint import Checkpoint, load, save
from fnn.layers import base as _layers

__all__ = ["FORMAT_VERSION", "Checkpoint", "load", "register_layer", "save"]

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
