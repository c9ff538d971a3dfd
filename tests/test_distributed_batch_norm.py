"""Data-parallel training of a batch-norm network on 2 MPI ranks equals one process:
the batch statistics are synchronised (sums all-reduced), not averaged per rank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (extra 'mpi' installs it with MPICH)")

import fnn
from tests.mpi import batch_norm_ranks, launch


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet"])
def test_two_ranks_train_batch_norm_like_one_process(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "dist.npz"
    proc = launch(batch_norm_ranks, out, kind)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = fnn.load(out)
    X, y = batch_norm_ranks.data(kind)
    start = fnn.init(batch_norm_ranks.architecture(kind), rng=7)
    net, h = fnn.fit(start, fnn.sgd(0.1, momentum=0.9), X, y, **batch_norm_ranks.TRAIN)
    assert dist.params.layout.key == net.layout.key
    np.testing.assert_allclose(dist.params.flat, net.flat, rtol=1e-10, atol=1e-12)
    got_leaves, ref_leaves = fnn.tree.flatten(dist.params), fnn.tree.flatten(net)
    running = [p for p in ref_leaves if p.endswith(".running_var")]
    assert running  # batch norms at the top level or inside blocks
    for p in running:
        # the running statistics moved, and equal the global batch's
        assert not np.allclose(ref_leaves[p], 1.0)
        mean = p.replace("running_var", "running_mean")
        np.testing.assert_allclose(got_leaves[mean], ref_leaves[mean], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_leaves[p], ref_leaves[p], rtol=1e-10, atol=1e-12)
    assert dist.history is not None
    np.testing.assert_allclose(dist.history.train_loss, h.train_loss, rtol=1e-10)
    assert dist.opt_state is not None and dist.opt_state.step == 8


def test_a_rank_with_an_empty_shard_of_a_flattening_network(tmp_path: Path) -> None:
    # 22 rows in batches of 7: the last batch has one row, so one rank's shard is empty;
    # Flatten must pass 0 rows through (it raised on reshape(0, -1))
    out = tmp_path / "dist.npz"
    proc = launch(batch_norm_ranks, out, "flat")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = fnn.load(out)
    X, y = batch_norm_ranks.data("flat")
    start = fnn.init(batch_norm_ranks.architecture("flat"), rng=7)
    net, _ = fnn.fit(start, fnn.sgd(0.1, momentum=0.9), X, y, **batch_norm_ranks.TRAIN)
    np.testing.assert_allclose(dist.params.flat, net.flat, rtol=1e-10, atol=1e-12)
