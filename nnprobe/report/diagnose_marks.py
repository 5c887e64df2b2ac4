"""What diagnose's `--plot` marks on a run's figure, computed without matplotlib: every NaN/Inf point of a
loss or accuracy curve, every finding (each error finding always: at its step, over its window, at its level,
or listed under the figure when it has no place on the step axis), the best epoch; and the short stable file
name each run's figure gets.

A finding is marked by the rule its check registers in MARKERS (overfitting at the epoch of the lowest
validation loss, divergence at the loss's peak, constant prediction over the window the accuracy froze,
chance accuracy as the chance level), else at the step its evidence names. Tests walk every check that can
give an error finding and assert its mark, so a new check cannot be half-wired.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

PANELS = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_acc", "val_acc")))


class Mark(NamedTuple):
    kind: str  # not-finite | finding | span | level | note | best
    label: str  # the role (not-finite, best) or the check id
    step: int | None  # where on the step axis (span: its start; level, note: None)
    end: int | None = None  # span: its last step
    value: float | None = None  # level: the accuracy (or loss) it is drawn at
    panel: str = "loss"  # loss | accuracy: which panel carries it
    severity: str = ""
    text: str = ""  # the words drawn beside it


def _step(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("step")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    return None


def finding_step(finding) -> int | None:
    """Where a finding happened: its evidence's step, or the step of its evidence's `at`."""
    evidence = finding.evidence or {}
    return _step(evidence.get("step")) if _step(evidence.get("step")) is not None else _step(evidence.get("at"))


def _epoch_text(place: Any) -> str:
    epoch = place.get("epoch") if isinstance(place, dict) else None
    return f"epoch {epoch:g}" if isinstance(epoch, (int, float)) else f"step {_step(place)}"


def _overfitting(finding, run) -> Mark | None:
    best = (finding.evidence or {}).get("best_at")
    step = _step(best)
    return None if step is None else Mark("finding", finding.id, step, severity=finding.severity,
                                          text=f"overfitting from {_epoch_text(best)}")


def _divergence(finding, run) -> Mark | None:
    peak = (finding.evidence or {}).get("peak_at")
    step = _step(peak)
    return None if step is None else Mark("finding", finding.id, step, severity=finding.severity,
                                          text="divergence (peak)")


def _constant(finding, run) -> Mark | None:
    evidence = finding.evidence or {}
    start = _step(evidence.get("from"))
    series = run.series.get("val_acc")
    if start is None or series is None or not len(series):
        return None
    value = evidence.get("value")
    return Mark("span", finding.id, start, int(series.steps[-1]), panel="accuracy", severity=finding.severity,
                text="constant" + (f" {value:.4g}" if isinstance(value, (int, float)) else ""))


def _chance(finding, run) -> Mark | None:
    chance = (finding.evidence or {}).get("chance")
    if not isinstance(chance, (int, float)) or not math.isfinite(chance):
        return None
    return Mark("level", finding.id, None, value=float(chance), panel="accuracy", severity=finding.severity,
                text=f"chance {chance:.3g}")


# check id -> how its finding is marked (None: fall back to its evidence's step, else a note under the figure)
MARKERS: dict[str, Callable[[Any, Any], Mark | None]] = {
    "overfitting": _overfitting, "divergence": _divergence, "constant-prediction": _constant,
    "chance-accuracy": _chance,
}


def finding_mark(finding, run) -> Mark | None:
    """The mark of one finding: its check's rule, else its step; an error finding with neither is a note."""
    rule = MARKERS.get(finding.id)
    mark = rule(finding, run) if rule is not None else None
    if mark is None and (step := finding_step(finding)) is not None:
        mark = Mark("finding", finding.id, step, severity=finding.severity, text=finding.id)
    if mark is None and finding.severity == "error":
        mark = Mark("note", finding.id, None, severity=finding.severity, text=f"{finding.id}: {finding.message}")
    return mark


def run_marks(run, findings) -> list[Mark]:
    """Every mark of a run's figure: one not-finite per NaN/Inf point of a loss or accuracy curve, one per
    finding (finding_mark), the best epoch."""
    marks = []
    for panel, roles in PANELS:
        for role in roles:
            series = run.series.get(role)
            if series is not None and len(series):
                marks += [Mark("not-finite", role, int(s), panel=panel, severity="error", text="NaN/Inf")
                          for s in series.steps[~np.isfinite(series.values)]]
    marks += [mark for f in findings if (mark := finding_mark(f, run)) is not None]
    best = (run.summary or {}).get("best val_acc step")
    if best is not None:
        marks.append(Mark("best", "val_acc", int(best), value=(run.summary or {}).get("best val_acc"),
                          panel="accuracy", text="best val_acc"))
    return marks


def plot_file_names(names) -> dict[str, str]:
    """Run name -> a short stable name for its figure: the run's last path part (letters, digits, '.', '_',
    '-'; others become '_'), with a short hash of the whole name when two runs' last parts collide (also when
    only their case differs), so the name never depends on which other runs were drawn beside it."""
    names = list(names)
    stems = {name: re.sub(r"[^A-Za-z0-9._-]+", "_", re.split(r"[/\\]", name.rstrip("/\\"))[-1]).strip("._")[:60]
             or "run" for name in names}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    files = {}
    for name, stem in stems.items():
        if counts[stem.lower()] > 1:
            stem = f"{stem}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        files[name] = stem + ".png"
    return files
