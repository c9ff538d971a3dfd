"""The scripts the MPI tests run under mpiexec, and the one way they launch them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
"""MPICH's launcher: the one next to the interpreter (extra 'mpi'), else the one on PATH."""


def launch(script: ModuleType, *args: str | Path, n: int = 2) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (a module of this package) on ``n`` ranks over loopback with ``args``;
    skip the test when there is no mpiexec."""
    if MPIEXEC is None:
        pytest.skip("mpiexec not found next to the Python interpreter or on PATH")
    assert script.__file__ is not None
    path = Path(script.__file__)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(path.parents[2]))
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
            str(path),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
