"""Where nnprobe eval's main-process CPU goes beside the plain loop's (bench_eval.py's two loops), from cProfile
with a CPU clock, so that the other work on a shared machine moves the numbers little.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/profile_eval.py --count 200 --repeats 2
Prints, per repeat, each loop's CPU seconds split into the network, the loader, and for nnprobe its
normalisation, per-batch counting (calibration tally included), and the work before and after the loop
(calibration suite, result assembly). Uses bench_eval's JPEG folder for --count (made when absent).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_eval import nnprobe_run, plain_loop  # noqa: E402
from make_jpegs import make  # noqa: E402

from nnprobe.models import load_classifier  # noqa: E402


def _cum(stats, file_end: str, name: str) -> float:
    return sum(v[3] for k, v in stats.stats.items() if k[0].endswith(file_end) and k[2] == name)


def _own(stats, file_end: str, name: str) -> float:
    return sum(v[2] for k, v in stats.stats.items() if k[0].endswith(file_end) and k[2] == name)


def _network(stats) -> float:
    """The torchvision network's top-level forward (the largest cumulative of its modules' forwards)."""
    return max(v[3] for k, v in stats.stats.items() if k[2] == "forward" and "torchvision/models" in k[0])


def _profiled(fn) -> pstats.Stats:
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    fn()
    profile.disable()
    return pstats.Stats(profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = make(None, args.count)
    classifier, device = load_classifier(args.model, weights="none"), torch.device("cpu")
    plain = lambda: plain_loop(root, classifier, device, args.batch_size, args.workers)  # noqa: E731
    ours = lambda: nnprobe_run(root, classifier, device, args.batch_size, args.workers)  # noqa: E731
    plain(), ours()  # imports and first-call caches out of the way
    for _ in range(args.repeats):
        p, o = _profiled(plain), _profiled(ours)
        net_p, net_o = _network(p), _network(o)
        total_p = _cum(p, "bench_eval.py", "plain_loop")
        total_o = _cum(o, "bench_eval.py", "nnprobe_run") - _cum(o, "labelling.py", "variant_images")
        loader_p = _cum(p, "dataloader.py", "__next__") + _cum(p, "dataloader.py", "__iter__")
        count, call = _cum(o, "evaluation.py", "_count"), _cum(o, "evaluation.py", "evaluate")
        loader_o, norm = _cum(o, "shards.py", "__iter__"), _own(o, "classifier.py", "forward")
        print(f"plain: total {total_p:.3f} s  network {net_p:.3f}  loader {loader_p:.3f}  "
              f"rest {total_p - net_p - loader_p:.3f}")
        print(f"nnprobe: total {total_o:.3f} s  network {net_o:.3f}  loader {loader_o:.3f}  normalise {norm:.3f}  "
              f"per-batch {count - loader_o - net_o - norm:.3f} (tally {_cum(o, 'calibration_tally.py', 'add'):.3f})"
              f"  before+after the loop {call - count:.3f} (suite {_cum(o, 'calibration_suite.py', 'suite'):.3f},"
              f" assembly {_cum(o, 'evaluation.py', '_assemble'):.3f})", flush=True)


if __name__ == "__main__":
    main()
