"""The "html" pieces of a diagnosis and of a comparison (see report/html.py): runs side by side, each run's
curves (the `--plot` figure, findings marked at their steps) with its findings and their evidence beside
them, and the comparison's numbers, flipped images and changed findings."""
from __future__ import annotations

from typing import Any

from nnprobe.report.compare_markdown import _cell  # the same numbers as the markdown summary, in the same words
from nnprobe.report.html import Html, badge, card, details, dl, figure, gates, header, para, section, table, tag
from nnprobe.results import format_eps

FIGURES = 40  # runs drawn (a figure costs 0.2-0.5 s); the others say why they have none
FINDINGS = 200  # findings shown per run (errors first)
OPEN_RUNS = 4  # up to this many runs, every run is open; beyond it only the runs that failed
ORDER = {"error": 0, "warning": 1, "info": 2}


def diagnose_html(result: Any) -> list[Html]:
    counts = result.counts()
    parts = [header("diagnose", not result.failed, result.path, f"--fail-on {result.fail_on}"),
             section("Verdict", para(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} "
                                     f"info in {len(result.runs)} run(s)"))]
    if len(result.runs) > 1:
        parts.append(section("Runs side by side", _runs_table(result)))
    drawn = _drawn(result)
    parts += [_run(result, run, run.path in drawn) for run in result.runs]
    paths = {run.path for run in result.runs}
    loose = [f for f in result.extra_findings if f.run not in paths]
    if loose:
        parts.append(section("Other probes", *_cards(loose)))
    return parts


def _drawn(result: Any) -> set[str]:
    """The runs that get a figure: at most FIGURES of those with curves, the failed ones first, then those with
    findings, then the rest, each group in the given order."""
    ranked = sorted((run for run in result.runs if run.series),
                    key=lambda run: (not result.run_failed(run), not result.run_findings(run)))
    return {run.path for run in ranked[:FIGURES]}


def _number(value: Any, fmt: str = ".4f") -> str:
    return "—" if value is None else format(value, fmt)


def _runs_table(result: Any) -> Html:
    """One row per run: best validation accuracy and where, finding counts, the verdict, checks run."""
    def row(run):
        found, summary = result.run_findings(run), run.summary or {}
        failed = result.run_failed(run)
        return (Html(f'<a href="#{_anchor(result, run)}">') + _esc(run.path) + Html("</a>"),
                _number(summary.get("best val_acc")), _number(summary.get("best val_acc epoch"), "g"),
                _number(summary.get("best val_acc step"), ".0f"), sum(f.severity == "error" for f in found),
                sum(f.severity == "warning" for f in found),
                ", ".join(sorted({f.id for f in found if f.severity != "info"})),
                badge("FAILED", "fail") if failed else badge("passed", "pass"))
    return table(("run", "best val_acc", "epoch", "step", "errors", "warnings", "checks that fired", "verdict"),
                 [row(run) for run in result.runs], right=(1, 2, 3, 4, 5), noun="runs")


def _esc(value: Any) -> Html:
    from nnprobe.report.escaping import html_text

    return Html(html_text(value))


def _anchor(result: Any, run: Any) -> str:
    return f"run-{result.runs.index(run) + 1}"


def _cards(findings) -> list[Html]:
    ordered = sorted(findings, key=lambda f: ORDER.get(f.severity, 3))
    shown = [card(f.severity, f.id, f.message, f.hint, f.evidence) for f in ordered[:FINDINGS]]
    if len(ordered) > FINDINGS:
        shown.append(para(f"... and {len(ordered) - FINDINGS} more findings (--format json has them all)",
                          cls="note"))
    return shown


def _run(result: Any, run: Any, draw: bool) -> Html:
    """A run: its verdict, its figure with its findings beside it, then what was read and what was skipped."""
    from nnprobe.report.diagnose_plots import run_figure

    found = result.run_findings(run)
    failed = result.run_failed(run)
    if draw:
        shown = figure(lambda: run_figure(run, found)[0], f"{run.path}: loss and accuracy, findings marked at "
                                                          "their steps")
    else:
        shown = para("no figure: " + ("the curves are not kept in a report read back" if not run.series
                                      else f"{FIGURES} runs are drawn, those that failed or have findings first"),
                     cls="note")
    cards = _cards(found) or [para("no findings", cls="note")]
    evidence = tag("div", shown, tag("div", *cards, cls="cards"), cls="evidence")
    verdict = badge("FAILED", "fail") if failed else badge("passed", "pass")
    summary = Html(f"Run {_esc(run.path)} {verdict} "
                   f"{_esc(f'{len(found)} finding(s)')}")
    opened = len(result.runs) <= OPEN_RUNS or failed
    return Html(f'<section id="{_anchor(result, run)}">') + details(summary, evidence, _read(run),
                                                                    opened=opened) + Html("</section>")


def _curves(run: Any) -> Html:
    """The downsampled curves the report keeps (also read back from JSON), as the console's sparklines."""
    import math

    from nnprobe.report.diagnose_table import sparkline

    rows = []
    for role, values in run.curves.items():
        finite = [v for v in values if math.isfinite(v)]
        rows.append((role, sparkline(values), f"{min(finite):.3g} … {max(finite):.3g}" if finite else "no finite value"))
    return table(("curve", "shape (× not finite)", "range"), rows, noun="curves") if rows else Html("")


def _read(run: Any) -> Html:
    """What was read (files, metrics, classes), and the checks skipped with their reasons."""
    files = [(s.path, s.format, s.records, s.points, s.skipped or (f"{len(s.issues)} issue(s)" if s.issues else ""))
             for s in run.sources] + [(path, "ignored", "", "", reason) for path, reason in run.ignored]
    mapped = [(m.role, m.series, m.note) for m in run.mapping if m.series]
    skipped = [(o.id, o.reason) for o in run.outcomes if o.status == "skipped"]
    count = {s: sum(o.status == s for o in run.outcomes) for s in ("passed", "flagged", "skipped")}
    return details(f"What was read: {len(run.sources)} file(s); checks {count['passed']} passed, "
                   f"{count['flagged']} flagged, {count['skipped']} skipped",
                   table(("file", "format", "records", "points", "note"), files, right=(2, 3), noun="files"),
                   table(("role", "series", "note"), mapped, noun="metrics") if mapped else
                   para("no metric recognised", cls="note"),
                   dl([("classes", f"{run.num_classes or '?'} ({run.num_classes_source})"),
                       ("points replaced by restarts", run.superseded),
                       *((key, _number(value, "g") if isinstance(value, (int, float)) else value)
                         for key, value in (run.summary or {}).items())]),
                   _curves(run),
                   table(("skipped check", "why"), skipped, noun="checks") if skipped else "")


# ---- compare ----------------------------------------------------------------------------------------


def compare_html(result: Any) -> list[Html]:
    from nnprobe.report.eval_rows import delta_note, delta_span

    parts = [header("compare", result.passed, f"{result.compared}: {result.candidate} vs baseline {result.baseline}",
                    "" if result.gates else "no gates")]
    if result.metrics:
        rows = ((m.name, _cell(m.name, m.baseline), _cell(m.name, m.candidate), _cell(m.name, m.delta, True),
                 delta_span(m, lambda name, v: _cell(name, v, True))) for m in result.metrics)
        parts.append(section("Baseline and candidate side by side",
                             table(("metric", "baseline", "candidate", "delta", "interval"), rows,
                                   right=(1, 2, 3, 4), total=len(result.metrics), noun="metrics"),
                             para(delta_note(result), cls="note")))
    parts.append(gates(result.gates))
    if result.classes:
        rows = ((f"{c.name} ({c.index})", f"{c.baseline_correct}/{c.baseline_total}",
                 f"{c.candidate_correct}/{c.candidate_total}", f"{100 * c.drop:.2f}pt", "—" if c.p is None else f"{c.p:.3g}")
                for c in result.classes)
        parts.append(section("Classes that lost most (top-1)", table(
            ("class", "baseline", "candidate", "drop", "McNemar p"), rows, right=(1, 2, 3, 4), noun="classes")))
    flips = [_flips("top-1", result.flips_top1), _flips("top-5", result.flips_top5)]
    if result.points:
        rows = ((format_eps(p.eps), f"{p.baseline_correct}/{p.baseline_total}",
                 f"{p.candidate_correct}/{p.candidate_total}") for p in result.points)
        flips.insert(0, table(("eps", "baseline robust top-1", "candidate robust top-1"), rows, right=(0, 1, 2),
                              noun="budgets"))
        flips += [_flips(f"eps {format_eps(p.eps)}", p.flips) for p in result.points]
    if result.fell_earlier is not None:
        flips.append(para(f"{result.fell_earlier} image(s) fooled at a smaller eps than before, {result.fell_later} "
                          "at a larger one"))
    if any(flips):
        parts.append(section("Images", *flips))
    if result.compared == "diagnose" or result.new or result.gone or result.changed or result.unchanged:
        parts.append(_finding_changes(result))
    if result.notes:
        parts.append(section("Notes", *(para(note) for note in result.notes)))
    return parts


def _flips(label: str, flips: Any) -> Html:
    if flips is None:
        return Html("")
    lists = [details(f"{arrow}: {total} image(s)", table(("image",), ((p,) for p in paths), noun="images"),
                     para(f"(the report keeps {len(paths)} of {total})", cls="note") if total > len(paths) else "")
             for arrow, paths, total in (("right → wrong", flips.right_to_wrong_paths, flips.right_to_wrong),
                                         ("wrong → right", flips.wrong_to_right_paths, flips.wrong_to_right))
             if total]
    return tag("div", tag("h3", f"{label}: {flips.right_to_wrong} right → wrong, {flips.wrong_to_right} wrong → "
                                f"right; McNemar p (candidate worse) = {flips.p:.3g}"), *lists)


def _finding_changes(result: Any) -> Html:
    items = [("new", f) for f in result.new] + [("changed", f) for f in result.changed] + \
        [("gone", f) for f in result.gone]
    rows = ((label, badge(f.severity), f.run, f.id, f.message,
             f"[{f.baseline_severity}] {f.baseline_message}" if f.baseline_message else "") for label, f in items)
    same = details(f"{len(result.unchanged)} unchanged finding(s)",
                   table(("severity", "run", "check", "message"),
                         ((badge(f.severity), f.run, f.id, f.message) for f in result.unchanged),
                         total=len(result.unchanged), noun="findings")) if result.unchanged else ""
    return section(f"Findings: {len(result.new)} new, {len(result.gone)} gone, {len(result.changed)} changed, "
                   f"{len(result.unchanged)} unchanged",
                   table(("", "severity", "run", "check", "message", "in the baseline"), rows, total=len(items),
                         noun="findings") if items else "", same)
