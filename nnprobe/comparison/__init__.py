"""`compare`: a candidate result against a baseline result of the same kind (eval, robust or diagnose), on
the same data, with gates that move with the baseline ("no more than 0.3 points worse than main, beyond
noise") instead of fixed floors.

Inputs are result JSON files (`--format json`), dicts of that shape or result objects; their per-sample
files (`--save-predictions`) are found from the path each result records and verified by sha256, and
then the comparison is image by image (flips, McNemar). Imports neither torch nor the report layer.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from nnprobe.comparison.loading import Side, data_difference, load_side, with_rows
from nnprobe.comparison.mcnemar import mcnemar_p
from nnprobe.comparison.options import Options
from nnprobe.comparison.results import ClassDelta, Comparison, EpsDelta, FindingChange, Flips, MetricDelta
from nnprobe.comparison.thresholds import parse_alpha, parse_drop
from nnprobe.errors import DataError, UsageError

__all__ = ["compare", "Comparison", "MetricDelta", "Flips", "ClassDelta", "EpsDelta", "FindingChange",
           "mcnemar_p", "parse_drop", "parse_alpha"]


def compare(baseline: Any, candidate: Any, *, max_drop_top1: Any = None, max_drop_top5: Any = None,
            max_class_drop: Any = None, alpha: Any = None, allow_different_data: bool = False,
            run_summaries: tuple[dict, dict] | None = None, names: tuple[str, str] | None = None,
            confidence: Any = 0.95) -> Comparison:
    """Compare `candidate` with `baseline` (paths to result JSON, dicts, or result objects).

    Drop thresholds are fractions (0.003) or points ("0.3pt", "0.3%"); with `alpha` a drop gate fails only
    when McNemar's p < alpha too. `run_summaries`: diagnose only, the runs' metric summaries when read
    from their logs (`diagnose --baseline`: diagnose_compare.with_baseline); `names`: how to call the two sides in the report
    (default: their paths, or the result type); `confidence`: the level of the interval on each delta."""
    options = Options.parse(max_drop_top1=max_drop_top1, max_drop_top5=max_drop_top5,
                            max_class_drop=max_class_drop, alpha=alpha, allow_different_data=allow_different_data,
                            confidence=confidence)
    base, cand = load_side(baseline, "baseline"), load_side(candidate, "candidate")
    if names is not None:
        base, cand = dataclasses.replace(base, origin=names[0]), dataclasses.replace(cand, origin=names[1])
    if base.kind != cand.kind:
        raise UsageError(f"cannot compare a {base.kind} result ({base.origin}) with a {cand.kind} result "
                         f"({cand.origin}): give two results of one kind.")
    if base.kind == "diagnose":
        return _compare_diagnoses(base, cand, options, run_summaries)
    return _compare_measurements(with_rows(base), with_rows(cand), options)


def _compare_measurements(base: Side, cand: Side, options: Options) -> Comparison:
    from nnprobe import kinds
    from nnprobe.comparison.robust_compare import eps_difference

    difference = data_difference(base, cand)
    if difference is None and base.kind == "robust":
        difference = eps_difference(base, cand)
    if difference and not options.allow_different_data:
        raise DataError(f"Refusing to compare: {difference} (allow_different_data / --allow-different-data "
                        "compares the aggregates anyway).")
    both_rows = base.rows is not None and cand.rows is not None
    paired = both_rows and difference is None
    if options.alpha is not None and not paired:
        why = "the same images on both sides" if both_rows else \
            "per-sample files in both results (run with --save-predictions)"
        raise UsageError(f"alpha needs paired images, so {why}.")
    notes = _notes(base, cand, difference, both_rows)
    same = False if difference else (True if (both_rows or (base.fingerprint and cand.fingerprint)) else None)
    fields = kinds.named(base.kind).piece("compare")(base, cand, options, paired)
    return Comparison(compared=base.kind, baseline=base.origin, candidate=cand.origin, same_data=same,
                      paired=paired, notes=tuple(notes), options=options.as_dict(), **fields)


def _notes(base: Side, cand: Side, difference: str | None, both_rows: bool) -> list[str]:
    from nnprobe.kinds import version_difference

    notes = []
    versions = version_difference(base.body, cand.body)
    if versions:
        notes.append(f"The two results were written by different versions ({versions}): a difference may come "
                     "from the install, not the model.")
    if difference:
        notes.append(f"Different data allowed: {difference}; only the aggregates are compared.")
    for side in (base, cand):
        if not side.fingerprint:
            notes.append(f"The {side.role} has no data fingerprint (an older result): that both runs saw the "
                         "same images is " + ("checked from the per-sample files only." if both_rows
                                              else "not verified."))
    if not both_rows:
        missing = [s.role for s in (base, cand) if s.rows is None]
        notes.append(f"No per-sample file for the {' and '.join(missing)}: no flips and no McNemar test "
                     "(write them with --save-predictions).")
    return notes


def _compare_diagnoses(base: Side, cand: Side, options: Options, summaries: tuple[dict, dict] | None) -> Comparison:
    from nnprobe.comparison.diagnose_compare import match_findings, new_errors_gate, summary_deltas

    if any(v is not None for v in (options.max_drop_top1, options.max_drop_top5, options.max_class_drop,
                                   options.alpha)):
        raise UsageError("the drop gates and alpha apply to eval and robust results; diagnose comparisons "
                         "gate on new error findings.")
    single = len(base.body.get("runs") or ()) == 1 and len(cand.body.get("runs") or ()) == 1
    found = match_findings(base.body, cand.body, single)
    notes = []
    if summaries is None:
        metrics: tuple[MetricDelta, ...] = ()
        notes.append("A diagnose JSON holds no metric summary (its curves are bin means): findings only; "
                     "compare the run folders for best-epoch metrics.")
    else:
        metrics = summary_deltas(*summaries)
    gate = new_errors_gate(found["new"], found["changed"])
    return Comparison(compared="diagnose", baseline=base.origin, candidate=cand.origin, same_data=None,
                      paired=False, metrics=metrics, gates=(gate,), notes=tuple(notes),
                      options=options.as_dict(), **found)
