"""Data-parallel training on 2 MPI ranks over loopback equals the serial run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (extra 'mpi' installs it with MPICH)")

import fnn
from tests.mpi import launch, two_ranks


def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    out = tmp_path / "dist.npz"
    proc = launch(two_ranks, "train", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = fnn.load(out)
    # the serial run: rank 0's initial network, the same batch of 25, seed and weights
    X, y, w = two_ranks.data()
    net, h = fnn.fit(
        fnn.init(two_ranks.architecture(), rng=7),
        fnn.adamw(1e-2),
        X,
        y,
        sample_weight=w,
        **two_ranks.TRAIN,
    )
    assert fnn.tree.allclose(dist.params, net, rtol=1e-9, atol=1e-12)
    assert dist.history is not None
    np.testing.assert_allclose(dist.history.train_loss, h.train_loss, rtol=1e-9)
    assert dist.opt_state is not None and dist.opt_state.step == h.opt_state.step


def test_two_ranks_equal_one_process_on_per_position_targets(tmp_path: Path) -> None:
    """A token network: each shard's gradient is scaled by its share of the global batch's
    counted (weighted) positions, a shard with none counted adds nothing."""
    out = tmp_path / "seq.npz"
    proc = launch(two_ranks, "sequence", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = fnn.load(out)
    X, y, w = two_ranks.sequence_data()
    net, h = fnn.fit(
        two_ranks.sequence_network(),
        fnn.adamw(1e-2),
        X,
        y,
        sample_weight=w,
        **two_ranks.SEQUENCE_TRAIN,
    )
    assert fnn.tree.allclose(dist.params, net, rtol=1e-9, atol=1e-12)
    assert not fnn.tree.allclose(dist.params, two_ranks.sequence_network(), rtol=1e-3, atol=0)
    assert dist.history is not None
    np.testing.assert_allclose(dist.history.train_loss, h.train_loss, rtol=1e-9)


def test_a_data_parallel_run_resumed_by_a_new_launch_equals_the_uninterrupted_one(
    tmp_path: Path,
) -> None:
    full, resumed = tmp_path / "full.npz", tmp_path / "resumed.npz"
    proc = launch(two_ranks, "full", full)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "resumed.npz.at2.npz").write_bytes((tmp_path / "full.npz.at2.npz").read_bytes())
    proc = launch(two_ranks, "resume", resumed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    a, b = fnn.load(full), fnn.load(resumed)
    assert a.history is not None and b.history is not None
    assert fnn.tree.allclose(a.params, b.params, rtol=0, atol=0)
    assert a.history.epochs == b.history.epochs == [1, 2, 3, 4]
    assert a.history.train_loss == b.history.train_loss
    assert a.history.val_loss == b.history.val_loss
    assert [r.learning_rate for r in a.history.records] == [
        r.learning_rate for r in b.history.records
    ]


def test_a_failing_rank_stops_all_ranks(tmp_path: Path) -> None:
    proc = launch(two_ranks, "fail", tmp_path / "x")
    assert proc.returncode != 0
    assert "rank 1 stopped: ValueError: Input X contains NaN" in proc.stdout
    assert "rank 0 stopped: RuntimeError: 1 other rank(s) failed" in proc.stdout


def test_divergence_stops_every_rank(tmp_path: Path) -> None:
    proc = launch(two_ranks, "diverge", tmp_path / "x")
    assert proc.returncode != 0
    assert (
        "rank 0 diverged: non-finite" in proc.stdout
        and "rank 1 diverged: non-finite" in proc.stdout
    )
