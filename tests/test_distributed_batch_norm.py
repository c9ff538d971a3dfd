"""Data-parallel training of a batch-norm network on 2 MPI ranks equals one process:
the batch statistics are synchronised (sums all-reduced), not averaged per rank."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (extra 'mpi' installs it with MPICH)")

import fnn
from fnn.layers import BatchNorm
from tests.mpi import batch_norm_ranks

SCRIPT = Path(__file__).with_name("mpi") / "batch_norm_ranks.py"
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


def launch(out: Path, n: int = 2, kind: str = "mlp") -> subprocess.CompletedProcess[str]:
    """As tests/test_distributed.py launches its script."""
    if MPIEXEC is None:
        pytest.skip("mpiexec not found next to the Python interpreter or on PATH")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parents[2]))
    return subprocess.run(
        [
            MPIEXEC,
            "-n",
            str(n),
            "-iface",
            "lo",
            sys.executable,
            "-m",
            "mpi4py",
            str(SCRIPT),
            str(out),
            kind,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_two_ranks_train_batch_norm_like_one_process(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "dist.npz"
    proc = launch(out, kind=kind)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = fnn.load(out)
    X, y = batch_norm_ranks.data(kind)
    start = fnn.init(batch_norm_ranks.architecture(kind), rng=7)
    net, h = fnn.fit(start, fnn.sgd(0.1, momentum=0.9), X, y, **batch_norm_ranks.TRAIN)
    assert dist.params.layout.key == net.layout.key
    np.testing.assert_allclose(dist.params.flat, net.flat, rtol=1e-10, atol=1e-12)
    for got, ref in zip(dist.params.layers, net.layers, strict=True):
        if isinstance(ref, BatchNorm):
            assert isinstance(got, BatchNorm)
            # the running statistics moved, and equal the global batch's
            assert not np.allclose(ref.running_var, 1.0)
            np.testing.assert_allclose(got.running_mean, ref.running_mean, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(got.running_var, ref.running_var, rtol=1e-10, atol=1e-12)
    assert dist.history is not None
    np.testing.assert_allclose(dist.history.train_loss, h.train_loss, rtol=1e-10)
    assert dist.opt_state is not None and dist.opt_state.step == 8
