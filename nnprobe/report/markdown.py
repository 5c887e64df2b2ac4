"""GitHub-flavoured markdown summaries (`--format markdown`, the GitHub step summary, a PR comment).

One compact summary per result kind: the "markdown" piece of its record in `nnprobe.kinds` (a function
`result -> list[str]` of markdown lines, built with the helpers below). Every summary fits a PR comment (65,536 characters) and the step summary (1 MiB):
long lists end in "... and N more", and `render_markdown` cuts whatever is left over `MAX_CHARS`.
User-controlled text (paths, class names, messages) always goes through `escape`: it can neither break
a table, start a block, inject HTML nor turn into a link.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from nnprobe.report.gates import gate_sentence
from nnprobe.results import format_eps

MAX_CHARS = 60_000  # UTF-8 bytes (so also characters): under a PR comment's 65,536 characters
ROWS = 20  # rows of a list or table before "... and N more"
FINDING_ROWS = 50  # diagnose: findings shown (errors first)
CELL = 200  # characters of user text kept in one cell (before escaping)
TABLE_BYTES = 40_000  # one table's rows stop here, so the summary's other parts always fit

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_SPECIAL = re.compile(r"([\\`*_\[\]|~#$])")
_LEADING = re.compile(r"^(?:([-+=])|(\d+)([.)]))")


def escape(text: Any, limit: int = CELL) -> str:
    """Plain text that renders as itself in a table cell or after a list marker: one line, at most
    `limit` characters (then '…'), HTML specials as entities, markdown punctuation backslash-escaped."""
    text = " ".join(_CONTROL.sub("\ufffd", str(text)).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    return _LEADING.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)


def pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def heading(command: str, passed: bool, subject: str = "", note: str = "") -> list[str]:
    """`### nnprobe eval: ✅ passed` and a line naming what was judged (`subject` is escaped here)."""
    verdict = "✅ passed" if passed else "❌ failed"
    lines = [f"### nnprobe {command}: {verdict}" + (f" ({note})" if note else ""), ""]
    if subject:
        lines += [escape(subject, 4 * CELL), ""]
    return lines


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, right: Sequence[int] = (),
          limit: int = ROWS, total: int | None = None, noun: str = "rows", budget: int = TABLE_BYTES) -> list[str]:
    """A GFM table of already-escaped cells; columns in `right` are right-aligned. At most `limit` rows
    and `budget` UTF-8 bytes, then '... and N more {noun}' (`total` counts the rows when `rows` is a
    lazy iterable)."""
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("--:" if i in right else ":--" for i in range(len(headers))) + " |"]
    shown, size = 0, 0
    for row in rows:
        line = "| " + " | ".join(cell or " " for cell in row) + " |"
        size += len(line.encode("utf-8")) + 1
        if shown == limit or size > budget:
            break
        lines.append(line)
        shown += 1
    if total is None:
        total = len(rows) if isinstance(rows, Sequence) else shown
    return lines + [""] + more(shown, total, noun)


def more(shown: int, total: int, noun: str) -> list[str]:
    return [f"... and {total - shown} more {noun}", ""] if total > shown else []


def gate_lines(gates: Sequence[Any], limit: int = ROWS) -> list[str]:
    """Failed gates first, one list item each, in the words of every other format (`gate_sentence`)."""
    if not gates:
        return []
    ordered = sorted(gates, key=lambda g: g.passed)  # stable: failed first, each group in the given order
    failed = sum(not g.passed for g in gates)
    lines = [f"**Gates:** {failed} of {len(gates)} failed", ""]
    lines += [f"- {'✅' if g.passed else '❌'} **{escape(g.name)}**: {escape(gate_sentence(g), 2 * CELL)}"
              for g in ordered[:limit]]
    return lines + [""] + more(min(limit, len(gates)), len(gates), "gates")


def skipped_line(count: int, what: str = "file(s) skipped") -> list[str]:
    return [f"{count} {what} (each listed with its reason in `--format json`)", ""] if count else []


def run_line(run: Any, extra: str = "") -> str:
    return f"_{escape(run.device)} {escape(run.precision)}, world size {run.world_size}, {run.seconds:.2f} s{extra}_"


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """Cut a summary over `limit` UTF-8 bytes at a line boundary and say so (the lists are already capped:
    this is the guard for whatever is left, e.g. thousands of very long names)."""
    if len(text.encode("utf-8")) <= limit:
        return text
    note = "\n_... summary truncated to fit a GitHub comment; `--format json` has everything._\n"
    budget = limit - len(note.encode("utf-8"))
    head = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return head[:head.rfind("\n") + 1] + note


def markdown_lines(result: Any) -> list[str]:
    """`result`'s summary lines, followed by its `--baseline` comparison's when it has one."""
    from nnprobe import kinds

    lines: list[str] = kinds.of(result).piece("markdown")(result)
    if getattr(result, "comparison", None) is not None:
        lines += ["", *markdown_lines(result.comparison)]
    return lines


def render_markdown(result: Any) -> str:
    lines = markdown_lines(result)
    while lines and not lines[-1]:
        lines.pop()
    return fit("\n".join(lines) + "\n")


# ---- the four result kinds -------------------------------------------------------------------------


def eval_lines(result: Any) -> list[str]:
    model, data = result.model, result.data
    lines = heading("eval", result.passed, f"{model.spec} on {data.get('path')}",
                    "" if result.gates else "no gates")
    from nnprobe.report.eval_rows import HEADERS, interval_note, metric_rows, parity_lines, variant_line

    lines += table(HEADERS, metric_rows(result), right=(1, 2, 3, 4))  # numbers and fixed labels only
    lines += [escape(interval_note(result), limit=400), ""]  # our sentence, not user text: never cut
    lines += [escape(variant_line(result)), ""] if result.variant is not None else []
    lines += [f"- {escape(line.strip())}" for line in parity_lines(result)] + ([""] if result.parity else [])
    lines += gate_lines(result.gates)
    for finding in result.setup_findings:
        lines += [f"- {SEVERITY.get(finding.severity, finding.severity)}: {escape(finding.message)} "
                  f"Fix: {escape(finding.fix, limit=300)}"]
    if result.setup_findings:
        lines.append("")
    if result.confused_pairs:
        lines += ["**Most confused:** " + ", ".join(f"{escape(p.true_name)} → {escape(p.predicted_name)} ×{p.count}"
                                                  for p in result.confused_pairs[:5]), ""]
    worst = sorted((c for c in result.per_class if c.total), key=lambda c: (c.top1, c.index))[:5]
    if len(result.per_class) > 1 and worst:
        lines += ["**Worst classes**", ""]
        from nnprobe.intervals import clopper_pearson
        from nnprobe.report.eval_rows import span

        lines += table(("class", "top-1", "interval", "count"),
                       ((f"{escape(c.name)} ({c.index})", pct(c.top1),
                         span(clopper_pearson(c.correct_top1, c.total, result.confidence_level)),
                         f"{c.correct_top1}/{c.total}") for c in worst), right=(1, 2, 3))
    lines += skipped_line(len(result.skipped))
    return lines + [run_line(result.run, f", {result.images_per_second:.1f} images/s")]


def _attack(settings: Any) -> str:
    steps = f", {settings.steps} steps" if settings.steps > 1 else ""
    target = f", target {settings.target_label} ({settings.target_index})" if settings.targeted else ""
    return f"{settings.attack} ({settings.norm}{steps}{target})"


def robust_lines(result: Any) -> list[str]:
    lines = heading("robust", result.passed, f"{result.model.spec}: {_attack(result.settings)}",
                    "" if result.gates else "no gates")
    from nnprobe.report.eval_rows import ROBUST_HEADERS, robust_interval_note, robust_rows

    lines += table(ROBUST_HEADERS, robust_rows(result), right=(0, 1, 2, 3, 4, 5), limit=50, total=len(result.points),
                   noun="budgets")
    lines += [escape(robust_interval_note(result)), ""]
    lines += gate_lines(result.gates)
    lines += skipped_line(len(result.data.get("skipped", [])))
    return lines + [run_line(result.run)]


def corruption_lines(result: Any) -> list[str]:
    """robust --corruptions: clean vs mean corruption top-1, then top-1 per corruption and severity."""
    lines = heading("robust --corruptions", result.passed, result.model.spec, "" if result.gates else "no gates")
    from nnprobe.report.corruption_table import _mce_line, interval_note, spanned

    boot = result.bootstrap
    lines += [f"clean top-1 **{pct(result.clean.top1)}** ({result.clean.correct_top1}/{result.clean.total}), "
              f"mean corruption top-1 **{pct(result.mean_corruption_top1)}**{spanned(boot and boot.mean_corruption_top1)}"
              f", relative drop {pct(result.relative_drop)}", "", escape(_mce_line(result).strip()), "",
              escape(interval_note(result)), ""]
    severities = result.settings.severities
    rows = ((escape(name), *(pct(result.top1(name, s)) for s in severities), pct(mean))
            for name, mean in result.per_corruption.items())
    lines += table(("corruption", *(f"severity {s}" for s in severities), "mean"), rows,
                   right=tuple(range(1, len(severities) + 2)), limit=20, total=len(result.per_corruption),
                   noun="corruptions")
    if result.perturbations:
        from nnprobe.report.perturbation_text import frames_note, perturbation_summary, ratio_cells, ratio_columns

        extra = ratio_columns(result)
        lines += [""] + table(("ImageNet-P perturbation", "flip probability", "flips / compared", "top-5 distance",
                               *extra),
                              ((escape(p.perturbation), pct(p.flip_probability), f"{p.flips}/{p.comparisons}",
                                f"{p.top5_distance:.3f}", *ratio_cells(result, p.perturbation))
                               for p in result.perturbations), right=tuple(range(1, 4 + len(extra))),
                              total=len(result.perturbations), noun="perturbations")
        lines += ["", escape(perturbation_summary(result), 1000)]
        lines += [text for line in frames_note(result) for text in ("", escape(line, 1000))]
    lines += gate_lines(result.gates)
    return lines + [run_line(result.run)]


def fool_lines(result: Any) -> list[str]:
    lines = heading("fool", result.passed, f"{result.model.spec}: {_attack(result.settings)}",
                    "" if result.gates else "no gates")
    lines += [f"**{result.fooled} of {len(result.items)}** adversarial images fool the model", ""]
    rows = ((escape(i.image), format_eps(i.eps), f"{escape(i.original[0].label)} ({i.original[0].index})",
             f"{escape(i.adversarial[0].label)} ({i.adversarial[0].index})", "yes" if i.success else "no")
            for i in sorted(result.items, key=lambda i: not i.success))  # fooled images first
    lines += table(("image", "eps", "original", "adversarial (PNG re-read)", "fooled"), rows, right=(1,),
                   total=len(result.items), noun="images")
    lines += gate_lines(result.gates)
    return lines + [run_line(result.run)]


SEVERITY = {"error": "**error**", "warning": "warning", "info": "info"}


def diagnose_lines(result: Any) -> list[str]:
    counts = result.counts()
    lines = heading("diagnose", not result.failed, result.path, f"--fail-on {result.fail_on}")
    lines += [f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
              f"in {len(result.runs)} run(s)", ""]
    order = {"error": 0, "warning": 1, "info": 2}
    findings = sorted(result.findings, key=lambda f: order.get(f.severity, 3))  # stable within a severity
    if findings:
        rows = ((SEVERITY.get(f.severity, escape(f.severity)), escape(f.run or result.path, 80), escape(f.id, 60),
                 escape(f.message, 300), escape(f.hint, 300)) for f in findings)
        lines += table(("severity", "run", "check", "message", "hint"), rows, limit=FINDING_ROWS,
                       total=len(findings), noun="findings")
    skipped = sum(o.status == "skipped" for run in result.runs for o in run.outcomes)
    lines += skipped_line(skipped, "check(s) skipped for a missing metric")
    empty = sum(bool(s.skipped) for run in result.runs for s in run.sources)
    ignored = sum(len(run.ignored) for run in result.runs)
    lines += skipped_line(empty + ignored, f"file(s) gave nothing: {empty} empty or unreadable, {ignored} ignored")
    return lines + [f"_{result.seconds:.2f} s_"]
