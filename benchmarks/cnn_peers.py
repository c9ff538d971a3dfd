"""What the two benchmarks of the MNIST convolutional network share
(``cnn_speed.py`` and ``predict_speed.py``): the network, as fnn's architecture from
``examples/mnist_cnn.py`` and as the same layers in PyTorch, and how a peer is timed
in a fresh process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def fnn_architecture() -> Any:
    """``examples/mnist_cnn.py``'s network (conv 32 3x3, batch norm, ReLU, max-pool 2,
    conv 64 3x3, batch norm, ReLU, max-pool 2, flatten, dense 128 ReLU, dense 10)."""
    sys.path.insert(0, str(ROOT / "examples"))
    from mnist_cnn import architecture

    return architecture()


def torch_cnn(channels_last: bool) -> Any:
    """The same network in PyTorch (NCHW, or channels-last memory format), on 2 threads,
    initialised from seed 0."""
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_torch(X: Any, channels_last: bool) -> Any:
    """Images (n, h, w, c) as a PyTorch NCHW tensor (channels-last in memory if asked)."""
    import numpy as np
    import torch

    Xt = torch.tensor(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    return Xt.contiguous(memory_format=torch.channels_last) if channels_last else Xt


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run``, after one warm-up call."""
    run()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return out


def run_worker(
    script: str, args: list[str], root: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script --worker ...args`` in a fresh process with fnn imported from
    ``root``, and return the JSON object its last line prints."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, script, "--worker", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
