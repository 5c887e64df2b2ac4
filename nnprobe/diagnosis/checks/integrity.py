"""Whether the logs themselves can be trusted and the run finished: unreadable, truncated or corrupt
files, an ignored class count, a run that stopped before its planned end or stalled, and restarts
(reported, resolved by wall time)."""
from __future__ import annotations

import os

import numpy as np

from nnprobe.diagnosis.checks._util import at, r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register

# A pause in the wall-clock times that is 20x the median interval and at least 10 minutes is a stall
# (data loader, collective hang, pre-emption); shorter pauses are checkpointing or evaluation.
STALL_FACTOR = 20.0
STALL_MIN_SECONDS = 600.0


def _by_file(ctx: RunContext, kind: str) -> dict[str, list]:
    files: dict[str, list] = {}
    for issue in ctx.issues:
        if issue.kind == kind:
            files.setdefault(issue.path, []).append(issue)
    return files


@register("log-unreadable", title="Log files readable")
def log_unreadable(ctx: RunContext):
    """A log that gave nothing (not a regular file, over its size cap, not its format at all) is an error:
    a gate must never silently pass over a log it could not read. A run with no point at all is one too
    (it is reported beside other runs; alone it is an input error)."""
    unreadable = _by_file(ctx, "unreadable")
    for path, issues in unreadable.items():
        yield Flag("error", f"{os.path.basename(path)} could not be read: it {issues[0].detail}.",
                   "Point diagnose at the real log (a copy still in progress, a pipe or a device is not one), "
                   "or move the file out of the run folder; its metrics were not judged.",
                   {"file": path, "detail": issues[0].detail})
    if not unreadable and not any(len(s) for s in ctx.series.values()):
        yield Flag("error", "no metric value could be read from this run's logs.",
                   "Check that the run logged scalars (and flushed them) before judging it.", {})


@register("log-truncated", title="Log files complete")
def log_truncated(ctx: RunContext):
    """A file whose last record or line was cut while being written (both EventAccumulator and tbparse
    drop it silently); the records before it are used."""
    for path, issues in _by_file(ctx, "truncated").items():
        yield Flag("warning", f"{os.path.basename(path)} is truncated: {issues[0].detail}.",
                   "The writer was killed before it flushed (out of memory, pre-emption, disk full): check the "
                   "job's exit status; the last logged values are missing.",
                   {"file": path, "offset": issues[0].offset})


@register("log-corrupt", title="Log records intact")
def log_corrupt(ctx: RunContext):
    """Records that fail their CRC or do not decode, lines that do not parse: skipped and counted."""
    for path, issues in _by_file(ctx, "corrupt").items():
        yield Flag("warning", f"{os.path.basename(path)}: {len(issues)} damaged record(s) left out; first: "
                              f"{issues[0].detail}.",
                   "The file was damaged (disk error, two writers on one file, a copy still in progress): "
                   "copy it again from the source; the other records were used.",
                   {"file": path, "count": len(issues), "offset": issues[0].offset})


@register("num-classes-ignored", title="Class count readable")
def num_classes_ignored(ctx: RunContext):
    """A num_classes/num_labels in hparams.yaml or config.json that is not an integer 2..10^9 (negative,
    a string, 5000 digits) is ignored, and said: the checks that need K then say they are skipped."""
    for issue in ctx.issues:
        if issue.kind == "invalid":
            yield Flag("warning", f"{issue.detail}.",
                       "Fix the value in that file or pass --num-classes K.", {"file": issue.path})


@register("run-stopped-early", title="Run reached its planned end")
def run_stopped_early(ctx: RunContext):
    """HF trainer_state.json states max_steps; a run that neither reached it nor logged its final
    summary (train_runtime) stopped early (crash, time limit)."""
    planned = ctx.meta.get("max_steps")
    if not isinstance(planned, (int, float)) or planned <= 0:
        raise Skip("the logs do not state the planned length (only trainer_state.json's max_steps does)")
    reached = int(ctx.meta.get("global_step") or ctx.last_step)
    if reached < planned and not ctx.meta.get("finished"):
        yield Flag("warning", f"the run stopped at step {reached} of {int(planned)} planned "
                              f"({reached / planned:.0%}) without a final summary.",
                   "Check the job's exit status and logs (crash, out of memory, time limit); resume from the "
                   "last checkpoint.", {"step": reached, "max_steps": int(planned)})


@register("run-stalled", title="No stall in the logs")
def run_stalled(ctx: RunContext):
    """A wall-clock pause >= 20x the median logging interval and >= 10 minutes."""
    timed = [s for s in ctx.series.values() if len(s) > 2 and np.all(np.isfinite(s.walls))]
    if not timed:
        raise Skip("no wall-clock times in the logs (only event files and timed JSON lines have them)")
    series = ctx.roles.get("train_loss")
    if series is None or series not in timed:
        series = max(timed, key=len)
    gaps = np.diff(series.walls)
    median = float(np.median(gaps))
    k = int(np.argmax(gaps))
    if gaps[k] >= max(STALL_MIN_SECONDS, STALL_FACTOR * median):
        yield Flag("warning", f"no log of '{series.name}' for {gaps[k] / 60:.1f} minutes before step "
                              f"{int(series.steps[k + 1])} (median interval {median:.3g} s): the job stalled "
                              f"or was restarted.",
                   "Look at the job's logs around that time: a hung data loader or collective, pre-emption, "
                   "or a slow checkpoint write.",
                   {"series": series.name, **at(series, k + 1), "gap_seconds": r(gaps[k]),
                    "median_seconds": r(median)})


@register("run-restarted", title="Restarts resolved")
def run_restarted(ctx: RunContext):
    """Steps logged again after a resume: the later write was kept, nothing counted twice (info)."""
    if ctx.superseded:
        yield Flag("info", f"{ctx.superseded} points were logged again after a restart; the later writes "
                           f"were kept.",
                   "Nothing to fix if the resume was intended; otherwise check why the job restarted.",
                   {"superseded_points": ctx.superseded})
