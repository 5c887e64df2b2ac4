"""diagnose vs diagnose: findings new in the candidate, gone, changed in words, unchanged; the metric
summary of each run (best validation accuracy, where it was reached) when the runs' logs were read.

A diagnose JSON carries findings and sparkline curves (bin means, not the logged values), so from two
JSON files only findings are compared; two runs (`diagnose --baseline`, and `compare RUN_A RUN_B`, which
calls it) are compared on their logs: summaries, values at the same epoch (else step), where the loss rises above.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from nnprobe.comparison.results import FindingChange, MetricDelta
from nnprobe.results import Gate

ONE_RUN = "(the run)"  # a folder holding one run: both sides' runs are that run, whatever the folder names


def _run_names(body: dict[str, Any]) -> dict[str, str]:
    """Each side's run names -> the name they are matched on (one run each: matched whatever its path)."""
    runs = [run.get("path", "") for run in body.get("runs") or ()]
    return {runs[0]: ONE_RUN} if len(runs) == 1 else {name: name for name in runs}


def _findings(body: dict[str, Any], names: dict[str, str]) -> list[FindingChange]:
    return [FindingChange(str(f.get("id")), names.get(f.get("run", ""), f.get("run", "")), str(f.get("severity")),
                          str(f.get("message"))) for f in body.get("findings") or ()]


def match_findings(base: dict[str, Any], cand: dict[str, Any], single: bool) -> dict[str, tuple]:
    """new / gone / changed / unchanged, matched first on (id, run, severity, message), then on (id, run)
    in order (a finding whose words or severity changed)."""
    names_b = _run_names(base) if single else {}
    names_c = _run_names(cand) if single else {}
    before, after = _findings(base, names_b), _findings(cand, names_c)
    unchanged = []
    for finding in list(after):
        twin = next((f for f in before if f == finding), None)  # same id, run, severity and words
        if twin is not None:
            before.remove(twin)
            after.remove(finding)
            unchanged.append(finding)
    changed = []
    for finding in list(after):
        twin = next((f for f in before if (f.id, f.run) == (finding.id, finding.run)), None)
        if twin is not None:
            before.remove(twin)
            after.remove(finding)
            changed.append(FindingChange(finding.id, finding.run, finding.severity, finding.message,
                                         twin.severity, twin.message))
    return dict(new=tuple(after), gone=tuple(before), changed=tuple(changed), unchanged=tuple(unchanged))


def new_errors_gate(new: tuple[FindingChange, ...], changed: tuple[FindingChange, ...]) -> Gate:
    """Fails on an error finding the baseline did not have (new, or a finding that became an error)."""
    errors = [f for f in new if f.severity == "error"]
    errors += [f for f in changed if f.severity == "error" and f.baseline_severity != "error"]
    if errors:
        first = errors[0]
        message = f"{len(errors)} new error finding(s), first: [{first.id}] {first.message}"
    else:
        message = "no new error finding"
    return Gate("no-new-errors", 0.0, float(len(errors)), not errors, message)


def summary_deltas(before: dict[str, dict], after: dict[str, dict]) -> tuple[MetricDelta, ...]:
    """One delta per metric per run matched (by name, or the single run of each)."""
    if len(before) == 1 and len(after) == 1:
        pairs = [(ONE_RUN, next(iter(before.values())), next(iter(after.values())))]
    else:
        pairs = [(name, before[name], after[name]) for name in before if name in after]
    return tuple(MetricDelta(f"{name}: {metric}", value, other[metric])
                 for name, one, other in pairs for metric, value in one.items())


def _by_epoch(series: Any) -> bool:
    epochs = series.epochs
    return bool(len(epochs)) and bool(np.all(np.isfinite(epochs))) and np.unique(epochs).size == epochs.size


def matched(baseline: Any, candidate: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The points both curves logged: (keys, their positions in the baseline, in the candidate, the unit
    matched on). By epoch when both carry one distinct epoch per point (two runs of different batch sizes
    or data sizes share epochs, not steps), else by step. `baseline`/`candidate`: Series."""
    unit = "epoch" if _by_epoch(baseline) and _by_epoch(candidate) else "step"
    keys, ib, ic = np.intersect1d(getattr(baseline, unit + "s"), getattr(candidate, unit + "s"), return_indices=True)
    return keys, ib, ic, unit


def loss_above_from(baseline: Any, candidate: Any) -> dict[str, Any] | None:
    """From where on the candidate's curve stays above the baseline's, on the points both logged (`matched`:
    by epoch, else by step): the first from which every later common point is above (a NaN in the candidate
    counts as above a finite baseline). None when the last common point is not above, or none is shared.
    `baseline`/`candidate`: Series (steps, values, epochs)."""
    keys, ib, ic, unit = matched(baseline, candidate)
    if not keys.size:
        return None
    b, c = baseline.values[ib], candidate.values[ic]
    above = (c > b) | (np.isnan(c) & np.isfinite(b))
    if not above[-1]:
        return None
    below = np.flatnonzero(~above)
    first = int(below[-1]) + 1 if below.size else 0
    return {"step": int(candidate.steps[ic[first]]), "epoch": candidate.epoch_at(int(ic[first])),
            "points": int(keys.size - first), "common": int(keys.size), "unit": unit}


def loss_above_sentence(place: dict[str, Any], run: str = ONE_RUN) -> str:
    """"the candidate's validation loss is above the baseline's from epoch 4 on" (epoch when logged)."""
    where = f"epoch {place['epoch']:g}" if place.get("epoch") is not None else f"step {place['step']}"
    who = "" if run == ONE_RUN else f"{run}: "
    return (f"{who}the candidate's validation loss is above the baseline's from {where} on "
            f"({place['points']} of the {place['common']} {place.get('unit', 'step')}s both logged).")


def same_step_deltas(name: str, base: dict[str, Any], cand: dict[str, Any]) -> tuple[MetricDelta, ...]:
    """val_loss and val_acc of both runs at the last epoch (else step: `matched`) both logged with a finite
    value."""
    deltas = []
    for role in ("val_loss", "val_acc"):
        one, other = base.get(role), cand.get(role)
        if one is None or other is None:
            continue
        keys, ib, ic, unit = matched(one, other)
        ok = np.flatnonzero(np.isfinite(one.values[ib]) & np.isfinite(other.values[ic]))
        if ok.size:
            last = int(ok[-1])
            deltas.append(MetricDelta(f"{name}: at {unit} {float(keys[last]):g} {role}", float(one.values[ib[last]]),
                                      float(other.values[ic[last]])))
    return tuple(deltas)


def _pairs(base_runs: list, cand_runs: list) -> list[tuple[str, Any, Any]]:
    """(name, baseline run, candidate run): the single run of each, or the runs of one name."""
    if len(base_runs) == 1 and len(cand_runs) == 1:
        return [(ONE_RUN, base_runs[0], cand_runs[0])]
    by_name = {run.path: run for run in base_runs}
    return [(run.path, by_name[run.path], run) for run in cand_runs if run.path in by_name]


def _baseline_side(baseline: str, options: dict[str, Any]) -> Any:
    """The baseline as a Diagnosis (a run folder or log file, diagnosed now) or a diagnose JSON's dict."""
    from nnprobe import kinds
    from nnprobe.comparison.loading import is_run
    from nnprobe.diagnosis import diagnose

    if os.path.isfile(baseline) and not is_run(baseline):
        return kinds.read(baseline, "the baseline", ("diagnose",))
    return diagnose(baseline, **options)


def with_baseline(candidate: Any, baseline: str, **options: Any) -> Any:
    """`diagnose --baseline`: the candidate Diagnosis with its comparison against `baseline` (a run folder
    or a diagnose JSON) attached: findings new/gone, metric summaries, values at the same epoch (else step), and from
    where the validation loss stays above the baseline's. `options`: diagnose's, for a baseline folder."""
    import dataclasses

    from nnprobe.comparison import compare

    base = _baseline_side(os.fspath(baseline), options)
    base_runs = list(base.runs) if not isinstance(base, dict) else []
    if isinstance(base, dict):
        base_summaries = {r.get("path", ""): r["summary"] for r in base.get("runs") or () if r.get("summary")}
    else:
        base_summaries = {run.path: run.summary for run in base_runs if run.summary}
    cand_summaries = {run.path: run.summary for run in candidate.runs if run.summary}
    summaries = (base_summaries, cand_summaries) if base_summaries and cand_summaries else None
    result = compare(base, dataclasses.replace(candidate, comparison=None), run_summaries=summaries,
                     names=(os.fspath(baseline), candidate.path))
    metrics, notes = list(result.metrics), list(result.notes)
    if isinstance(base, dict):
        notes.append("The baseline is a diagnose JSON: values at the same step need its run folder.")
    for name, one, other in _pairs(base_runs, list(candidate.runs)):
        metrics += same_step_deltas(name, one.series, other.series)
        if one.series.get("val_loss") is not None and other.series.get("val_loss") is not None:
            place = loss_above_from(one.series["val_loss"], other.series["val_loss"])
            if place is not None:
                notes.append(loss_above_sentence(place, name))
    result = dataclasses.replace(result, metrics=tuple(metrics), notes=tuple(notes))
    return dataclasses.replace(candidate, comparison=result)
