"""Every example runs (quick mode) and reaches what it claims; the MNIST examples run
when the real data is found ($FNN_DATA_DIR, ~/.cache/fnn, or ../shared/data as on CI)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fnn
from tests.mnist_data import HOW_TO_GET, mnist_folder

ROOT = Path(__file__).resolve().parents[1]
MNIST = mnist_folder()


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


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_quick() -> None:
    out = load("mnist_mlp").main(quick=True, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] > 0.8  # 3,000 images, 3 epochs


@pytest.mark.slow
@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_full_reaches_98_5_percent_in_under_2_minutes() -> None:
    out = load("mnist_mlp").main(quick=False, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] >= 0.985
    assert out["seconds"] < 120  # about 45 s on 2 cores


EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))


def run_example(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_has_help_and_does_not_run_with_it(name: str, tmp_path: Path) -> None:
    proc = run_example(name, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: ")
    assert "--quick" in proc.stdout  # every example has a quick mode, and says so
    assert list(tmp_path.iterdir()) == []  # --help wrote nothing


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        (
            "mnist_mlp",
            ["--epochs", "0"],
            "argument --epochs: expected a whole number >= 1, got '0'",
        ),
        ("mnist_mlp", ["--verbose", "7"], "argument --verbose: invalid choice: 7"),
        ("mnist_distributed", ["--epochs", "-1"], "argument --epochs: expected a whole number"),
        ("planar_tanh", ["--quik"], "unrecognized arguments: --quik"),
        ("hand_set_weights", ["extra"], "unrecognized arguments: extra"),
    ],
)
def test_bad_option_values_get_a_one_line_error(name: str, args: list[str], message: str) -> None:
    proc = run_example(name, *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.splitlines()[-1]


def test_mnist_mlp_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    proc = run_example("mnist_mlp", "--data", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "python -m fnn demo --download" in proc.stderr


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_mlp_writes_only_where_told(tmp_path: Path) -> None:
    out = tmp_path / "models" / "mnist"
    (tmp_path / "models").mkdir()
    proc = run_example(
        "mnist_mlp",
        "--quick",
        "--epochs",
        "1",
        "--verbose",
        "0",
        "--data",
        str(MNIST),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"saved the network to {out}.npz" in proc.stdout
    assert [p.name for p in tmp_path.rglob("*")] == ["models", "mnist.npz"]
    first = fnn.load(f"{out}.npz").params.layers[0]
    assert isinstance(first, fnn.Dense) and first.W.shape == (784, 512)


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_distributed_writes_nothing_unless_told(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (extra 'mpi' installs it)")
    proc = run_example(
        "mnist_distributed", "--quick", "--epochs", "1", "--data", str(MNIST), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and list(tmp_path.iterdir()) == []
