"""Plots render to real PNG files with a non-interactive figure (no display)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (extra 'plot')")

import matplotlib.image

import fnn
from fnn import plot


def is_png(path: Path, min_side: int = 100) -> bool:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    img = matplotlib.image.imread(path)
    return bool(img.shape[0] >= min_side and img.shape[1] >= min_side and img.std() > 0)


def test_training_curves_and_decision_boundary(tmp_path: Path) -> None:
    X, y = fnn.datasets.make_moons(200, noise=0.2, rng=0)
    net = fnn.init(fnn.mlp([2, 8, 1], output="sigmoid"), rng=0)
    net, h = fnn.fit(
        net,
        fnn.adam(1e-2),
        X,
        y,
        epochs=5,
        rng=0,
        validation_split=0.2,
        metrics=["accuracy"],
        verbose=0,
    )
    fig = plot.training_curves(h, path=tmp_path / "curves.png")
    assert len(fig.axes) == 2 and is_png(tmp_path / "curves.png")
    fig = plot.decision_boundary(net, X, y, resolution=50, path=tmp_path / "boundary.png")
    assert is_png(tmp_path / "boundary.png")
    soft = fnn.init(fnn.mlp([2, 4, 3], output="softmax"), rng=0)
    plot.decision_boundary(soft, X, y, resolution=30, path=tmp_path / "three.png")
    assert is_png(tmp_path / "three.png")
    with pytest.raises(ValueError, match="needs 2-D inputs and a 2-input network"):
        plot.decision_boundary(fnn.init(fnn.mlp([3, 1]), rng=0), np.ones((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="non-empty fnn.History"):
        plot.training_curves(fnn.History())


def test_examples_save_figures_when_asked(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    for script, figures in (
        ("moons_mlp.py", ["moons_boundary.png", "moons_curves.png"]),
        ("linear_and_circles.py", ["circles_boundary.png"]),
    ):
        subprocess.run(
            [sys.executable, str(root / "examples" / script), "--quick", "--plots", str(tmp_path)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert all(is_png(tmp_path / f) for f in figures), script


def test_import_fnn_does_not_import_optional_dependencies() -> None:
    code = "import sys, fnn; bad = [m for m in ('matplotlib', 'sklearn', 'mpi4py', 'torch') if m in sys.modules]; print(bad)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
