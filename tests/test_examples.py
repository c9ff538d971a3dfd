"""Every example runs (quick mode) and reaches what it claims; the full MNIST example
runs when the real data is present (../shared/data/mnist, as on CI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hand_set_weights_prints_364(capsys: pytest.CaptureFixture[str]) -> None:
    out = load("hand_set_weights").main(quick=True)
    assert out["output"] == 364.0
    assert out["final_mse"] < out["first_mse"] * 1e-2  # gradient descent made progress
    assert "forward pass on [3, 5]: 364" in capsys.readouterr().out


def test_moons_quick() -> None:
    out = load("moons_mlp").main(quick=True)
    assert out["test_accuracy"] > 0.85


@pytest.mark.slow
def test_moons_full_beats_the_tutorial() -> None:
    out = load("moons_mlp").main(quick=False)
    assert out["test_accuracy"] >= 0.97 and out["fresh_accuracy"] >= 0.97


def test_linear_and_circles() -> None:
    module = load("linear_and_circles")
    assert module.single_neuron(quick=False) >= 0.97
    assert module.circles(quick=False) >= 0.98


def test_planar_tanh_quick() -> None:
    out = load("planar_tanh").main(quick=True)
    # one tanh unit cannot bend around the moons; four can
    assert out["cost_4"] < out["cost_1"]
    assert out["accuracy_4"] > out["accuracy_1"]


@pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(), reason=f"real MNIST not found at {SHARED_DATA}/mnist"
)
def test_mnist_quick() -> None:
    out = load("mnist_mlp").main(quick=True, data=str(SHARED_DATA), verbose=0)
    assert out["test_accuracy"] > 0.8  # 3,000 images, 3 epochs


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(), reason=f"real MNIST not found at {SHARED_DATA}/mnist"
)
def test_mnist_full_reaches_98_3_percent_in_under_3_minutes() -> None:
    out = load("mnist_mlp").main(quick=False, data=str(SHARED_DATA), verbose=0)
    assert out["test_accuracy"] >= 0.983
    assert out["seconds"] < 180
