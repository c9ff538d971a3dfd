"""Checkpoints: ``fnn.save`` / ``fnn.load``, pickle-free files any program can read.

The package holds one concept per module: ``_archive`` (bounded zip reading),
``_manifest`` (the manifest's schema), ``_build`` (values built from a checked file) and
``checkpoint`` (:func:`save`, :func:`load`). ``fnn.serialization`` re-exports the same
names.

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

from fnn.io._manifest import FORMAT_VERSION
from fnn.io.checkpoint import Checkpoint, load, save

__all__ = ["FORMAT_VERSION", "Checkpoint", "load", "save"]
