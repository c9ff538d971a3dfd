"""Every example runs (quick mode) and reaches what it claims; the MNIST examples run
when the real data is found ($FNN_DATA_DIR, ~/.cache/fnn, or ../shared/data as on CI)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
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


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_cnn_quick() -> None:
    out = load("mnist_cnn").main(quick=True, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] > 0.3  # 2,000 images, one epoch: far above chance (0.1)


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_resnet_quick() -> None:
    out = load("mnist_resnet").main(quick=True, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] > 0.5  # 2,000 images, 3 epochs: far above chance (0.1)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_resnet_reaches_99_4_percent_in_under_15_minutes() -> None:
    out = load("mnist_resnet").main(quick=False, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] >= 0.994
    assert out["seconds"] < 900


@pytest.mark.slow
@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_cnn_reaches_99_percent_in_under_5_minutes() -> None:
    out = load("mnist_cnn").main(quick=False, data=str(MNIST), verbose=0)
    assert out["test_accuracy"] >= 0.990
    assert out["seconds"] < 300  # about 90 s on 2 cores


def last_line_accuracy_and_seconds(proc: subprocess.CompletedProcess[str]) -> tuple[float, float]:
    """The MNIST examples' last line: ``... test accuracy 0.9871 (301.2s training)``."""
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    found = re.search(r"test accuracy ([0-9.]+) \(([0-9.]+)s training\)$", last)
    assert found is not None, last
    return float(found.group(1)), float(found.group(2))


# in processes of their own: the example sets NumPy's BLAS threads before NumPy loads
@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_lstm_quick() -> None:
    proc = run_example("mnist_lstm", "--quick", "--verbose", "0", "--data", str(MNIST))
    accuracy, _ = last_line_accuracy_and_seconds(proc)
    assert accuracy > 0.4  # 3,000 images, three epochs: far above chance (0.1)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_mnist_lstm_reaches_98_5_percent_in_under_8_minutes() -> None:
    proc = run_example("mnist_lstm", "--verbose", "0", "--data", str(MNIST), timeout=1200)
    accuracy, seconds = last_line_accuracy_and_seconds(proc)
    assert accuracy >= 0.985
    assert seconds < 480


def test_shifted_images_move_by_whole_pixels() -> None:
    X = np.zeros((50, 28, 28, 1), np.float32)
    X[:, 10:18, 10:18] = 1.0
    out = fnn.datasets.random_shifts(X, rng=np.random.default_rng(0))
    assert out.dtype == X.dtype and (X[:, 10:18, 10:18] == 1).all()  # X unchanged
    assert out.shape == X.shape and (out.sum(axis=(1, 2, 3)) == 64).all()  # nothing cut off
    rows = [int(np.flatnonzero(o.any(axis=(1, 2)))[0]) - 10 for o in out]
    assert set(rows) <= {-2, -1, 0, 1, 2} and len(set(rows)) > 1


EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))


def run_example(
    name: str, *args: str, cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_has_help_and_does_not_run_with_it(name: str, tmp_path: Path) -> None:
    proc = run_example(name, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: ")
    assert "--quick" in proc.stdout  # every example has a quick mode, and says so
    assert list(tmp_path.iterdir()) == []  # --help wrote nothing


def test_custom_layer_quick() -> None:
    # in a subprocess: the example registers its kinds, which must not leak into other tests
    proc = run_example("custom_layer", "--quick")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gradient checks passed" in out and "same predictions True" in out
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy > 0.85
    means = re.search(r"running mean \[ *(\S+) +(\S+)\], data mean \[ *(\S+) +(\S+)\]", out)
    assert means is not None
    running, data = np.array(means.groups()[:2], float), np.array(means.groups()[2:], float)
    assert np.abs(running - data).max() < 0.2  # the running mean found the shifted moons


def _definitions(source: str) -> dict[str, str]:
    """Top-level classes and functions of Python source, by name, as AST dumps."""
    return {
        node.name: ast.dump(node)
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
    }


def test_the_custom_layers_page_shows_the_checked_code() -> None:
    # the page's code is the example's, which mypy --strict checks
    page = (ROOT / "docs" / "custom-layers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    shown: dict[str, str] = {}
    for block in blocks:
        shown.update(_definitions(block))
    checked = _definitions((ROOT / "examples" / "custom_layer.py").read_text(encoding="utf-8"))
    names = ["ScaleCache", "Scale", "CenterCache", "Center", "Softsign", "LogCosh"]
    names += ["_scale_example", "_center_example"]
    for name in names:
        assert shown.get(name) == checked[name], f"{name} differs between page and example"


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


def char_transformer_lines(proc: subprocess.CompletedProcess[str]) -> tuple[float, float, str]:
    """``(val_loss, ms_per_step, sample)`` from char_transformer.py's output."""
    assert proc.returncode == 0, proc.stderr
    loss = re.search(r"^val_loss (\d+\.\d{4})$", proc.stdout, re.MULTILINE)
    ms = re.search(r"^(\d+\.\d) ms/step$", proc.stdout, re.MULTILINE)
    sample = re.search(r"^sample:\n(.+)", proc.stdout, re.MULTILINE | re.DOTALL)
    assert loss and ms and sample, proc.stdout
    return float(loss.group(1)), float(ms.group(1)), sample.group(1)


def test_char_transformer_quick_prints_val_loss_speed_and_a_sample(tmp_path: Path) -> None:
    proc = run_example("char_transformer", "--quick", "--out", str(tmp_path / "lm"), timeout=120)
    val_loss, ms, sample = char_transformer_lines(proc)
    assert val_loss < np.log(73)  # below a uniform guess over the 73 characters
    assert ms > 0
    assert sample.startswith("ROMEO:") and len(sample) > 50
    ckpt = fnn.load(tmp_path / "lm.npz")
    assert ckpt.vocab is not None and ckpt.vocab.size == 73
    ids = fnn.generate(ckpt.params, ckpt.vocab.encode("ROMEO:")[None], 5, rng=0)
    assert ckpt.vocab.decode(ids[0]).startswith("ROMEO:")


def test_char_transformer_trains_on_a_corpus_and_refuses_a_short_one(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("héllo wörld, " * 400, encoding="utf-8")
    proc = run_example("char_transformer", "--quick", "--steps", "5", "--corpus", str(corpus))
    val_loss, _, _ = char_transformer_lines(proc)
    assert val_loss < np.log(len(set("héllo wörld, "))) + 0.5
    short = tmp_path / "short.txt"
    short.write_text("x" * 40, encoding="utf-8")
    proc = run_example("char_transformer", "--quick", "--corpus", str(short))
    assert proc.returncode != 0 and "too short" in proc.stderr
    proc = run_example("char_transformer", "--heads", "3")
    assert proc.returncode != 0 and "does not divide" in proc.stderr


@pytest.mark.long
@pytest.mark.slow
def test_char_transformer_default_run_under_10_minutes() -> None:
    start = time.perf_counter()
    proc = run_example("char_transformer", timeout=1800)
    seconds = time.perf_counter() - start
    val_loss, _, _ = char_transformer_lines(proc)
    assert val_loss < 2.0  # nanoGPT's run of this setting reaches about 1.9
    assert seconds < 600
