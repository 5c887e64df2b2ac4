"""The exact (Clopper-Pearson) intervals of an ImageNet-val-sized eval, this tree's `nnprobe/intervals.py`
against the same file at an older commit (default: the one before the beta quantile became safeguarded
Newton, d675c06), loaded side by side and timed interleaved in one process.

    PYTHONPATH=. python bench/bench_intervals.py                   # d675c06^ vs this tree, 5 repeats
    PYTHONPATH=. python bench/bench_intervals.py --old REV --repeats 9

One workload is what an eval report asks for: the top-1 and the top-5 interval of 50,000 images and the 1000
per-class top-1 intervals (50 images per class, counts drawn once, seeded). The cache of the scalar interval
(`clopper_pearson` is remembered per (k, n, level) since d675c06) is cleared before every round, so each round
is a first call. Times are the process's CPU seconds (numpy on one thread here), since other work on the
machine stretches the wall clock (its median is printed beside them). The bounds of both versions are compared too: the largest absolute difference is printed.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_at(rev: str):
    """nnprobe/intervals.py as it was at `rev`, imported under another name (it imports only numpy and
    nnprobe.errors)."""
    source = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:nnprobe/intervals.py"], check=True,
                            capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "intervals_old.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("intervals_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["intervals_old"] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def workload(module, class_k: np.ndarray) -> np.ndarray:
    """Top-1 (38,064 of 50,000), top-5 (46,517 of 50,000) and 1000 per-class intervals of 50 images."""
    cached = getattr(module, "_clopper_pearson", None)
    if cached is not None:
        cached.cache_clear()
    top1, top5 = module.clopper_pearson(38_064, 50_000), module.clopper_pearson(46_517, 50_000)
    lo, hi = module.clopper_pearson_bounds(class_k, np.full_like(class_k, 50))
    return np.concatenate([[top1.lo, top1.hi, top5.lo, top5.hi], lo, hi])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="d675c06^", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import nnprobe.intervals as new

    old = load_at(args.old)
    class_k = np.random.default_rng(0).binomial(50, 0.76, size=1000).astype(np.float64)
    times: dict[str, list[float]] = {"old": [], "new": []}  # CPU seconds of this process (a loaded machine
    walls: dict[str, list[float]] = {"old": [], "new": []}  # stretches the wall clock, not the CPU time)
    bounds = {}
    for _ in range(args.repeats):
        for name, module in (("old", old), ("new", new)):
            start, cpu = time.perf_counter(), time.process_time()
            bounds[name] = workload(module, class_k)
            times[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - start)
    load = os.getloadavg()
    print(f"# {datetime.date.today()} {platform.machine()}, Python {platform.python_version()}, numpy "
          f"{np.__version__}, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, {args.repeats} interleaved "
          f"rounds; old = {args.old}")
    print("| version | best CPU s | median CPU s | CPU s of each round | median wall s |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name in ("old", "new"):
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"| {name} | {min(times[name]):.3f} | {statistics.median(times[name]):.3f} | {runs} | "
              f"{statistics.median(walls[name]):.3f} |")
    ratio = statistics.median(times["old"]) / statistics.median(times["new"])
    diff = float(np.nanmax(np.abs(bounds["old"] - bounds["new"])))
    print(f"speed-up (median CPU s): {ratio:.2f}x; largest difference between the versions' bounds: {diff:.1e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
