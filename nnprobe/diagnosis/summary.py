"""Per-run metric summary (best validation accuracy and where it was reached, ...) and the diagnosis of
several paths at once (`nnprobe diagnose runs/*`). One place for the summary: `diagnose` stores it on
each run (and in its JSON), and `compare` reads it back from there."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnprobe.diagnosis.results import Diagnosis, RunReport
from nnprobe.errors import UsageError

SUMMARY_KEYS = ("best val_acc", "best val_acc epoch", "best val_acc step", "final val_acc", "lowest val_loss",
                "last step")


def run_summary(roles: dict[str, Any]) -> dict[str, float | None]:
    """Best val_acc and where (epoch when logged, step), the final val_acc, the lowest val_loss and the last
    step, from a run's role -> Series map; None where the run did not log what a value needs."""
    summary: dict[str, float | None] = dict.fromkeys(SUMMARY_KEYS)
    acc, loss = roles.get("val_acc"), roles.get("val_loss")
    if acc is not None and np.isfinite(acc.values).any():
        finite = np.flatnonzero(np.isfinite(acc.values))
        best = int(finite[int(np.argmax(acc.values[finite]))])
        epoch = acc.epoch_at(best)
        summary["best val_acc"] = float(acc.values[best])
        summary["best val_acc epoch"] = float(epoch) if epoch is not None else None
        summary["best val_acc step"] = float(acc.steps[best])
        summary["final val_acc"] = float(acc.values[finite[-1]])
    if loss is not None and np.isfinite(loss.values).any():
        summary["lowest val_loss"] = float(np.min(loss.values[np.isfinite(loss.values)]))
    steps = [int(s.steps[-1]) for s in roles.values() if len(s)]
    summary["last step"] = float(max(steps)) if steps else None
    return summary


def diagnose_many(paths: Sequence[str | os.PathLike], **options: Any) -> Diagnosis:
    """Each path diagnosed as `diagnose(path)` does, joined into one Diagnosis. A run is named by its path
    when the path holds one run, else path/run, so runs of different paths never share a name."""
    from nnprobe.diagnosis import diagnose

    tops = [os.fspath(p) for p in paths]
    if not tops:
        raise UsageError("diagnose needs at least one run folder or log file.")
    seen: dict[str, str] = {}
    for top in tops:
        real = os.path.realpath(top)
        if real in seen:
            raise UsageError(f"{top} is given twice (also as {seen[real]}); give each run once.")
        seen[real] = top
    if len(tops) == 1:
        return diagnose(tops[0], **options)
    parts = [diagnose(top, **options) for top in tops]
    runs = tuple(_renamed(run, part.path if len(part.runs) == 1 else os.path.join(part.path, run.path))
                 for part in parts for run in part.runs)
    return Diagnosis(path=" ".join(tops), runs=runs, fail_on=parts[0].fail_on,
                     extra_findings=tuple(f for part in parts for f in part.extra_findings),
                     seconds=round(sum(part.seconds for part in parts), 3))


def _renamed(run: RunReport, name: str) -> RunReport:
    """The run under another name, its findings too (a finding names the run it belongs to)."""
    if name == run.path:
        return run
    outcomes = tuple(dataclasses.replace(o, findings=tuple(dataclasses.replace(f, run=name) for f in o.findings))
                     for o in run.outcomes)
    return dataclasses.replace(run, path=name, outcomes=outcomes)
