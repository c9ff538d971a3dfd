"""``fnn.fit``'s step time at this checkout against another commit's, in one run.

The other commit is checked out into a temporary git worktree; each repeat runs one
short process per tree (in rotation: old, new, old, new, ...), each timing ``fit`` on
one workload of ``benchmarks/speed.py`` (same batches, same network) and printing its
median step time. Machine drift hits both alike; the result is new/old per workload
with the old code's own spread (its slowest / fastest repeat), which is the noise a
difference must exceed.

Run: python benchmarks/fit_against_commit.py OLD_REF [--workloads tiny,mnist-mlp,wide]
     [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time, statistics
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import numpy as np
import fnn
from speed import WORKLOADS, batches, make_fnn
w = WORKLOADS[sys.argv[3]]
X, y = batches(w)
run = make_fnn(w, X, y)
run()
times = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter()
    run()
    times.append((time.perf_counter() - t) / w["steps"])
print(json.dumps({"fnn": fnn.__file__, "median": statistics.median(times)}))
"""


def child(tree: Path, workload: str, inner: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(ROOT / "benchmarks"), workload, str(inner)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["fnn"].startswith(str(tree)), got["fnn"]
    return float(got["median"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the commit to compare with (e.g. 7e3c551)")
    parser.add_argument("--workloads", default="tiny,mnist-mlp,wide")
    parser.add_argument("--repeats", type=int, default=5, help="processes per tree")
    parser.add_argument("--inner", type=int, default=3, help="timed fit calls per process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.old],
            check=True,
            capture_output=True,
        )
        try:
            print(
                f"{'workload':10} {'old us':>10} {'new us':>10} {'new/old':>8} {'old spread':>11}"
            )
            for name in args.workloads.split(","):
                old: list[float] = []
                new: list[float] = []
                for _ in range(args.repeats):
                    old.append(child(old_tree, name, args.inner))
                    new.append(child(ROOT, name, args.inner))
                mo, mn = statistics.median(old), statistics.median(new)
                print(
                    f"{name:10} {mo * 1e6:10.1f} {mn * 1e6:10.1f} {mn / mo:8.3f} "
                    f"{max(old) / min(old):11.3f}"
                )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)],
                check=False,
                capture_output=True,
            )


if __name__ == "__main__":
    main()
