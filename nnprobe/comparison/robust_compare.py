"""robust vs robust: robust top-1 per matched budget, the same drop gates at every budget, and (with both
per-sample files) the images fooled at a smaller budget than before."""
from __future__ import annotations

import math
from typing import Any

from nnprobe.comparison.flips import flips
from nnprobe.comparison.loading import Side
from nnprobe.comparison.options import SHOWN_PATHS, Options
from nnprobe.comparison.results import EpsDelta, MetricDelta
from nnprobe.comparison.thresholds import drop_gate
from nnprobe.errors import DataError, UsageError
from nnprobe.results import Gate, format_eps

TOLERANCE = 1e-9  # two budgets this close are the same eps (k/255 written by different runs)


def _points(side: Side) -> list[dict[str, Any]]:
    points = side.body.get("points")
    if not isinstance(points, list) or not points:
        raise DataError(f"the {side.role} {side.origin} has no robust points.")
    return points


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE


def eps_difference(base: Side, cand: Side) -> str | None:
    """The first budget in one sweep but not the other (None when the sweeps match)."""
    left = [float(p["eps"]) for p in _points(base)]
    right = [float(p["eps"]) for p in _points(cand)]
    for eps in left:
        if not any(_same(eps, other) for other in right):
            return f"eps {format_eps(eps)} is in the baseline's sweep but not the candidate's"
    for eps in right:
        if not any(_same(eps, other) for other in left):
            return f"eps {format_eps(eps)} is in the candidate's sweep but not the baseline's"
    return None


def _right_at(row: dict[str, Any], eps: float) -> bool:
    """Right at top-1 at budget eps: clean right and not yet fooled (fell_at None = never fooled)."""
    fell = row.get("fell_at")
    return bool(row.get("clean_correct")) and (fell is None or fell > eps + TOLERANCE)


def _fell(row: dict[str, Any]) -> float:
    fell = row.get("fell_at")
    return math.inf if fell is None else float(fell)


def _point_at(side: Side, eps: float) -> dict[str, Any]:
    return next(p for p in _points(side) if _same(float(p["eps"]), eps))


def matched_points(base: Side, cand: Side, pairs: list | None) -> tuple[EpsDelta, ...]:
    after = _points(cand)
    found = []
    for point in _points(base):
        eps = float(point["eps"])
        other = next((p for p in after if _same(float(p["eps"]), eps)), None)
        if other is None:
            continue
        paired = flips((a["path"], _right_at(a, eps), _right_at(b, eps)) for a, b in pairs) if pairs else None
        found.append(EpsDelta(eps, int(point["correct_top1"]), int(point["total"]), int(other["correct_top1"]),
                              int(other["total"]), paired))
    return tuple(found)


def robust_gates(options: Options, points: tuple[EpsDelta, ...], base: Side, cand: Side) -> tuple[Gate, ...]:
    """max-drop-top1 (and top-5, from the points' counts) at every matched eps."""
    if options.max_class_drop is not None:
        raise UsageError("--max-class-drop applies to eval results; robust results have no per-class counts.")
    if options.max_drop_top5 is not None and options.alpha is not None:
        raise UsageError("--alpha cannot judge --max-drop-top5 on robust results: their per-sample files "
                         "record top-1 verdicts only.")
    gates = []
    for point in points:
        shown = format_eps(point.eps)
        if options.max_drop_top1 is not None:
            gates.append(drop_gate(f"max-drop-top1 eps={shown}", options.max_drop_top1, point.drop,
                                   p=point.flips.p if point.flips else None, alpha=options.alpha,
                                   what=f"robust top-1 at eps {shown}"))
        if options.max_drop_top5 is not None:
            before, after = _point_at(base, point.eps), _point_at(cand, point.eps)
            drop = before["correct_top5"] / before["total"] - after["correct_top5"] / after["total"]
            gates.append(drop_gate(f"max-drop-top5 eps={shown}", options.max_drop_top5, drop,
                                   what=f"robust top-5 at eps {shown}"))
    return tuple(gates)


def compare_robust(base: Side, cand: Side, options: Options, paired: bool) -> dict[str, Any]:
    """The robust fields of a Comparison."""
    pairs = list(zip(base.rows, cand.rows)) if paired else None
    points = matched_points(base, cand, pairs)
    fields: dict[str, Any] = dict(points=points, gates=robust_gates(options, points, base, cand),
                                  metrics=tuple(MetricDelta(f"robust top1 eps={format_eps(p.eps)}",
                                                            p.baseline_top1, p.candidate_top1) for p in points))
    if pairs is not None:
        earlier = [a["path"] for a, b in pairs if _fell(b) < _fell(a)]
        fields.update(fell_earlier=len(earlier), fell_later=sum(_fell(b) > _fell(a) for a, b in pairs),
                      fell_earlier_paths=tuple(earlier[:SHOWN_PATHS]))
    return fields
