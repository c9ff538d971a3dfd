"""`python -m fnn`: --version, --help, the demo's runs and messages, its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import fnn
from fnn.__main__ import main
from fnn.demo import run
from tests.mnist_data import HOW_TO_GET, mnist_folder

ROOT = Path(__file__).resolve().parents[1]
MNIST = mnist_folder()


def cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m fnn ARGS` as a newcomer would: no FNN_DATA_DIR, an empty cache."""
    environ = {k: v for k, v in os.environ.items() if k not in ("FNN_DATA_DIR", "XDG_CACHE_HOME")}
    environ.update(HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "fnn", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=environ,
    )


def test_version_and_help(tmp_path: Path) -> None:
    version = cli("--version", home=tmp_path)
    assert version.returncode == 0 and version.stdout == f"fnn {fnn.__version__}\n"
    top = cli("--help", home=tmp_path)
    assert top.returncode == 0 and "demo" in top.stdout and "--version" in top.stdout
    demo = cli("demo", "--help", home=tmp_path)
    assert demo.returncode == 0
    for option in ("--data", "--download", "--mnist-epochs", "--verbose"):
        assert option in demo.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--mnist-epochs", "0"], "argument --mnist-epochs: expected a whole number >= 1"),
        (["demo", "--mnist-epochs", "two"], "argument --mnist-epochs: expected a whole number"),
        (["demo", "--verbose", "3"], "argument --verbose: invalid choice: 3"),
        (["demo", "--epochs", "3"], "unrecognized arguments: --epochs 3"),
        ([], "the following arguments are required: COMMAND"),
        (["train"], "invalid choice: 'train'"),
    ],
)
def test_bad_options_get_a_one_line_error_not_a_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err.splitlines()[-1]


def test_demo_without_mnist_trains_moons_and_digits_and_says_how_to_get_mnist(
    tmp_path: Path,
) -> None:
    proc = cli("demo", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    moons = next(line for line in out if line.startswith("moons: test accuracy"))
    digits = next(line for line in out if line.startswith("digits: test accuracy"))
    assert float(moons.split()[3]) >= 0.95 and moons.endswith("s")  # accuracy, then time
    assert float(digits.split()[3]) >= 0.95 and "on 450 held-out images in" in digits
    hint = next(line for line in out if line.startswith("mnist: not found in"))
    assert str(tmp_path / ".cache" / "fnn") in hint
    assert "python -m fnn demo --download" in hint and "FNN_DATA_DIR" in hint
    assert out[-1].startswith("next: ")
    assert not list(tmp_path.rglob("*"))  # nothing written without --download


def test_demo_with_a_missing_data_folder_fails_in_one_line(tmp_path: Path) -> None:
    proc = cli("demo", "--data", str(tmp_path / "nope"), "--verbose", "0", home=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"mnist: no MNIST files in {tmp_path / 'nope'}; ")


def test_demo_download_offline_fails_in_one_line_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    def offline(url: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(url))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    status = main(["demo", "--download", "--verbose", "0"])
    assert status == 1
    assert [u.split("/")[2] for u in calls] == [
        "ossci-datasets.s3.amazonaws.com",
        "storage.googleapis.com",
    ]  # every mirror was tried, in order, then it stopped
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("mnist: download failed, are you offline? could not download ")
    assert "Temporary failure in name resolution" in err[-1]
    assert [p.name for p in (tmp_path / "fnn").iterdir()] == []  # no partial file left


def test_demo_arguments_are_checked_in_python_too() -> None:
    with pytest.raises(ValueError, match="mnist_epochs must be an int >= 1, got 0"):
        run(mnist_epochs=0)


@pytest.mark.skipif(MNIST is None, reason=HOW_TO_GET)
def test_demo_trains_on_mnist_when_found(tmp_path: Path) -> None:
    proc = cli("demo", "--mnist-epochs", "1", home=tmp_path, FNN_DATA_DIR=str(MNIST))
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("mnist: test accuracy"))
    assert float(line.split()[3]) > 0.9  # one epoch
    # off a terminal, verbose=1 logs one line per epoch of the MNIST run
    assert next(x for x in proc.stderr.splitlines() if x.startswith("epoch ")).startswith(
        "epoch 1/1  loss "
    )
