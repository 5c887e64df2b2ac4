"""CPU cost of `nnprobe diagnose --follow` on a run that appends 1,000 scalars/s (goal: < 5% of one core).

A writer process appends TensorBoard scalar records (four tags in turn, the way a training loop logs
train/val loss and accuracy) at --rate scalars per second for --seconds; `nnprobe diagnose --follow`
watches the folder with its default --poll 2 as a separate process. Its CPU time (user + system) is read
from /proc/<pid>/stat at the end of its start-up (--warmup seconds in) and when the writer stops, so the
start-up imports are reported apart from the steady state; it then idles out (--idle 3) and its total CPU
is taken from os.wait4. Linux only (/proc).

    python bench/bench_follow.py [--rate 1000] [--seconds 30] [--poll 2] [--warmup 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")

WRITER = """
import sys, time
sys.path.insert(0, {helpers!r})
from diagnose_helpers import frame, wire_scalar_event
rate, seconds, out = {rate}, {seconds}, {out!r}
tags = ("train/loss", "train/acc", "val/loss", "val/acc")
with open(out, "ab", buffering=0) as f:
    t0, n = time.time(), 0
    while time.time() - t0 < seconds:
        due = int((time.time() - t0) * rate)
        batch = []
        while n < due:
            step, tag = divmod(n, 4)
            value = 2.3 / (1 + step / 1000) if tag in (0, 2) else min(0.95, 0.1 + step / 20000)
            batch.append(frame(wire_scalar_event(tags[tag], value, step, t0 + n / rate)))
            n += 1
        f.write(b"".join(batch))
        time.sleep(0.01)
print(n)
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as run:
        events = os.path.join(run, "events.out.tfevents.1.bench")
        writer = subprocess.Popen([sys.executable, "-c", WRITER.format(
            helpers=os.path.join(ROOT, "tests", "diagnose"), rate=args.rate, seconds=args.seconds, out=events)],
            stdout=subprocess.PIPE, text=True, env=env)
        started = time.time()
        report = open(os.path.join(run, "..", os.path.basename(run) + ".json"), "w+")
        diag = subprocess.Popen([sys.executable, "-m", "nnprobe", "diagnose", "--follow", run, "--poll",
                                 str(args.poll), "--idle", "3", "--format", "json"], stdout=report,
                                stderr=subprocess.DEVNULL, env=env)
        time.sleep(args.warmup)
        cpu_warm, t_warm = cpu_seconds(diag.pid), time.time()
        written = int(writer.communicate()[0])
        cpu_end, t_end = cpu_seconds(diag.pid), time.time()
        _, status, usage = os.wait4(diag.pid, 0)
        total = usage.ru_utime + usage.ru_stime
        size = os.path.getsize(events)
        report.seek(0)
        result = json.load(report)
        report.close()
        os.remove(report.name)
    steady = (cpu_end - cpu_warm) / (t_end - t_warm)
    print(f"writer: {written:,} scalars in {args.seconds:g} s ({written / args.seconds:,.0f}/s), {size:,} bytes")
    print(f"diagnose --follow --poll {args.poll:g}: exit {os.waitstatus_to_exitcode(status)}; "
          f"start-up CPU {cpu_warm:.2f} s (first {args.warmup:g} s)")
    print(f"steady state: {cpu_end - cpu_warm:.2f} s CPU over {t_end - t_warm:.1f} s wall = "
          f"{100 * steady:.1f}% of one core (goal < 5%)")
    print(f"total CPU {total:.2f} s over {time.time() - started:.1f} s wall; the follower read "
          f"{result['points']:,} points, {result['bytes_read']:,} bytes in {result['polls']} polls")


if __name__ == "__main__":
    main()
