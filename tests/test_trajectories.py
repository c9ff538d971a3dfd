"""Training results pinned before the speed work: optimising must not change them
(beyond float rounding). Regenerate only for a deliberate change of results:
python tests/data/make_trajectories.py"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fnn import tree
from tests.data.make_trajectories import CASES, run

PINNED = np.load(Path(__file__).with_name("data") / "trajectories.npz")


@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_unchanged(name: str) -> None:
    net, h = run(name)
    f32 = CASES[name]["dtype"] == np.float32
    rtol, atol = (2e-4, 1e-5) if f32 else (1e-9, 1e-12)
    np.testing.assert_allclose(
        np.asarray(h.train_loss), PINNED[f"{name}/loss"], rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(
        np.asarray(tree.ravel(net)), PINNED[f"{name}/params"], rtol=rtol * 10, atol=atol * 10
    )
