"""`nnprobe fool` wall time under an artificial competing load, by intra-op thread count.

Why: on a busy 2-core machine torch's default threading (one thread per core, spinning at barriers) made
`nnprobe fool cat.jpg` take 16-20 s against 0.6 s with one thread. nnprobe sizes its threads from the CPUs it
may use (affinity, cgroup quota) less its data-loader workers; this measures that default against
`--threads 1` and `--threads <every core>` (torch's default), with K busy processes competing, interleaved.

    python bench/bench_threads.py --load 0,2 --repeats 3
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "samples" / "imagenet" / "n02123045" / "cat.jpg"


def spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def time_fool(threads: str | None, out: Path, attack: str) -> float:
    argv = [sys.executable, "-m", "nnprobe", "fool", str(PHOTO), "--attack", attack, "--out", str(out),
            "--format", "json", "-o", str(out) + ".json"]
    if threads:
        argv += ["--threads", threads]
    # Time the attack alone, not interpreter start and imports: nnprobe reports its own duration.
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    import json

    return json.loads(Path(str(out) + ".json").read_text())["run"]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", default="0,2", help="numbers of competing busy processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attack", default="bim")
    args = parser.parse_args()
    cores = str(os.cpu_count())
    configs = {"nnprobe default": None, "--threads 1": "1", f"--threads {cores} (torch default)": cores}
    print(f"cores {cores}, affinity {len(os.sched_getaffinity(0))}, attack {args.attack}, photo {PHOTO.name}")
    for load in (int(x) for x in args.load.split(",")):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(load)]
        for p in spinners:
            p.start()
        time.sleep(1.0)
        times: dict[str, list[float]] = {name: [] for name in configs}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for r in range(args.repeats):
                    for name, threads in configs.items():  # interleaved
                        times[name].append(time_fool(threads, Path(tmp) / f"{r}-{len(times[name])}-{threads}",
                                                     args.attack))
        finally:
            stop.set()
            for p in spinners:
                p.join(timeout=5)
        for name, values in times.items():
            print(f"load {load}: {name:32s} median {statistics.median(values):7.2f} s  runs "
                  + ", ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
