"""Run by tests/data/test_shards.py in a subprocess (under torchrun, or alone with its own process group):
calls nnprobe.evaluate and nnprobe.robust in turn and prints, per rank, one JSON line with each call's
counts (or its error) and whether a process group is initialised afterwards, to OUT/rank{RANK}.json.

usage: shard_worker.py nnprobe|caller|caller-single DATA BROKEN OUT [STORE_FILE]
  nnprobe:       nnprobe creates the group itself (torchrun environment)
  caller:        the script creates the group first, from torchrun's environment
  caller-single: the script creates a one-process gloo group on a FileStore (no torchrun)
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "attacks"))

import tinymodels  # noqa: E402
import torch.distributed as dist  # noqa: E402

from nnprobe.attacks.robustness import robust  # noqa: E402
from nnprobe.data.layouts import find_images  # noqa: E402
from nnprobe.errors import NnprobeError  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402

CLASSES = [f"class{i}" for i in range(4)]


def eval_counts(model, images, **options):
    r = evaluate(model, images, device="cpu", workers=0, batch_size=3, **options)
    return [r.correct_top1, r.correct_top5, r.total, [s.path for s in r.skipped]]


def robust_counts(model, images):
    r = robust(model, images, eps="0,8/255", steps=3, device="cpu", workers=0, batch_size=3)
    return [[p.correct_top1, p.correct_top5, p.total, p.clean_correct, p.fooled] for p in r.points]


def main() -> None:
    mode, data, broken, out_dir = sys.argv[1:5]
    if mode == "caller":
        dist.init_process_group("gloo")
    elif mode == "caller-single":
        dist.init_process_group("gloo", init_method=f"file://{sys.argv[5]}", rank=0, world_size=1)
    images, bad = (find_images(root, class_names=CLASSES, wnids=None, num_classes=4) for root in (data, broken))
    calls = {
        "eval": lambda: eval_counts(tinymodels.tiny_classifier(), images),
        "robust": lambda: robust_counts(tinymodels.tiny_classifier(), images),
        "eval-nan": lambda: eval_counts(tinymodels.nan_classifier(), images),
        "robust-nan": lambda: robust_counts(tinymodels.nan_classifier(), images),
        "eval-strict": lambda: eval_counts(tinymodels.tiny_classifier(), bad, strict=True),
        "eval-again": lambda: eval_counts(tinymodels.tiny_classifier(), images),
        "robust-again": lambda: robust_counts(tinymodels.tiny_classifier(), images),
    }
    if mode == "caller-single":
        calls["eval-mismatch"] = lambda: _with_env({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"},
                                                   lambda: eval_counts(tinymodels.tiny_classifier(), images))
    record = {"rank": int(os.environ.get("RANK", "0"))}
    for name, call in calls.items():
        try:
            out = call()
        except NnprobeError as exc:
            out = f"{type(exc).__name__}: {exc}"
        record[name] = [out, dist.is_initialized()]
    Path(out_dir, f"rank{record['rank']}.json").write_text(json.dumps(record))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    # Skip interpreter teardown: gloo's background threads can abort there under load ("terminate called
    # without an active exception", pytorch/pytorch#179291), after every result above is already written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _with_env(values: dict[str, str], call):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        return call()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    main()
