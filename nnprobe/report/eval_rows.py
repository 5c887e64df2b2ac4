"""The rows of eval's metric table, with their intervals: one list that the console table and the markdown
summary both render, so the two cannot show different numbers. Torch-free."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

HEADERS = ("metric", "measured", "interval", "count", "published")


def pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def number(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def span(interval: Any, fmt=pct) -> str:
    """`lo – hi` of an Interval (empty when it has no bounds)."""
    if interval is None or not math.isfinite(interval.lo) or not math.isfinite(interval.hi):
        return ""
    return f"{fmt(interval.lo)} – {fmt(interval.hi)}"


def metric_rows(result: Any) -> list[tuple[str, str, str, str, str]]:
    """(metric, measured, interval, count, published) for each number of an EvalResult."""
    model, variant = result.model, result.variant
    top1 = f"top-1 ({variant.classes}-way, official)" if variant is not None and variant.classes != 1000 else "top-1"
    val = variant is None or variant.name == "val"  # the weights' published numbers are ImageNet val's
    rows = [(top1, pct(result.top1), span(result.top1_interval), f"{result.correct_top1}/{result.total}",
             pct(model.published_top1) if val else ""),
            ("top-5", pct(result.top5), span(result.top5_interval), f"{result.correct_top5}/{result.total}",
             pct(model.published_top5) if val else ""),
            ("mean loss", number(result.mean_loss), "", "", "")]
    if variant is not None and variant.classes != 1000:
        from nnprobe.intervals import clopper_pearson

        every = clopper_pearson(variant.correct_top1_all, variant.total, result.confidence_level)
        rows.insert(1, ("top-1 (1000-way argmax)", pct(variant.top1_all), span(every),
                        f"{variant.correct_top1_all}/{variant.total}", ""))
    if result.real is not None:
        from nnprobe.intervals import clopper_pearson

        real = clopper_pearson(result.real.correct_top1, result.real.total, result.confidence_level)
        rows.append(("ReaL top-1", pct(result.real.top1), span(real), f"{result.real.correct_top1}/{result.real.total}",
                     ""))
    return rows + _calibration_rows(result)


def _calibration_rows(result: Any) -> list[tuple[str, str, str, str, str]]:
    cal, suite = result.calibration, result.calibration_suite
    if suite is None:  # merged slices: the binned numbers only, no intervals
        if cal is None:
            return []
        return [(f"ECE ({len(cal.bins)} bins)", number(cal.ece), "", "", ""),
                ("NLL", number(cal.nll), "", "", ""), ("Brier", number(cal.brier), "", "", "")]
    # the binned numbers come from `calibration` (the suite's values are the same numbers)
    shown = cal if cal is not None else SimpleNamespace(**{k: getattr(suite, k).value for k in ("ece", "nll", "brier")})
    rows = [(f"ECE ({suite.bins} bins)", number(shown.ece), span(suite.ece, number), "", ""),
            (f"ECE equal-mass ({suite.bins} bins)", number(suite.equal_mass_ece), "", "", ""),
            ("MCE / RMSCE", f"{number(suite.mce)} / {number(suite.rmsce)}", "", "", "")]
    if suite.classwise_ece is not None:
        rows.append(("class-wise ECE", number(suite.classwise_ece), "", "", ""))
    rows += [("smooth ECE", number(suite.smooth_ece.value), span(suite.smooth_ece, number), "", ""),
             ("NLL", number(shown.nll), span(suite.nll, number), "", ""),
             ("Brier", number(shown.brier), span(suite.brier, number), "", ""),
             ("AURC", number(suite.aurc.value), span(suite.aurc, number), "", "")]
    if suite.temperature is not None:
        t = suite.temperature
        where = "" if t.inside_grid else " (at the edge of the searched range)"
        rows.append(("fitted temperature (NLL there)", f"{t.value:.3f} ({number(t.nll)}){where}", "", "", ""))
    return rows


def variant_line(result: Any) -> str:
    """The ImageNet variant, how nnprobe knows it, and its protocol ('' when the data is no variant)."""
    v = result.variant
    if v is None:
        return ""
    extras = [f"{v.excluded} images of classes outside it left out"] if v.excluded else []
    extras += [f"{v.border} px cut from each side before the resize"] if v.border else []
    return (f"variant: {v.title}, {v.how}; top-1 is the {v.protocol.replace(' (official)', '')}"
            f"{' (official)' if '(official)' in v.protocol else ''}" + "".join(f"; {e}" for e in extras))


def empty_slice_note(data: dict, classified: int) -> str | None:
    """Why a `--shard K/N` slice that classified no image has no interval (one sentence for eval, robust and
    the corruption sweep), or None when it classified some or is no slice."""
    shard = data.get("shard")
    if classified or not shard:
        return None
    where = f"slice {shard['index']}/{shard['count']}"
    if not shard["images"]:  # slices interleave (image i in slice i mod N): only a data set smaller than N leaves one empty
        found = data.get("images_found", 0)
        return (f"no intervals: {where} is empty (the data set has {found} image{'' if found == 1 else 's'} for "
                f"{shard['count']} slices)")
    return f"no intervals: {where} has no readable image ({shard['images']} skipped, each with its reason)"


def interval_note(result: Any) -> str:
    """One sentence naming the level and the methods of the intervals shown."""
    empty = empty_slice_note(result.data, result.total)
    if empty:
        return empty
    level = f"{100 * result.confidence_level:g}%"
    suite = result.calibration_suite
    boot = suite.nll.method if suite is not None else None
    tail = f"; {boot} on calibration means" if boot else ""
    if suite is not None and suite.missing:
        tail = f"; {suite.missing}"
    return f"intervals: {level}, exact Clopper-Pearson on counts{tail}"


ROBUST_HEADERS = ("eps", "robust top-1", "interval", "count", "robust top-5", "attack success (on initially correct)")


def robust_rows(result: Any) -> list[tuple[str, ...]]:
    """One row per budget of a RobustResult, its robust top-1 interval beside it (markdown and HTML)."""
    from nnprobe.results import format_eps

    return [(format_eps(p.eps), pct(p.top1), span(interval), f"{p.correct_top1}/{p.total}", pct(p.top5),
             f"{pct(p.attack_success_rate)} ({p.fooled}/{p.clean_correct})")
            for p, interval in zip(result.points, result.top1_intervals())]


def robust_interval_note(result: Any) -> str:
    """robust: the level and method of each budget's robust top-1 interval."""
    empty = empty_slice_note(result.data, result.points[0].total if result.points else 0)
    if empty:
        return empty
    return (f"intervals: {100 * result.confidence_level:g}%, exact Clopper-Pearson on robust top-1 (each image is "
            "attacked on its own, so the verdicts are independent)")


def delta_span(metric: Any, fmt) -> str:
    """`lo to hi` of a compared metric's delta interval, each bound formatted as the delta is."""
    interval = getattr(metric, "interval", None)
    if interval is None or not math.isfinite(interval.lo) or not math.isfinite(interval.hi):
        return ""
    return f"{fmt(metric.name, interval.lo)} to {fmt(metric.name, interval.hi)}"


def delta_note(comparison: Any) -> str:
    """The level and methods of the delta intervals, and the smallest drop the data can show."""
    level = (comparison.options or {}).get("confidence", 0.95)
    methods = sorted({m.interval.method for m in comparison.metrics if getattr(m, "interval", None) is not None})
    line = f"delta intervals: {100 * level:g}%, " + ("; ".join(methods) if methods else "none (no counts)")
    mdd = getattr(comparison, "minimal_detectable_drop", None)
    if mdd is not None:
        alpha = (comparison.options or {}).get("alpha") or 0.05
        line += (f". Smallest top-1 drop McNemar (alpha {alpha:g}) can detect on these images: {pct(mdd)}"
                 if math.isfinite(mdd) else f". No top-1 drop on so few images can reach McNemar alpha {alpha:g}")
    return line


def parity_lines(result: Any) -> list[str]:
    """`--reference-model`: what changed against the reference, in sentences (plain text; callers escape)."""
    parity = getattr(result, "parity", None)
    if parity is None:
        return []
    agree = parity.agreement
    lines = [f"against reference {parity.reference} ({parity.reference_source}), same batches: "
             f"top-1 agreement {pct(agree.value)} ({parity.images - parity.top1_changed}/{parity.images}, "
             f"{100 * result.confidence_level:g}% interval {span(agree)}); {parity.top1_changed} top-1 answers "
             f"changed ({parity.right_to_wrong} right -> wrong, {parity.wrong_to_right} wrong -> right), "
             f"{parity.top5_changed} top-5 sets changed",
             f"largest logit difference {parity.max_logit_diff:.3g} (image {parity.max_logit_diff_path}, "
             f"class {parity.max_logit_diff_class})"]
    for what, paths in (("changed", parity.top1_changed_paths), ("right -> wrong", parity.right_to_wrong_paths),
                        ("wrong -> right", parity.wrong_to_right_paths), ("top-5 set changed", parity.top5_changed_paths)):
        if paths:
            lines.append(f"  {what}: " + ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else ""))
    return lines
