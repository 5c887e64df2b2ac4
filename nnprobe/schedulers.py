"""`--shard auto`: which slice this task is, read from the array index its scheduler hands it.

Each scheduler names the index in its own variable, counting from 0 (nnprobe's K counts from 1):

| scheduler | index | count |
| --- | --- | --- |
| Slurm job array | SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN, over SLURM_ARRAY_TASK_STEP) | SLURM_ARRAY_TASK_COUNT |
| Kubernetes indexed Job | JOB_COMPLETION_INDEX | not exposed: `--shard auto/N`, N = the Job's completions |
| AWS Batch array job | AWS_BATCH_JOB_ARRAY_INDEX | not exposed: `--shard auto/N`, N = the array size |
| Google Cloud Batch | BATCH_TASK_INDEX | BATCH_TASK_COUNT |

Outside any scheduler, `--shard auto` is the one slice of one (the whole data set, a result `merge` still
takes). Every refusal is one sentence naming the variable. This module imports no torch.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nnprobe.errors import UsageError


@dataclass(frozen=True)
class Placement:
    """Where this task sits: 0-based index, the count when the scheduler tells it, and who told."""
    scheduler: str
    index0: int
    count: int | None
    source: str  # the variables read, for messages


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"--shard auto: {name}={text!r} is not a whole number.") from None
    if value < 0:
        raise UsageError(f"--shard auto: {name}={value} is negative; array indices count from 0.")
    return value


def _slurm(env: Mapping[str, str]) -> Placement | None:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    if task is None:
        return None
    low = _int(env, "SLURM_ARRAY_TASK_MIN", 0)
    step = _int(env, "SLURM_ARRAY_TASK_STEP", 1) or 1
    count, high = _int(env, "SLURM_ARRAY_TASK_COUNT"), _int(env, "SLURM_ARRAY_TASK_MAX")
    if (task - low) % step or task < low:
        raise UsageError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} is not on the array's grid "
                         f"(SLURM_ARRAY_TASK_MIN={low}, SLURM_ARRAY_TASK_STEP={step}).")
    if count is not None and high is not None and (high - low) // step + 1 != count:
        raise UsageError(f"--shard auto: this Slurm array's {count} tasks are not evenly spaced from {low} to {high} "
                         "(e.g. --array=1,3,7): use a range such as --array=0-9, or give --shard K/N yourself.")
    return Placement("Slurm array", (task - low) // step, count, "SLURM_ARRAY_TASK_ID")


def _plain(scheduler: str, index_var: str, count_var: str | None) -> Callable[[Mapping[str, str]], Placement | None]:
    def read(env: Mapping[str, str]) -> Placement | None:
        index = _int(env, index_var)
        if index is None:
            return None
        return Placement(scheduler, index, _int(env, count_var) if count_var else None, index_var)
    return read


# name -> reader; tests enumerate this table, so a scheduler added here is tested the day it lands.
SCHEDULERS: dict[str, Callable[[Mapping[str, str]], Placement | None]] = {
    "slurm": _slurm,
    "kubernetes": _plain("Kubernetes indexed Job", "JOB_COMPLETION_INDEX", None),
    "aws-batch": _plain("AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", None),
    "gcp-batch": _plain("Google Cloud Batch job", "BATCH_TASK_INDEX", "BATCH_TASK_COUNT"),
}


def placement(env: Mapping[str, str] | None = None) -> Placement | None:
    """This task's place in its scheduler's array, or None outside any scheduler."""
    env = os.environ if env is None else env
    found = [p for p in (read(env) for read in SCHEDULERS.values()) if p is not None]
    if len({(p.index0, p.count) for p in found}) > 1:
        raise UsageError("--shard auto: " + " and ".join(f"{p.source}={p.index0}" for p in found)
                         + " disagree: give --shard K/N yourself.")
    return found[0] if found else None


def auto_part(count: int | None = None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(K, N), 1-based, for `--shard auto` (count None) or `--shard auto/N`."""
    where = placement(env)
    if where is None:
        if count not in (None, 1):
            raise UsageError(f"--shard auto/{count}: no scheduler's array index is set (SLURM_ARRAY_TASK_ID, "
                             "JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX, BATCH_TASK_INDEX): give --shard K/"
                             f"{count} outside an array job.")
        return 1, 1
    if where.count is not None and count is not None and where.count != count:
        raise UsageError(f"--shard auto/{count}: the {where.scheduler} has {where.count} tasks; give --shard auto "
                         "and the count is taken from it.")
    total = where.count if where.count is not None else count
    if total is None:
        raise UsageError(f"--shard auto: a {where.scheduler} gives the index ({where.source}={where.index0}) but "
                         "not the number of tasks: give --shard auto/N, N = its task count.")
    if where.index0 >= total:
        raise UsageError(f"--shard auto: {where.source}={where.index0} is not below the task count {total} "
                         "(indices count from 0).")
    return where.index0 + 1, total
