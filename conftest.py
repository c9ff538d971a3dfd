"""Every Python block of README.md and docs/ runs as a test (Sybil), as written.

The blocks of one page run in order in one namespace, so a block may use the names an
earlier block of its page defined; a page must otherwise be complete (its imports, its
data). They run as the page pasted into a file would (tests/doc_examples.py): in a fresh
``__main__`` module of their own, compiled without this file's ``from __future__``
imports (a page that needs one says so in its first block). Each page runs in a fresh
temporary folder, so files it writes land there.

A value the page states in a comment after an expression is asserted, to the precision
written: ``fnn.predict(net, [[3, 5]])  # array([[364.]])`` checks that the result is
[[364.]] to within 0.5, ``accuracy(...)  # 0.975`` that it rounds to 0.975. Comments that
are not a number, a list of numbers or ``array(...)`` of them are prose and not checked.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

import fnn
from tests.doc_examples import evaluate
from tests.mnist_data import HOW_TO_GET, mnist_folder

ROOT = Path(__file__).resolve().parent

# The pages that are run (every page of the docs).
PAGES = ["README.md", "docs/*.md", "docs/tutorials/*.md"]
NOT_YET_COLLECTED: list[str] = []  # every page is collected

# Registries a page may add to (docs/custom-layers.md registers its own kinds): each page's
# registrations are undone when it ends, so they never leak into other tests.
REGISTRIES: tuple[Any, ...] = (fnn.layers.LAYERS, fnn.activations.ACTIVATIONS, fnn.losses.LOSSES)

# pages that need an optional extra (skipped without it) or take minutes (slow lane)
NEEDS_MODULE: dict[str, str | tuple[str, ...]] = {
    "docs/sklearn.md": "sklearn",
    "docs/distributed.md": "mpi4py",
    "docs/onnx.md": ("onnx", "onnxruntime", "torch"),  # extras 'onnx' and 'bench'
}
NEEDS_MNIST = {
    "docs/tutorials/mnist.md",
    "docs/tutorials/mnist-cnn.md",
    "docs/tutorials/mnist-lstm.md",
    "docs/tutorials/mnist-resnet.md",
}
SLOW = {"docs/tutorials/mnist.md"}


def setup(namespace: dict[str, Any]) -> None:
    """Run the page in a fresh folder; point FNN_DATA_DIR at MNIST when it is found."""
    namespace["_previous"] = (Path.cwd(), os.environ.get("FNN_DATA_DIR"))
    namespace["_registered"] = [dict(r.items()) for r in REGISTRIES]
    namespace["_folder"] = folder = tempfile.mkdtemp(prefix="fnn-docs-")
    mnist = mnist_folder()
    if mnist is not None:
        os.environ["FNN_DATA_DIR"] = str(mnist)
    os.chdir(folder)


def teardown(namespace: dict[str, Any]) -> None:
    cwd, data_dir = namespace.pop("_previous")
    os.chdir(cwd)
    if data_dir is None:
        os.environ.pop("FNN_DATA_DIR", None)
    else:
        os.environ["FNN_DATA_DIR"] = data_dir
    shutil.rmtree(namespace.pop("_folder"), ignore_errors=True)
    for registry, before in zip(REGISTRIES, namespace.pop("_registered"), strict=True):
        for name, item in registry.items():
            if before.get(name) is not item:
                registry.unregister(name)
        for name, item in before.items():
            if name not in registry:
                registry.register(name, item)


pytest_collect_file = Sybil(
    parsers=[CodeBlockParser(language="python", evaluator=evaluate)],
    patterns=PAGES,
    excludes=NOT_YET_COLLECTED,
    setup=setup,
    teardown=teardown,
).pytest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the pages that need an extra, MNIST, or minutes."""
    for item in items:
        page = item.path.relative_to(ROOT).as_posix() if item.path.is_relative_to(ROOT) else ""
        needs = NEEDS_MODULE.get(page, ())
        for module in (needs,) if isinstance(needs, str) else needs:
            if importlib.util.find_spec(module) is None:
                item.add_marker(pytest.mark.skip(reason=f"{page} needs {module} (its extra)"))
                break
        if page in NEEDS_MNIST and mnist_folder() is None:
            item.add_marker(pytest.mark.skip(reason=f"{page} {HOW_TO_GET}"))
        if page in SLOW:
            item.add_marker(pytest.mark.slow)
