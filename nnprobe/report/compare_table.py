"""Console rendering of a Comparison: the deltas, then the image-level evidence, then the gates."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.eval_rows import delta_note, delta_span
from nnprobe.report.gates import print_gates
from nnprobe.results import format_eps

SHOWN = 10  # paths per flip direction in the table (the JSON has 20)


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name in ("top1", "top5") or "top1" in name or name.endswith("val_acc"):
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def _delta(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name in ("top1", "top5") or "top1" in name or name.endswith("val_acc"):
        return f"{100 * value:+.2f}pt"
    return f"{value:+.4g}"


def _metrics(result, console: Console) -> None:
    table = Table(title=f"nnprobe compare ({result.compared}) — {result.candidate} vs {result.baseline}",
                  title_justify="left", show_edge=False)
    for column in ("metric", "baseline", "candidate", "delta", "interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in result.metrics:
        table.add_row(escape(m.name), _value(m.name, m.baseline), _value(m.name, m.candidate), _delta(m.name, m.delta),
                      delta_span(m, _delta))
    if result.metrics:
        console.print(table)
        console.print(escape(delta_note(result)))


def _flips(label: str, flips, console: Console) -> None:
    if flips is None:
        return
    console.print(f"{label}: {flips.right_to_wrong} right→wrong, {flips.wrong_to_right} wrong→right; "
                  f"McNemar p (candidate worse) = {flips.p:.4g}")
    for arrow, paths in (("right→wrong", flips.right_to_wrong_paths), ("wrong→right", flips.wrong_to_right_paths)):
        for path in paths[:SHOWN]:
            console.print(f"  {arrow} {escape(path)}")


def _classes(result, console: Console) -> None:
    if not result.classes:
        return
    table = Table(title="classes that lost most (top-1)", title_justify="left", show_edge=False)
    for column in ("class", "baseline", "candidate", "drop", "p"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c in result.classes:
        table.add_row(escape(f"{c.index} {c.name}"), f"{c.baseline_correct}/{c.baseline_total}",
                      f"{c.candidate_correct}/{c.candidate_total}", f"{100 * c.drop:.2f}pt",
                      "—" if c.p is None else f"{c.p:.3g}")
    console.print(table)


def _findings(result, console: Console) -> None:
    for label, items in (("new", result.new), ("gone", result.gone), ("changed", result.changed)):
        for f in items:
            before = f" (was [{f.baseline_severity}] {f.baseline_message})" if f.baseline_message else ""
            console.print(escape(f"{label}: [{f.severity}] {f.id} ({f.run}): {f.message}{before}"))
    if result.compared == "diagnose":
        console.print(f"{len(result.new)} new, {len(result.gone)} gone, {len(result.changed)} changed, "
                      f"{len(result.unchanged)} unchanged finding(s)")


def render(result, console: Console) -> None:
    _metrics(result, console)
    _classes(result, console)
    _flips("top-1", result.flips_top1, console)
    _flips("top-5", result.flips_top5, console)
    for point in result.points:
        if point.flips is not None:
            _flips(f"eps {format_eps(point.eps)}", point.flips, console)
    if result.fell_earlier is not None:
        console.print(f"{result.fell_earlier} image(s) fooled at a smaller eps than before, "
                      f"{result.fell_later} at a larger one")
    _findings(result, console)
    for note in result.notes:
        console.print(escape(f"note: {note}"))
    print_gates(result.gates, console)
