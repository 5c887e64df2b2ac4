"""Checks on system metrics logged beside the training metrics (MLflow's `log_system_metrics=True` writes
`system/gpu_0_utilization_percentage`, `system/system_memory_usage_megabytes` ...; W&B's system monitor
`system/gpu.0.gpu` (utilization %), `system/proc.memory.rssMB` ..., read from its own records by the W&B
reader; any series whose name says GPU utilization or memory in use counts): a GPU that is starved or stalls,
and memory that keeps growing."""
from __future__ import annotations

import re

import numpy as np

from nnprobe.diagnosis.checks._util import r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register
from nnprobe.diagnosis.roles import NAME_SPLIT

MIN_SAMPLES = 10
# SageMaker Debugger's LowGPUUtilization rule warns when the 95th percentile stays under 70%; a small model
# on a big GPU does that legitimately, so here only a median under 20% (the GPU mostly waits) is "starved".
STARVED_MEDIAN = 20.0
# A stall: >= 10 consecutive samples at <= 1% between samples above 50% (the job hung and came back).
STALL_SAMPLES = 10
STALL_IDLE, STALL_BUSY = 1.0, 50.0
# Growth: the medians of 5 consecutive fifths of the run strictly increasing, the last >= 1.2x the first.
GROWTH_PARTS = 5
GROWTH_RATIO = 1.2


_WANDB_GPU = re.compile(r"(^|/)gpu\.\d+\.gpu$")  # W&B's GPU utilization percent
_NOT_IN_USE = ("avail", "free", "total", "limit")  # memory left or installed, not memory used


def _series(ctx: RunContext, want: set[str], also: set[str]) -> list:
    found = []
    for name, series in ctx.series.items():
        tokens = {t for t in NAME_SPLIT.split(name.lower()) if t}
        named = want <= tokens and (not also or tokens & also) or bool(want and _WANDB_GPU.search(name))
        if named and np.isfinite(series.values).sum() >= MIN_SAMPLES:
            found.append(series)
    return found


@register("gpu-utilization", title="The GPU is kept busy")
def gpu_utilization(ctx: RunContext):
    """A GPU utilization series (percent; a 0-1 fraction is scaled) with a median under 20% (starved: the
    input pipeline cannot feed it), or >= 10 samples at <= 1% between busy samples (a stall)."""
    found = _series(ctx, {"gpu"}, {"utilization", "util", "usage"})
    found = [s for s in found if not {"memory", "mem"} & set(NAME_SPLIT.split(s.name.lower()))]
    if not found:
        raise Skip(f"no GPU utilization series with >= {MIN_SAMPLES} samples (e.g. MLflow's "
                   f"system/gpu_0_utilization_percentage, log_system_metrics=True)")
    for series in found:
        values = series.values[np.isfinite(series.values)]
        values = values * 100.0 if values.max() <= 1.0 else values
        median = float(np.median(values))
        if median < STARVED_MEDIAN:
            yield Flag("warning", f"'{series.name}' has a median of {median:.0f}% over {values.size} samples: the "
                                  f"GPU mostly waits (starved).",
                       "Feed it faster: more DataLoader workers, pin_memory=True, decode/augment on the GPU or "
                       "cache preprocessed data; or use a larger batch.",
                       {"series": series.name, "median_percent": r(median), "samples": int(values.size)})
            continue
        stall = _stall(values)
        if stall is not None:
            yield Flag("warning", f"'{series.name}' drops to <= {STALL_IDLE:g}% for {stall[1]} consecutive samples "
                                  f"(from sample {stall[0]}) between busy stretches: the GPU stalled.",
                       "Look at what the job did then (a synchronous checkpoint or evaluation, a data loader "
                       "that blocked, another process on the GPU).",
                       {"series": series.name, "from_sample": stall[0], "samples": stall[1]})


def _stall(values: np.ndarray) -> tuple[int, int] | None:
    """(first sample, length) of the first run of >= 10 idle samples with busy samples before and after."""
    idle = values <= STALL_IDLE
    start = None
    for i, flag in enumerate(np.append(idle, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= STALL_SAMPLES and (values[:start] > STALL_BUSY).any() and \
                    (values[i:] > STALL_BUSY).any():
                return start, i - start
            start = None
    return None


@register("memory-growth", title="Memory does not keep growing")
def memory_growth(ctx: RunContext):
    """A memory series whose medians over 5 consecutive fifths of the run all increase, the last >= 1.2x
    the first: memory that grows epoch after epoch (tensors kept in a list, a loss accumulated with its
    graph, a cache without a bound)."""
    found = [s for s in _series(ctx, set(), {"memory", "mem", "rss"})
             if not any(t.startswith(_NOT_IN_USE) for t in NAME_SPLIT.split(s.name.lower()))]
    if not found:
        raise Skip(f"no memory series with >= {MIN_SAMPLES} samples (e.g. MLflow's "
                   f"system/system_memory_usage_megabytes)")
    grown = []
    for series in found:
        values = series.values[np.isfinite(series.values)]
        medians = np.array([np.median(part) for part in np.array_split(values, GROWTH_PARTS)])
        if np.all(np.diff(medians) > 0) and medians[0] > 0 and medians[-1] >= GROWTH_RATIO * medians[0]:
            grown.append((series, medians))
    if not grown:
        return
    series, medians = grown[0]  # one finding for one leak, however many series show it (W&B logs three)
    more = f" ({', '.join(repr(s.name) for s, _ in grown[1:])} too)" if len(grown) > 1 else ""
    yield Flag("warning", f"'{series.name}' grows through the whole run: {medians[0]:.4g} -> {medians[-1]:.4g} "
                          f"(medians of its first and last fifths, every fifth higher){more}.",
               "Look for tensors kept across steps (appending losses without .item() or .detach(), "
               "lists of outputs), caches without a bound, or a growing DataLoader worker footprint.",
               {"series": series.name, "fifths": [r(m) for m in medians], "ratio": r(medians[-1] / medians[0]),
                "also": [s.name for s, _ in grown[1:]]})
