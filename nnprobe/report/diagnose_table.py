"""Console rendering of a Diagnosis: per run, what was read, loss/accuracy sparklines, findings with
evidence and hint, and the checks that were skipped (and why)."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

BARS = "▁▂▃▄▅▆▇█"
STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def sparkline(values) -> str:
    """Unicode bars scaled to the finite range; a non-finite bin is drawn as '×'."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "×" * len(values)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append("×")
        else:
            out.append(BARS[int((v - lo) / span * (len(BARS) - 1)) if span > 0 else 0])
    return "".join(out)


def _evidence(evidence: dict) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value[:5]) + ("…" if len(value) > 5 else "")
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _table(findings) -> Table:
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=True)
    for column in ("severity", "check", "message", "evidence", "hint"):
        table.add_column(column, overflow="fold")
    for f in sorted(findings, key=lambda f: ("error", "warning", "info").index(f.severity)):
        # Text, not markup: a message may quote a metric name or a path with [brackets] in it
        table.add_row(Text(f.severity, style=STYLE[f.severity]), Text(f.id), Text(f.message),
                      Text(_evidence(f.evidence)), Text(f.hint))
    return table


def _number(value, fmt: str = ".4f") -> str:
    return "—" if value is None else format(value, fmt)


def _summary_table(result) -> Table:
    """One row per run: best validation accuracy and where, error and warning counts, the run's verdict."""
    table = Table(show_header=True, header_style="bold", expand=False, title="Runs", title_justify="left")
    for column in ("run", "best val_acc", "epoch", "step", "errors", "warnings", "verdict"):
        table.add_column(column, overflow="fold", justify="left" if column == "run" else "right")
    for run in result.runs:
        found = result.run_findings(run)
        failed = result.run_failed(run)
        summary = run.summary
        table.add_row(Text(run.path), _number(summary.get("best val_acc")),
                      _number(summary.get("best val_acc epoch"), "g"), _number(summary.get("best val_acc step"), ".0f"),
                      str(sum(f.severity == "error" for f in found)), str(sum(f.severity == "warning" for f in found)),
                      Text("FAILED" if failed else "passed", style="bold red" if failed else "green"))
    return table


def _baseline(result, console: Console) -> None:
    """diagnose --baseline: the comparison against the baseline, as `nnprobe compare` shows it."""
    from nnprobe.report.compare_table import render as render_comparison

    console.print(Text(f"Against the baseline {result.comparison.baseline}", style="bold"))
    render_comparison(result.comparison, console)
    console.print()


def render(result, console: Console) -> None:
    if len(result.runs) > 1 and any(run.summary for run in result.runs):  # runs read from logs, not hand-built
        console.print(_summary_table(result))
        console.print()
    for run in result.runs:
        console.print(Text(f"Run {run.path}", style="bold"))
        for source in run.sources:
            note = f" — {source.skipped}" if source.skipped else ""
            damage = f", {len(source.issues)} issue(s)" if source.issues else ""
            console.print(f"  read {source.path} [{source.format}]: {source.records} records, "
                          f"{source.points} points{damage}{note}", highlight=False, markup=False)
        for path, reason in run.ignored:
            console.print(f"  ignored {path}: {reason}", markup=False)
        mapped = ", ".join(f"{m.role}={m.series}" + (f" ({m.note})" if "percent" in m.note or "override" in m.note
                                                     else "") for m in run.mapping if m.series)
        console.print(f"  metrics: {mapped or 'none recognised'}", markup=False)
        console.print(f"  classes: {run.num_classes if run.num_classes else '?'} ({run.num_classes_source})",
                      markup=False)
        for role, values in run.curves.items():
            finite = [v for v in values if math.isfinite(v)]
            span = f"{min(finite):.3g}…{max(finite):.3g}" if finite else "no finite value"
            console.print(f"  {role:<10} {sparkline(values)}  {span}", markup=False)
        findings = result.run_findings(run)
        if findings:
            console.print(_table(findings))
        else:
            console.print("  no findings", style="green")
        skipped = [o for o in run.outcomes if o.status == "skipped"]
        passed = sum(o.status == "passed" for o in run.outcomes)
        console.print(f"  checks: {passed} passed, {sum(o.status == 'flagged' for o in run.outcomes)} flagged, "
                      f"{len(skipped)} skipped", markup=False)
        by_reason: dict[str, list[str]] = {}
        for outcome in skipped:
            by_reason.setdefault(outcome.reason, []).append(outcome.id)
        for reason, ids in by_reason.items():
            console.print(f"    skipped {', '.join(ids)}: {reason}", markup=False, style="dim")
        console.print()
    paths = {run.path for run in result.runs}
    loose = [f for f in result.extra_findings if f.run not in paths]
    if loose:
        console.print(Text("Other probes", style="bold"))
        console.print(_table(loose))
    if getattr(result, "comparison", None) is not None:
        _baseline(result, console)
    counts = result.counts()
    verdict = "FAILED" if result.failed else "passed"
    console.print(Text(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info in "
                       f"{len(result.runs)} run(s): {verdict} (--fail-on {result.fail_on})",
                       style="bold red" if result.failed else "bold green"))
