"""The `variants` kind's reports (eval with several --data NAME=DIR): one row per data set, the same cells in
the console table, markdown and HTML (`table_rows`), then what each row's variant and fit are. Torch-free."""
from __future__ import annotations

from typing import Any

from nnprobe.report.eval_rows import pct, span

HEADERS = ("data set", "variant", "top-1", "interval", "count", "all-classes top-1", "effective robustness")


def _gap(row: Any) -> str:
    e = row.effective
    return "—" if e is None else f"{100 * e.gap:+.2f}pt"


def table_rows(result: Any) -> list[tuple[str, ...]]:
    return [(row.name, row.variant, pct(row.top1), span(result.interval(row)), f"{row.correct_top1}/{row.total}",
             pct(row.correct_top1_all / row.total) if row.total and row.classes != 1000 else "", _gap(row))
            for row in result.rows]


def detail_lines(result: Any) -> list[str]:
    """Per row: the variant, how it was told, the protocol; the fit behind its effective robustness."""
    lines = []
    for row in result.rows:
        told = f", {row.how}" if row.how else ""
        skipped = f"; {row.skipped} file(s) skipped" if row.skipped else ""
        lines.append(f"{row.name} ({row.path}): {row.variant}{told}; top-1 is the {row.protocol}; "
                     f"top-5 {pct(row.top5)} ({row.correct_top5}/{row.total}){skipped}")
        e = row.effective
        if e is not None:
            lines.append(f"  effective robustness {100 * e.gap:+.2f}pt = {pct(row.top1)} measured - {pct(e.predicted)} "
                         f"expected at {e.x_name} top-1 {pct(e.x_correct / e.x_total)} ({e.x_correct}/{e.x_total}) "
                         f"by {e.fit}")
        if row.note:
            lines.append(f"  {'note' if e is not None else 'no effective robustness'}: {row.note}")
    return lines


def note_line(result: Any) -> str:
    return (f"intervals: {100 * result.confidence_level:g}%, exact Clopper-Pearson on counts; effective robustness "
            "is the gap to the fit's prediction (Taori et al. 2020), without an interval")


def render(result: Any, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from nnprobe.report.gates import print_gates

    table = Table(title=f"nnprobe eval — {result.model.spec} on {len(result.rows)} data sets", title_justify="left",
                  show_edge=False)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("data set", "variant") else "right")
    for row in table_rows(result):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    for line in [note_line(result), *detail_lines(result), *(f"note: {n}" for n in result.notes)]:
        console.print(escape(line))
    print_gates(result.gates, console)


def markdown_lines(result: Any) -> list[str]:
    from nnprobe.report.markdown import escape, gate_lines, heading, run_line, table

    lines = heading("eval", result.passed, f"{result.model.spec} on {len(result.rows)} data sets",
                    "" if result.gates else "no gates")
    rows = [(escape(name), escape(variant), *numbers) for name, variant, *numbers in table_rows(result)]
    lines += table(HEADERS, rows, right=(2, 3, 4, 5, 6))  # the names escaped; numbers and fixed words as they are
    lines += [escape(note_line(result)), ""]
    lines += [f"{'  ' if line.startswith('  ') else ''}- {escape(line.strip(), 1000)}"
              for line in detail_lines(result)] + [""]
    lines += [f"- note: {escape(n)}" for n in result.notes[:20]] + ([""] if result.notes else [])
    return lines + gate_lines(result.gates) + [run_line(result.run)]


def junit_cases(result: Any) -> list[Any]:
    from nnprobe.report.junit import JUnitCase, _gate_cases

    cases = _gate_cases("nnprobe.eval", result.gates)
    return cases or [JUnitCase("nnprobe.eval", row.name, "passed", f"top-1 {row.top1:.4f} ({row.correct_top1}/"
                               f"{row.total}) under {row.protocol}; effective robustness {_gap(row)}")
                     for row in result.rows]


def html_parts(result: Any) -> list[Any]:
    from nnprobe.report.html import dl, gates, header, model_pairs, para, run_pairs, section, table

    return [header("eval", result.passed, f"{result.model.spec} on {len(result.rows)} data sets",
                   "" if result.gates else "no gates"),
            section("Data sets", table(HEADERS, table_rows(result), right=(2, 3, 4, 5, 6)),
                    para(note_line(result), cls="note"), *(para(line.strip()) for line in detail_lines(result)),
                    *(para(f"note: {n}", cls="note") for n in result.notes)),
            gates(result.gates), section("How it was run", dl(model_pairs(result.model) + run_pairs(result.run)))]
