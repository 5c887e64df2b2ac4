"""Every format of a many-model eval (ModelRuns): first one summary row per model (top-1 and top-5 with their
intervals, ECE, images, verdict), then each model's own eval report as the eval kind renders it."""
from __future__ import annotations

from typing import Any

from nnprobe.report.eval_rows import number, pct, span

HEADERS = ("model", "top-1", "top-1 interval", "top-5", "top-5 interval", "ECE", "images", "gates")


def summary_rows(result: Any) -> list[tuple[str, ...]]:
    rows = []
    for r in result.runs:
        ece = r.calibration.ece if r.calibration is not None else None
        verdict = "no gates" if not r.gates else ("passed" if r.passed else "FAILED")
        rows.append((r.model.spec, pct(r.top1), span(r.top1_interval), pct(r.top5), span(r.top5_interval),
                     number(ece), str(r.total), verdict))
    return rows


def _note(result: Any) -> str:
    levels = sorted({f"{100 * r.confidence_level:g}%" for r in result.runs})
    failed = result.failed_models
    verdict = f"failed: {', '.join(failed)}" if failed else "every model passed its gates"
    return f"{len(result.runs)} models on the same images; intervals {', '.join(levels)} exact Clopper-Pearson; {verdict}"


def render_table(result: Any, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from nnprobe import kinds

    table = Table(title="nnprobe eval — several models", title_justify="left", show_edge=False)
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in summary_rows(result):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(escape(_note(result)))
    for run in result.runs:
        console.print()
        kinds.named("eval").piece("table")(run, console)


def markdown_lines(result: Any) -> list[str]:
    from nnprobe.report.markdown import escape, heading, table

    lines = heading("eval", result.passed, f"{len(result.runs)} models", "" if result.gates else "no gates")
    lines += table(HEADERS, ([escape(c) for c in row] for row in summary_rows(result)), right=(1, 2, 3, 4, 5, 6))
    lines += [escape(_note(result)), ""]
    for run in result.runs:
        from nnprobe.report.markdown import eval_lines

        lines += eval_lines(run) + [""]
    return lines


def junit_cases(result: Any) -> list:
    """Each model's eval cases, in a class named after the model."""
    import dataclasses

    from nnprobe.report.junit import eval_cases

    return [dataclasses.replace(case, classname=f"{case.classname}.{run.model.spec}",
                                name=f"{run.model.spec}: {case.name}") for run in result.runs
            for case in eval_cases(run)]


def github_annotations(result: Any) -> list:
    import dataclasses

    from nnprobe.report.github import skipped_annotations

    return [dataclasses.replace(a, title=f"{a.title} ({run.model.spec})") for run in result.runs
            for a in skipped_annotations(run)]


def html_parts(result: Any) -> list:
    from nnprobe.report.html import header, para, section, table
    from nnprobe.report.html_results import eval_html

    parts = [header("eval", result.passed, f"{len(result.runs)} models", "" if result.gates else "no gates"),
             section("Models", table(HEADERS, summary_rows(result), right=(1, 2, 3, 4, 5, 6)), para(_note(result)))]
    for run in result.runs:
        parts += eval_html(run)
    return parts
