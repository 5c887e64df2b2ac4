"""Markdown summary of a Comparison (`nnprobe compare --format markdown|github`), built with the helpers
of report/markdown.py: capped lists, every user string escaped."""
from __future__ import annotations

from typing import Any

from nnprobe.report.eval_rows import delta_note, delta_span
from nnprobe.report.markdown import CELL, escape, gate_lines, heading, more, table
from nnprobe.results import format_eps

PATHS = 10  # flipped images listed per direction


def _is_rate(name: str) -> bool:
    return name in ("top1", "top5") or "top1" in name or name.endswith("val_acc")


def _cell(name: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    if _is_rate(name):
        return f"{100 * value:+.2f}pt" if signed else f"{100 * value:.2f}%"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _flip_lines(label: str, flips: Any) -> list[str]:
    if flips is None:
        return []
    lines = [f"**{label}:** {flips.right_to_wrong} right→wrong, {flips.wrong_to_right} wrong→right; "
             f"McNemar p (candidate worse) = {flips.p:.3g}", ""]
    for arrow, paths, total in (("right→wrong", flips.right_to_wrong_paths, flips.right_to_wrong),
                                ("wrong→right", flips.wrong_to_right_paths, flips.wrong_to_right)):
        if paths:
            lines += [f"- {arrow}: " + ", ".join(escape(p, CELL) for p in paths[:PATHS])]
            lines += [f"  ... and {total - min(PATHS, len(paths))} more"] if total > PATHS else []
    return lines + ([""] if lines[-1] else [])


def _class_lines(result: Any) -> list[str]:
    if not result.classes:
        return []
    rows = ((f"{escape(c.name)} ({c.index})", f"{c.baseline_correct}/{c.baseline_total}",
             f"{c.candidate_correct}/{c.candidate_total}", f"{100 * c.drop:.2f}pt",
             "—" if c.p is None else f"{c.p:.3g}") for c in result.classes)
    return ["**Classes that lost most (top-1)**", ""] + table(
        ("class", "baseline", "candidate", "drop", "McNemar p"), rows, right=(1, 2, 3, 4), total=len(result.classes))


def _finding_lines(result: Any) -> list[str]:
    if result.compared != "diagnose":
        return []
    lines = [f"{len(result.new)} new, {len(result.gone)} gone, {len(result.changed)} changed, "
             f"{len(result.unchanged)} unchanged finding(s)", ""]
    items = [("new", f) for f in result.new] + [("changed", f) for f in result.changed] + \
        [("gone", f) for f in result.gone]
    rows = ((label, escape(f.severity), escape(f.run, 80), escape(f.id, 60), escape(f.message, 300))
            for label, f in items)
    return lines + (table(("", "severity", "run", "check", "message"), rows, total=len(items), noun="findings")
                    if items else [])


def compare_lines(result: Any) -> list[str]:
    subject = f"{result.compared}: {result.candidate} vs baseline {result.baseline}"
    lines = heading("compare", result.passed, subject, "" if result.gates else "no gates")
    rows = ((escape(m.name), _cell(m.name, m.baseline), _cell(m.name, m.candidate), _cell(m.name, m.delta, True),
             delta_span(m, lambda name, v: _cell(name, v, True))) for m in result.metrics)
    if result.metrics:
        lines += table(("metric", "baseline", "candidate", "delta", "interval"), rows, right=(1, 2, 3, 4), limit=50,
                       total=len(result.metrics), noun="metrics")
        lines += [escape(delta_note(result)), ""]
    lines += gate_lines(result.gates)
    lines += _class_lines(result)
    lines += _flip_lines("top-1", result.flips_top1) + _flip_lines("top-5", result.flips_top5)
    for point in result.points[:20]:
        lines += _flip_lines(f"eps {format_eps(point.eps)}", point.flips)
    if result.fell_earlier is not None:
        lines += [f"{result.fell_earlier} image(s) fooled at a smaller eps than before, {result.fell_later} at a "
                  "larger one", ""]
    lines += _finding_lines(result)
    notes = [f"- {escape(note, 2 * CELL)}" for note in result.notes[:10]]
    return lines + notes + ([""] if notes else []) + more(len(notes), len(result.notes), "notes")
