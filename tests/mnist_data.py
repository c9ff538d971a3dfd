"""Where the tests find the real MNIST, and what a skip says when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

from fnn.datasets import mnist

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

HOW_TO_GET = (
    "needs the real MNIST: run `python -m fnn demo --download` (fetches it into "
    "~/.cache/fnn), or set FNN_DATA_DIR to a folder holding the IDX files"
)


def mnist_folder() -> Path | None:
    """A folder from which ``load_mnist`` reads all four files: ``$FNN_DATA_DIR``, the
    user cache, or the shared copy beside the repository (as on CI); None if none has."""
    env = os.environ.get("FNN_DATA_DIR")
    for folder in (Path(env) if env else None, mnist.default_cache_dir(), SHARED_DATA):
        if folder is not None and all(
            any(
                d.joinpath(n + ext).is_file()
                for d in (folder, folder / "mnist")
                for ext in ("", ".gz")
            )
            for n in mnist.FILES.values()
        ):
            return folder
    return None
