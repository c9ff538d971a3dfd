"""Optional modules are attributes of fnn, loaded on first access (PEP 562), and
`import fnn` imports none of their dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fnn

ROOT = Path(__file__).resolve().parents[1]
SKLEARN_REASON = "scikit-learn is not installed (extra 'sklearn'; 'test' installs it too)"


def python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return proc.stdout.strip()


def test_import_fnn_imports_no_optional_dependency() -> None:
    code = (
        "import sys, fnn\n"
        "heavy = ['sklearn', 'matplotlib', 'mpi4py', 'torch', 'scipy', 'pandas', 'onnx',\n"
        "         'onnxruntime', 'fnn.sklearn', 'fnn.plot', 'fnn.distributed', 'fnn.onnx']\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert python(code) == "[]"


def test_sklearn_estimator_after_a_plain_import_fnn() -> None:
    pytest.importorskip("sklearn", reason=SKLEARN_REASON)
    code = (
        "import numpy as np, fnn\n"
        "X, y = fnn.datasets.make_moons(200, noise=0.1, rng=0)\n"
        "est = fnn.sklearn.FNNClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=0)\n"
        "print(est.fit(X, y).predict(X[:3]).shape, type(est.network_).__name__)"
    )
    assert python(code) == "(3,) Network"


def test_plot_after_a_plain_import_fnn_loads_matplotlib_only_when_drawing() -> None:
    pytest.importorskip(
        "matplotlib", reason="matplotlib is not installed (extra 'plot'; 'test' installs it too)"
    )
    code = (
        "import sys, fnn\n"
        "f = fnn.plot.training_curves\n"
        "print('matplotlib' in sys.modules, callable(f))"
    )
    assert python(code) == "False True"


@pytest.mark.parametrize("name", ["distributed", "onnx", "plot", "sklearn"])
def test_lazy_attribute_is_the_submodule_and_listed_by_dir(name: str) -> None:
    if name == "sklearn":
        pytest.importorskip("sklearn", reason=SKLEARN_REASON)
    if name == "onnx":
        pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
    module = getattr(fnn, name)
    assert module is sys.modules[f"fnn.{name}"] and module.__name__ == f"fnn.{name}"
    assert name in dir(fnn)


def test_unknown_attribute_still_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'fnn' has no attribute 'sklaern'"):
        _ = fnn.sklaern  # type: ignore[attr-defined]
    assert not hasattr(fnn, "onnx_nope")


def test_star_import_does_not_import_optional_modules() -> None:
    code = "import sys\nfrom fnn import *\nprint('fnn.sklearn' in sys.modules, 'sklearn' in sys.modules)"
    assert python(code) == "False False"
