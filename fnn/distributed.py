"""Data-parallel training with MPI (extra ``mpi``: mpi4py and the MPICH runtime).

Every rank holds the same data and the same seed. Each global batch of ``batch_size``
rows is split into near-equal shards, one per rank; each rank runs the layers' own
kernels (the code every other way of training runs) on its shard, with the loss
gradient scaled by the shard's share of the global batch's weight, and one
``Allreduce`` over a single contiguous buffer (``[gradient, loss share, failure
flag]``) gives every rank the gradient of the global batch's mean loss. All ranks then
take the same optimizer step, so N ranks with global batch B compute what one process
with batch B computes, to float tolerance. The initial parameters (and a resumed
optimizer state) are broadcast from rank 0; dropout masks are drawn for the whole
global batch and sliced; batch-norm statistics are synchronised: the layers' sums are
all-reduced in the forward and backward passes, so they are the global batch's.

A rank that fails sets the failure flag of the next reduction (or of the check before
training), so every rank raises instead of waiting forever. Only rank 0 prints
progress; :func:`save` writes on rank 0 only.

Each rank runs fnn's own kernels on one thread unless ``fnn.set_num_threads`` or
``FNN_NUM_THREADS`` says otherwise. Launch with one BLAS thread per rank too (MPI's busy
polling and BLAS threads otherwise fight for the cores)::

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py train.py

``python -m mpi4py`` aborts all ranks if one dies with an uncaught exception.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Unpack

import numpy as np

from fnn import threads, tree
from fnn._diverged import NonFinite
from fnn._engine import Engine
from fnn._types import ArrayLike, FloatArray
from fnn._validation import as_generator
from fnn.network import Network
from fnn.optim import Optimizer, OptState
from fnn.train.fit import FitOptions, run_fit
from fnn.train.history import FitHistory

__all__ = ["broadcast", "fit", "rank", "save", "size", "world"]

_OTHER_ERROR = 1000.0  # failure flag of a rank that raised something other than NonFinite


def world() -> Any:
    """``MPI.COMM_WORLD`` (imports mpi4py)."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fnn.distributed needs mpi4py: pip install 'fnn[mpi]'") from e
    return MPI.COMM_WORLD


def rank(comm: Any = None) -> int:
    """This process's rank (0 without MPI running more than one process)."""
    return int((comm or world()).Get_rank())


def size(comm: Any = None) -> int:
    """The number of ranks."""
    return int((comm or world()).Get_size())


def broadcast(tree_value: Any, *, comm: Any = None, root: int = 0) -> Any:
    """Every rank gets ``root``'s copy of a tree: one Bcast of its leaves raveled into one
    buffer when they share a float dtype (a network), else one per leaf (an optimizer
    state with its step count and masks). The trees must have the same structure and
    sizes on every rank."""
    comm = comm or world()
    leaves = tree.leaves(tree_value)
    if leaves and all(isinstance(x, np.ndarray) and x.dtype == leaves[0].dtype for x in leaves):
        flat = np.array(tree.ravel(tree_value), copy=True)
        comm.Bcast(flat, root=root)
        return tree.unravel(tree_value, flat)

    def one(x: Any) -> Any:  # leaves of mixed kinds: one broadcast each
        if isinstance(x, np.ndarray):
            c = np.array(x, copy=True)
            comm.Bcast(c, root=root)
            c.flags.writeable = x.flags.writeable
            return c
        return comm.bcast(x, root=root)

    return tree.map(one, tree_value)


def save(
    path: str | os.PathLike[str], params: Network, *, comm: Any = None, **kwargs: Any
) -> Path | None:
    """``fnn.save`` on rank 0 only; the other ranks wait for it. Returns the path on rank 0."""
    from fnn.serialization import save as _save

    comm = comm or world()
    written = _save(path, params, **kwargs) if comm.Get_rank() == 0 else None
    comm.Barrier()
    return written


class _MPIDistributor:
    """The :class:`fnn.train.fit.Distributor` of an MPI communicator."""

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.buf: FloatArray | None = None

    def agree(self, error: BaseException | None) -> None:
        failed = self.comm.allreduce(0 if error is None else 1, op=self.MPI.SUM)
        if failed and error is None:
            raise RuntimeError(
                f"{failed} other rank(s) failed before training started (see their errors); "
                f"rank {self.rank} stops too"
            )

    def _shard(self, n: int) -> slice:
        # near-equal contiguous shards: the first n % size ranks get one row more
        base, extra = divmod(n, self.size)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (1 if self.rank < extra else 0))

    def allreduce(self, a: FloatArray) -> FloatArray:
        """``a`` summed over the ranks (a new array)."""
        src = np.ascontiguousarray(a)
        out = np.empty_like(src)
        self.comm.Allreduce(src, out, op=self.MPI.SUM)
        return out

    def step(
        self,
        engine: Engine,
        X: FloatArray,
        y: FloatArray,
        w: FloatArray | None,
        rng: np.random.Generator,
    ) -> float:
        n = X.shape[0]
        part = self._shard(n)
        P = engine.g.size
        if self.buf is None or self.buf.size != P + 2:
            self.buf = np.empty(P + 2, dtype=engine.g.dtype)
        buf = self.buf
        failure = 0.0
        error: BaseException | None = None
        # the denominators of the global and the shard's mean loss: rows (or their
        # weight), or for per-position targets the counted positions (weighted)
        loss = engine.nets[engine.cur].loss
        total_w = loss.batch_weight(y, w)
        local_w = loss.batch_weight(y[part], None if w is None else w[part])
        share = local_w / total_w
        value = 0.0
        try:
            value = engine.gradient(
                X[part],
                y[part],
                None if w is None else w[part],
                rng,
                rows=(part, n),
                allreduce=self.allreduce,
                scale=share,
                check=False,
            )
            if not math.isfinite(value):
                raise NonFinite("loss")
            buf[:P] = engine.g
            if self.rank != 0:  # new running statistics are the same on every rank
                engine.layout.zero_state(buf[:P])
        except NonFinite:
            failure = 1.0
        except Exception as e:
            failure = _OTHER_ERROR
            error = e
        buf[P] = value * share if failure == 0 else 0.0
        buf[P + 1] = failure
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        if buf[P + 1] >= _OTHER_ERROR:
            if error is not None:
                raise error
            raise RuntimeError("another rank failed during this training step; all ranks stop")
        if buf[P + 1] > 0:
            raise NonFinite("loss")
        engine.g[...] = buf[:P]
        engine.update()
        return float(buf[P])


def fit(
    params: Network,
    optimizer: Optimizer,
    X: ArrayLike,
    y: ArrayLike,
    *,
    comm: Any = None,
    **options: Unpack[FitOptions],
) -> tuple[Network, FitHistory]:
    """``fnn.fit``, data-parallel over the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

    Arguments and the returned ``(params, History)`` are those of :func:`fnn.fit`;
    ``batch_size`` is the global batch, split across the ranks. Call it on every rank
    with the same data and the same seed; the result is the same on every rank.
    Training metrics are measured on the whole training set at each epoch's end.

    Raises:
        ValueError: the ranks' data shapes or random generators differ.
        RuntimeError: another rank failed (its own error is raised there).
        TrainingDiverged: as :func:`fnn.fit`, on every rank at once.
    """
    comm = comm or world()
    if comm.Get_size() > 1 and not threads.configured():  # ranks share the cores
        threads.set_num_threads(1)
    dist = _MPIDistributor(comm)
    gen = as_generator(options.get("rng", 0))
    shape = tuple(np.shape(X))
    shapes = comm.allgather(shape)
    if len(set(shapes)) != 1:
        raise ValueError(f"every rank must hold the same X; shapes by rank: {shapes}")
    states = comm.allgather(repr(gen.bit_generator.state))
    if len(set(states)) != 1:
        raise ValueError(
            "rng differs across ranks: pass the same seed (or Generator state) on every rank"
        )
    if isinstance(params, Network):
        params = broadcast(params, comm=comm)
    opts: FitOptions = {**options}
    if "rng" in options:
        opts["rng"] = gen
    state = options.get("opt_state")
    if isinstance(state, OptState):
        opts["opt_state"] = broadcast(state, comm=comm)
    if dist.rank != 0:
        opts["verbose"] = 0
    return run_fit(params, optimizer, X, y, opts, dist)
