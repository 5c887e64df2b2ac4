"""Every format of a many-model eval (ModelRuns): first one summary row per model (top-1 and top-5 with their
intervals, ECE, images, verdict), then each model's own eval report as the eval kind renders it."""
from __future__ import annotations

from typing import Any

from nnprobe.report.eval_rows import number, pct, span

HEADERS = ("model", "top-1", "top-1 interval", "top-5", "top-5 interval", "ECE", "images", "gates")


def summary_rows(result: Any) -> list[tuple[str, ...]]:
    rows = []
    for name, r in result.named:
        ece = r.calibration.ece if r.calibration is not None else None
        verdict = "no gates" if not r.gates else ("passed" if r.passed else "FAILED")
        rows.append((name, pct(r.top1), span(r.top1_interval), pct(r.top5), span(r.top5_interval),
                     number(ece), str(r.total), verdict))
    return rows


def _note(result: Any) -> str:
    levels = sorted({f"{100 * r.confidence_level:g}%" for r in result.runs})
    failed = result.failed_models
    verdict = f"failed: {', '.join(failed)}" if failed else "every model passed its gates"
    return f"{len(result.runs)} models on the same images; intervals {', '.join(levels)} exact Clopper-Pearson; {verdict}"


def parity_note(result: Any) -> str:
    """With --reference-model, each model against it in one sentence (its own report has the details)."""
    held = [(name, r.parity) for name, r in result.named if getattr(r, "parity", None) is not None]
    if not held:
        return ""
    each = "; ".join(f"{name} {p.top1_changed}/{p.images} (largest logit difference {p.max_logit_diff:.3g})"
                     for name, p in held)
    return f"top-1 answers changed against the reference {held[0][1].reference}: {each}"


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
    for line in filter(None, (_note(result), parity_note(result))):
        console.print(escape(line))
    for i, (name, run) in enumerate(result.named, 1):
        console.print()
        console.print(escape(f"model {i} of {len(result.runs)}: {name}"))
        kinds.named("eval").piece("table")(run, console)


def markdown_lines(result: Any) -> list[str]:
    from nnprobe.report.markdown import escape, heading, table

    lines = heading("eval", result.passed, f"{len(result.runs)} models", "" if result.gates else "no gates")
    lines += table(HEADERS, ([escape(c) for c in row] for row in summary_rows(result)), right=(1, 2, 3, 4, 5, 6))
    for line in filter(None, (_note(result), parity_note(result))):
        lines += [escape(line, limit=4000), ""]
    from nnprobe.report.markdown import eval_lines

    for i, (name, run) in enumerate(result.named, 1):
        lines += [f"#### model {i} of {len(result.runs)}: {escape(name)}", ""] + eval_lines(run) + [""]
    return lines


def junit_cases(result: Any) -> list:
    """Each model's eval cases, in a class named after the model."""
    import dataclasses

    from nnprobe.report.junit import eval_cases

    return [dataclasses.replace(case, classname=f"{case.classname}.{name}", name=f"{name}: {case.name}")
            for name, run in result.named for case in eval_cases(run)]


def github_annotations(result: Any) -> list:
    import dataclasses

    from nnprobe.report.github import skipped_annotations

    return [dataclasses.replace(a, title=f"{a.title} ({name})") for name, run in result.named
            for a in skipped_annotations(run)]


def html_parts(result: Any) -> list:
    from nnprobe.report.html import header, para, section, table
    from nnprobe.report.html_results import eval_html

    parts = [header("eval", result.passed, f"{len(result.runs)} models", "" if result.gates else "no gates"),
             section("Models", table(HEADERS, summary_rows(result), right=(1, 2, 3, 4, 5, 6)),
                     *(para(line) for line in filter(None, (_note(result), parity_note(result)))))]
    for run in result.runs:
        parts += eval_html(run)
    return parts


# ---- nnprobe models ----------------------------------------------------------------------------------------

CATALOG_HEADERS = ("model (--model)", "source", "weights", "resize", "crop", "interpolation", "mean", "std",
                   "preprocessing from", "where")


def _triple(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def catalog_rows(result: Any) -> list[tuple[str, ...]]:
    return [(e.spec, e.source, e.weights, str(e.resize), str(e.crop), e.interpolation, _triple(e.mean),
             _triple(e.std), e.preprocessing_from, e.where) for e in result.entries]


def _searched(result: Any) -> str:
    shown = "; ".join(f"{name}: {folder}" for name, folder in result.searched.items())
    what = f" matching {result.pattern!r}" if result.pattern else ""
    return f"{len(result.entries)} model(s) load offline{what} (caches looked in: {shown})"


def catalog_table(result: Any, console) -> None:
    """A compact table (the metadata's origin and each file's place on a line of their own below it)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="nnprobe models — what loads offline", title_justify="left", show_edge=False)
    for header in ("model (--model)", "source", "weights", "resize -> crop", "interpolation", "mean / std"):
        table.add_column(header, overflow="fold")
    for e in result.entries:
        table.add_row(*(escape(cell) for cell in (e.spec, e.source, e.weights, f"{e.resize} -> {e.crop}",
                                                  e.interpolation, f"{_triple(e.mean)} / {_triple(e.std)}")))
    console.print(table)
    for e in result.entries:
        console.print(escape(f"  {e.spec}: preprocessing from {e.preprocessing_from}; {e.where}"), soft_wrap=True)
    console.print(escape(_searched(result)), soft_wrap=True)


def catalog_lines(result: Any) -> list[str]:
    from nnprobe.report.markdown import escape, table

    lines = ["### nnprobe models", ""]
    lines += table(CATALOG_HEADERS, ([escape(c) for c in row] for row in catalog_rows(result)), right=(3, 4),
                   total=len(result.entries), noun="models")
    return lines + [escape(_searched(result))]


def catalog_cases(result: Any) -> list:
    from nnprobe.report.junit import JUnitCase

    return [JUnitCase("nnprobe.models", e.spec, "passed", f"{e.source} {e.weights}: resize {e.resize} -> crop {e.crop}, "
                      f"{e.interpolation}, mean {_triple(e.mean)}, std {_triple(e.std)} ({e.preprocessing_from}) "
                      f"at {e.where}") for e in result.entries] or \
        [JUnitCase("nnprobe.models", "catalog", "passed", _searched(result))]


def no_annotations(result: Any) -> list:
    """A listing judges nothing: no annotation."""
    return []


def catalog_html(result: Any) -> list:
    from nnprobe.report.html import para, section, table

    return [section("Models that load offline", table(CATALOG_HEADERS, catalog_rows(result), right=(3, 4)),
                    para(_searched(result)))]
