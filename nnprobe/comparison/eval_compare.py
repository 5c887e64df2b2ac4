"""eval vs eval: top-1/top-5/loss/ECE deltas, the classes that lost most, the flipped images, and the gates."""
from __future__ import annotations

from typing import Any

from nnprobe.comparison.delta_intervals import DEFAULT_ALPHA, with_intervals
from nnprobe.comparison.flips import flips
from nnprobe.comparison.loading import Side
from nnprobe.comparison.mcnemar import mcnemar_p
from nnprobe.comparison.options import SHOWN_CLASSES, Options
from nnprobe.comparison.results import ClassDelta, Flips, MetricDelta
from nnprobe.comparison.thresholds import drop_gate
from nnprobe.errors import UsageError
from nnprobe.intervals import minimal_detectable_drop
from nnprobe.results import Gate


def _number(body: dict[str, Any], *keys: str) -> float | None:
    value: Any = body
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def eval_metrics(base: dict[str, Any], cand: dict[str, Any]) -> tuple[MetricDelta, ...]:
    """top-1, top-5, mean loss, and ECE when both results carry calibration."""
    metrics = [MetricDelta(name, _number(base, name), _number(cand, name)) for name in ("top1", "top5", "mean_loss")]
    if isinstance(base.get("calibration"), dict) and isinstance(cand.get("calibration"), dict):
        metrics.append(MetricDelta("ece", _number(base, "calibration", "ece"), _number(cand, "calibration", "ece")))
    return tuple(metrics)


def _top5_right(row: dict[str, Any]) -> bool:
    return row["label"] in row["top5"]


def _top1_right(row: dict[str, Any]) -> bool:
    return bool(row["correct"]) if "correct" in row else row["top5"][0] == row["label"]


def paired_flips(pairs: list[tuple[dict, dict]]) -> tuple[Flips, Flips]:
    """(top-1 flips, top-5 flips) over the paired rows."""
    top1 = flips((a["path"], _top1_right(a), _top1_right(b)) for a, b in pairs)
    top5 = flips((a["path"], _top5_right(a), _top5_right(b)) for a, b in pairs)
    return top1, top5


def _class_p_values(pairs: list[tuple[dict, dict]]) -> dict[int, float]:
    """McNemar p per label over that class's paired images."""
    counts: dict[int, list[int]] = {}
    for a, b in pairs:
        before, after = _top1_right(a), _top1_right(b)
        if before != after:
            counts.setdefault(int(a["label"]), [0, 0])[0 if before else 1] += 1
    return {label: mcnemar_p(worse, better) for label, (worse, better) in counts.items()}


def class_deltas(base: dict[str, Any], cand: dict[str, Any], pairs: list | None) -> list[ClassDelta]:
    """Every class with images in both runs, largest top-1 drop first (ties: lower index first)."""
    after = {int(pc["index"]): pc for pc in cand.get("per_class") or ()}
    p_values = _class_p_values(pairs) if pairs is not None else {}
    found = []
    for pc in base.get("per_class") or ():
        index = int(pc["index"])
        other = after.get(index)
        if other is None or not pc.get("total") or not other.get("total"):
            continue
        p = p_values.get(index, 1.0) if pairs is not None else None
        found.append(ClassDelta(index, str(pc.get("name", index)), int(pc["correct_top1"]), int(pc["total"]),
                                int(other["correct_top1"]), int(other["total"]), p))
    return sorted(found, key=lambda c: (-c.drop, c.index))


def eval_gates(options: Options, metrics: tuple[MetricDelta, ...], classes: list[ClassDelta],
               top1: Flips | None, top5: Flips | None) -> tuple[Gate, ...]:
    value = {m.name: m for m in metrics}
    gates = []
    for name, threshold, key, paired in (("max-drop-top1", options.max_drop_top1, "top1", top1),
                                         ("max-drop-top5", options.max_drop_top5, "top5", top5)):
        if threshold is None:
            continue
        metric = value[key]
        if metric.delta is None:
            raise UsageError(f"--{name} needs {key} in both results.")
        gates.append(drop_gate(name, threshold, -metric.delta, p=paired.p if paired else None,
                               alpha=options.alpha, what=key.replace("top", "top-")))
    if options.max_class_drop is not None:
        gates.append(class_gate(options.max_class_drop, options.alpha, classes))
    return tuple(gates)


def class_gate(threshold: float, alpha: float | None, classes: list[ClassDelta]) -> Gate:
    """The largest per-class top-1 drop allowed: the worst failing class is named, else the worst class."""
    if not classes:
        raise UsageError("--max-class-drop needs per-class counts (per_class) in both results.")
    failing = [c for c in classes
               if not drop_gate("", threshold, c.drop, p=c.p, alpha=alpha).passed]
    worst = failing[0] if failing else classes[0]
    what = (f"class {worst.name} ({worst.baseline_correct}/{worst.baseline_total} -> "
            f"{worst.candidate_correct}/{worst.candidate_total})")
    gate = drop_gate("max-class-drop", threshold, worst.drop, p=worst.p, alpha=alpha, what=what)
    if len(failing) > 1:
        gate = Gate(gate.name, gate.threshold, gate.measured, gate.passed,
                    f"{gate.message} ({len(failing)} classes fail)")
    return gate


def compare_eval(base: Side, cand: Side, options: Options, paired: bool) -> dict[str, Any]:
    """The eval fields of a Comparison."""
    pairs = list(zip(base.rows, cand.rows)) if paired else None
    metrics = with_intervals(eval_metrics(base.body, cand.body), base.body, cand.body, pairs,
                             {"top1": _top1_right, "top5": _top5_right}, options.confidence)
    classes = class_deltas(base.body, cand.body, pairs)
    top1, top5 = paired_flips(pairs) if pairs is not None else (None, None)
    shown = tuple(c for c in classes[:SHOWN_CLASSES] if c.drop > 0)
    detectable = minimal_detectable_drop(len(pairs), options.alpha or DEFAULT_ALPHA) if pairs else None
    return dict(metrics=metrics, classes=shown, flips_top1=top1, flips_top5=top5,
                gates=eval_gates(options, metrics, classes, top1, top5), minimal_detectable_drop=detectable)
