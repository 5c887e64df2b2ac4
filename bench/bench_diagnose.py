"""Whole `nnprobe diagnose` vs tbparse on event files written by SummaryWriter, two workloads:
(a) one tag, 200k points; (b) four tags (train/val loss and accuracy), 200k points in all.

Both tools run as fresh processes (interpreter start and imports included), alternated, several times,
in one invocation of this script; the medians and their ratio are printed per workload. nnprobe verifies
every record's CRC (the default) and runs all checks; tbparse only reads into a DataFrame.

    python bench/bench_diagnose.py [--points 200000] [--repeats 3] [--workload one|four|both] [--profile]

`--profile` also prints nnprobe's in-process cProfile (top functions by cumulative time) per workload.

Needs torch (to write the file with SummaryWriter) and tbparse (`pip install tbparse`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")


def write_event_file(folder: str, points: int) -> str:
    """200k `train/loss` scalars from SummaryWriter, every 997th a NaN (EventAccumulator drops those)."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    writer = SummaryWriter(folder, max_queue=10_000, flush_secs=3600)
    for step in range(points):
        value = math.nan if step % 997 == 0 else 2.3 * math.exp(-step / (points / 4)) + 0.1
        writer.add_scalar("train/loss", value, step, walltime=1_700_000_000 + step * 0.05)
    writer.close()
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def write_four_tags(folder: str, points: int) -> str:
    """`points` scalars over train/loss, train/acc, val/loss, val/acc (a quarter each, logged at every
    step): the overfitting and leakage checks align the train series at each of the validation steps."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    writer = SummaryWriter(folder, max_queue=10_000, flush_secs=3600)
    steps = points // 4
    for step in range(steps):
        wall = 1_700_000_000 + step * 0.2
        decay = math.exp(-step / (steps / 4))
        writer.add_scalar("train/loss", 2.3 * decay + 0.1, step, walltime=wall)
        writer.add_scalar("train/acc", 0.95 - 0.85 * decay, step, walltime=wall)
        writer.add_scalar("val/loss", 2.3 * decay + 0.2, step, walltime=wall + 0.1)
        writer.add_scalar("val/acc", 0.92 - 0.82 * decay, step, walltime=wall + 0.1)
    writer.close()
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def timed(cmd: list[str]) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return seconds, proc.stdout


TBPARSE = """
import sys
from tbparse import SummaryReader
frame = SummaryReader(sys.argv[1]).scalars
print(len(frame), int(frame["value"].isna().sum()))
"""


def profile(folder: str) -> None:
    """nnprobe's own time in-process, by function (cumulative), to show what is left to speed up."""
    import cProfile
    import pstats

    from nnprobe.diagnosis import diagnose

    profiler = cProfile.Profile()
    profiler.enable()
    diagnose(folder)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


def run_workload(label: str, folder: str, repeats: int) -> float:
    """Alternate nnprobe and tbparse `repeats` times on `folder`; print both medians; return the ratio."""
    report = os.path.join(OUT, "diagnose.json")
    ours_cmd = [sys.executable, "-m", "nnprobe", "diagnose", folder, "--format", "json", "-o", report]
    theirs_cmd = [sys.executable, "-c", TBPARSE, folder]
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(timed(ours_cmd)[0])
        seconds, out = timed(theirs_cmd)
        theirs.append(seconds)
    with open(report) as handle:
        body = json.load(handle)
    findings = [f for f in body["findings"] if f["id"] == "loss-not-finite"]
    nonfinite = findings[0]["evidence"]["count"] if findings else 0
    rows, nans = out.split()
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"[{label}] nnprobe diagnose (CRC on, all checks): {', '.join(f'{s:.2f}' for s in ours)} s; "
          f"median {statistics.median(ours):.2f} s; {body['runs'][0]['sources'][0]['points']} points, "
          f"{nonfinite} non-finite")
    print(f"[{label}] tbparse SummaryReader(...).scalars:      {', '.join(f'{s:.2f}' for s in theirs)} s; "
          f"median {statistics.median(theirs):.2f} s; {rows} rows, {nans} NaN")
    print(f"[{label}] ratio tbparse / nnprobe: {ratio:.1f}x (goal >= 5x, target 10x)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=("one", "four", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="also print nnprobe's cProfile per workload")
    args = parser.parse_args()
    workloads = {"one": ("1 tag", "events200k", write_event_file),
                 "four": ("4 tags", "events200k-4tags", write_four_tags)}
    chosen = list(workloads) if args.workload == "both" else [args.workload]
    ratios = {}
    for key in chosen:
        label, name, write = workloads[key]
        folder = os.path.join(OUT, name)
        start = time.perf_counter()
        path = write(folder, args.points)
        print(f"[{label}] wrote {args.points} scalars with SummaryWriter in {time.perf_counter() - start:.1f} s: "
              f"{path} ({os.path.getsize(path) / 1e6:.1f} MB)")
        if args.profile:
            profile(folder)
        ratios[label] = run_workload(label, folder, args.repeats)
    print(f"ratios tbparse / nnprobe: {', '.join(f'{k} {v:.1f}x' for k, v in ratios.items())} "
          f"on {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
