"""Step times across fresh processes: how steady is each loop, and how does it compare?

Each (workload, loop) pair of ``benchmarks/speed.py`` is timed in ``--processes`` fresh
Python processes. The processes run in rotation (fit, train_step, the design card's
loop, the NumPy loop, PyTorch, then again), so drift in the machine's speed hits every
loop alike. Inside a process the loop trains ``repeats`` epochs over the workload's
batches after one warm-up epoch; the process reports its median µs per step.

For each loop it prints the median over processes of those medians, the spread (the
slowest process's median divided by the fastest's: issue 22 asks for at most 1.3 on a
quiet machine) and the loop's median as a multiple of the hand-written NumPy loop's.

Run: python benchmarks/steadiness.py [--workloads tiny,mnist-mlp,wide] [--processes 5]
     [--loops fit,step,loop,numpy,torch] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOOPS = ("fit", "step", "loop", "numpy", "torch")


def one(workload: str, loop: str) -> float | None:
    """Median seconds per step of one loop on one workload, in this process."""
    from benchmarks import speed

    w = speed.WORKLOADS[workload]
    X, y = speed.batches(w)
    makers = {
        "fit": speed.make_fnn,
        "step": speed.make_train_step,
        "loop": speed.make_pure_loop,
        "numpy": speed.make_numpy,
        "torch": speed.make_torch,
    }
    run = makers[loop](w, X, y)
    if run is None:
        return None
    run()  # warm-up: first touches of memory, caches, lazy imports
    times = []
    for _ in range(w["repeats"]):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / w["steps"]


def main() -> None:
    p = argparse.ArgumentParser(description="step-time steadiness over fresh processes")
    p.add_argument("--workloads", default="tiny,mnist-mlp,wide")
    p.add_argument("--loops", default=",".join(LOOPS))
    p.add_argument("--processes", type=int, default=5)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "LOOP"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        t = one(*args.one)
        print(json.dumps(t))
        return

    loops = args.loops.split(",")
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "load": os.getloadavg()}}
    print(f"{'workload':10} {'loop':6} {'median us':>10} {'spread':>7} {'/numpy':>7}  per process")
    for name in args.workloads.split(","):
        per: dict[str, list[float]] = {k: [] for k in loops}
        for _ in range(args.processes):
            for loop in loops:
                out = subprocess.run(
                    [sys.executable, __file__, "--one", name, loop],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                t = json.loads(out.stdout.strip().splitlines()[-1])
                if t is not None:
                    per[loop].append(t)
        per = {k: v for k, v in per.items() if v}
        base = statistics.median(per["numpy"]) if "numpy" in per else None
        results[name] = {}
        for loop, ts in per.items():
            med = statistics.median(ts)
            spread = max(ts) / min(ts)
            rel = med / base if base else float("nan")
            results[name][loop] = {"per_process_s": ts, "median_s": med, "spread": spread}
            shown = " ".join(f"{t * 1e6:.1f}" for t in ts)
            print(f"{name:10} {loop:6} {med * 1e6:10.1f} {spread:7.2f} {rel:7.2f}  {shown}")
    results["machine"]["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
