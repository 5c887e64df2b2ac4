"""`diagnose`: read a training run's logs (any of the common formats) and judge what went wrong.

The core reads and judges only: it never prints, never exits, never imports click, rich or torch.
Input from which not one point can be read raises `InputError` (exit 2 at the CLI): a gate never passes
on nothing. A file that cannot be read beside readable ones is an error finding (`log-unreadable`), and
everything else becomes findings too.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence

import numpy as np

from nnprobe.diagnosis.results import FAIL_LEVELS, CheckOutcome, Diagnosis, Finding, RunReport
from nnprobe.errors import InputError, UsageError

__all__ = ["diagnose", "log_files", "Diagnosis", "Finding", "CheckOutcome", "RunReport"]
CURVE_POINTS = 48


def class_count(num_classes: int | None, class_hints, roles) -> tuple[int | None, str]:
    """K for the chance and init-loss checks, and where it came from: the flag, the run's config files, a
    first loss logged at init, or a loss sitting flat at ln K (with accuracy at chance); else unknown."""
    from nnprobe.diagnosis.run import infer_num_classes, infer_num_classes_best, infer_num_classes_flat

    if num_classes is not None:
        return num_classes, "from --num-classes"
    if class_hints:
        return class_hints[0]
    if (k := infer_num_classes(roles.get("train_loss"))) is not None:
        return k, f"inferred from the first loss {float(roles['train_loss'].values[0]):.4g} ~ ln {k}"
    if (best := infer_num_classes_best(roles.get("val_loss"), roles.get("val_acc"))) is not None:
        return best[0], (f"inferred from the lowest validation loss {best[1]:.4g} ~ ln {best[0]}, with the "
                         f"validation accuracy never above chance for it")
    flat = infer_num_classes_flat(roles.get("val_loss") or roles.get("train_loss"),
                                  roles.get("val_acc") if roles.get("val_loss") else None)
    if flat is not None:
        return flat[0], f"inferred from the loss flat at {flat[1]:.4g} ~ ln {flat[0]} over its last evaluations"
    return None, "unknown"


def diagnose(path: str | os.PathLike, *, num_classes: int | None = None,
             metric_overrides: dict[str, str] | Iterable[str] | None = None, fail_on: str = "error",
             verify_crc: bool = True, extra_findings: Sequence[Finding] = (),
             timeout: float | None = None) -> Diagnosis:
    """Judge every run under `path` (a run folder, a folder of runs, or one log file).

    num_classes: K for the chance and init-loss checks; else taken from hparams.yaml / config.json, else
    inferred from a first loss logged at init (said in the report). metric_overrides: {role: series name}
    or ["role=name", ...]. extra_findings: findings from probes beyond the logs, appended as they are.
    timeout: seconds a request to a remote store (s3:// ...) may take to connect or answer (default 20).
    """
    from nnprobe.remote import timeouts

    if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
        raise UsageError(f"timeout must be a number of seconds from 0 to 3600, got {timeout!r}.")
    with timeouts(timeout):
        return _diagnose(path, num_classes, metric_overrides, fail_on, verify_crc, extra_findings)


def _diagnose(path, num_classes, metric_overrides, fail_on, verify_crc, extra_findings) -> Diagnosis:
    from nnprobe.diagnosis.readers import MAX_CLASSES, discover
    from nnprobe.diagnosis.run import load_runs

    started = time.perf_counter()
    if fail_on not in FAIL_LEVELS:
        raise UsageError(f"fail_on must be one of {', '.join(FAIL_LEVELS)}, got {fail_on!r}.")
    if num_classes is not None and not (isinstance(num_classes, int) and 2 <= num_classes <= MAX_CLASSES):
        shown = f"a {_digits(abs(num_classes))}-digit number" \
            if isinstance(num_classes, int) and num_classes.bit_length() > 64 else repr(num_classes)
        raise UsageError(f"--num-classes must be an integer from 2 to {MAX_CLASSES:,}, got {shown}.")
    overrides = parsed_overrides(metric_overrides)
    top = _spelled(os.fspath(path))
    runs_files = discover(top)
    reports = []
    loaded = [run for files in runs_files for run in load_runs(files, verify_crc=verify_crc)]
    if not any(len(one) for run in loaded for one in run.series.values()):
        raise InputError(nothing_read(top, loaded))
    for name in overrides.values():
        if not any(name in run.series for run in loaded):
            raise UsageError(f"--metric names {name!r}, which no run under {top} logged.")
    from nnprobe.remote import is_remote

    for run in loaded:  # a folder's runs (a bucket's too) by their path below it, as given
        display = os.path.relpath(run.path, top) if is_remote(top) or os.path.isdir(top) else run.path
        reports.append(judge_run(run, top if display == "." else display, num_classes, overrides))
    return Diagnosis(path=top, runs=tuple(reports), fail_on=fail_on, extra_findings=tuple(extra_findings),
                     seconds=round(time.perf_counter() - started, 3))


def judge_run(run, display: str, num_classes: int | None, overrides: dict[str, str],
              ids: Sequence[str] | None = None) -> RunReport:
    """One loaded run (run.RunData) judged: roles mapped, K resolved (class_count), the checks run (all, or
    `ids`). The one judging of a run: `diagnose` and `follow` both call it."""
    from nnprobe.diagnosis.checks import RunContext, run_checks
    from nnprobe.diagnosis.roles import map_roles, unplaced
    from nnprobe.diagnosis.summary import run_summary

    roles, mapping = map_roles(run.series, overrides)
    k, source = class_count(num_classes, run.class_hints, roles)
    ctx = RunContext(path=display, roles=roles, series=run.series, num_classes=k, num_classes_source=source,
                     issues=run.issues, meta=run.meta, superseded=run.superseded, histograms=run.histograms,
                     unplaced=unplaced(run.series, roles))
    outcomes: tuple[CheckOutcome, ...] = run_checks(ctx, ids)
    return RunReport(path=display, sources=run.sources, ignored=run.ignored, mapping=mapping, num_classes=k,
                     num_classes_source=source, outcomes=outcomes, curves=_curves(roles),
                     superseded=run.superseded, summary=run_summary(roles), series=dict(roles),
                     histograms=run.histograms)


def parsed_overrides(metric_overrides) -> dict[str, str]:
    """--metric ROLE=NAME given as a dict or as "role=name" texts, parsed once."""
    from nnprobe.diagnosis.roles import parse_overrides

    if isinstance(metric_overrides, dict):
        return parse_overrides(f"{k}={v}" for k, v in metric_overrides.items())
    return parse_overrides(metric_overrides)


def _spelled(path: str) -> str:
    """A local path without a trailing slash or `./` (`run/`, `./run` and `run` name one run, shown once)."""
    from nnprobe.remote import is_remote

    return path if is_remote(path) or not path else os.path.normpath(path)


def _digits(n: int) -> int:
    """Decimal digits of a positive int, even one too long for str() (Python refuses > 4300 digits)."""
    d = int(math.log10(n)) + 1
    return d - 1 if n < 10 ** (d - 1) else d


def log_files(path: str | os.PathLike, timeout: float | None = None) -> list[str]:
    """Every file `diagnose(path)` would read (logs, hparams.yaml, config.json), found without parsing
    them or importing torch: for a guard that refuses to write a report over an input. Paths are as found
    under `path` (resolve them before comparing); [] when `path` holds no log. `timeout` as in diagnose."""
    from nnprobe.diagnosis.readers import log_files as found
    from nnprobe.remote import timeouts

    with timeouts(timeout):
        return found(os.fspath(path))


def nothing_read(top: str, loaded) -> str:
    """One sentence for input that gave no point: the first file that could not be read and why (diagnose
    and follow say the same)."""
    problems = [(issue.path, (" " if issue.kind == "unreadable" else ": ") + issue.detail)
                for run in loaded for issue in run.issues if issue.kind in ("unreadable", "corrupt", "truncated")]
    problems += [(source.path, f" is {source.skipped}") for run in loaded for source in run.sources
                 if source.skipped]
    if problems:
        path, detail = problems[0]
        others = len({p for p, _ in problems}) - 1
        more = f" ({others} more file(s) gave nothing either)" if others > 0 else ""
        return f"no metric could be read from {top}: {path}{detail}{more}."
    return f"no metric could be read from {top}: the log files hold no scalar values."


def _curves(roles) -> dict[str, tuple[float, ...]]:
    """Each loss/accuracy role downsampled to <= 48 bin means for a sparkline; a bin with a non-finite
    point stays NaN so the sparkline shows where the run broke."""
    curves = {}
    for role in ("train_loss", "val_loss", "train_acc", "val_acc"):
        series = roles.get(role)
        if series is None or not len(series):
            continue
        bins = np.array_split(series.values, min(CURVE_POINTS, len(series)))
        curves[role] = tuple(float(b.mean()) if np.all(np.isfinite(b)) else float("nan") for b in bins)
    return curves
