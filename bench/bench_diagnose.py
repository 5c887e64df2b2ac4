"""Whole `nnprobe diagnose` vs tbparse on one 200k-scalar event file written by SummaryWriter.

Both run as fresh processes (interpreter start and imports included), alternated, several times, in one
invocation of this script; the medians and their ratio are printed. nnprobe verifies every record's CRC
(the default) and runs all checks; tbparse only reads into a DataFrame.

    python bench/bench_diagnose.py [--points 200000] [--repeats 3]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = os.path.join(OUT, "events200k")
    start = time.perf_counter()
    path = write_event_file(folder, args.points)
    print(f"wrote {args.points} scalars with SummaryWriter in {time.perf_counter() - start:.1f} s: "
          f"{path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    report = os.path.join(OUT, "diagnose.json")
    ours_cmd = [sys.executable, "-m", "nnprobe", "diagnose", folder, "--format", "json", "-o", report]
    theirs_cmd = [sys.executable, "-c", TBPARSE, folder]
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(timed(ours_cmd)[0])
        seconds, out = timed(theirs_cmd)
        theirs.append(seconds)
    with open(report) as handle:
        body = json.load(handle)
    (finding,) = [f for f in body["findings"] if f["id"] == "loss-not-finite"]
    rows, nans = out.split()
    print(f"nnprobe diagnose (CRC on, all checks): {', '.join(f'{s:.2f}' for s in ours)} s; "
          f"median {statistics.median(ours):.2f} s; {body['runs'][0]['sources'][0]['points']} points, "
          f"{finding['evidence']['count']} non-finite")
    print(f"tbparse SummaryReader(...).scalars:      {', '.join(f'{s:.2f}' for s in theirs)} s; "
          f"median {statistics.median(theirs):.2f} s; {rows} rows, {nans} NaN")
    print(f"ratio tbparse / nnprobe: {statistics.median(theirs) / statistics.median(ours):.1f}x "
          f"(goal >= 5x) on {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
