"""`--format github`: GitHub Actions workflow commands (`::error title=...::message`) for failed gates and
diagnose findings, then the markdown summary; and the step summary (`$GITHUB_STEP_SUMMARY`) appender.

Annotations come from the same JUnit cases as every other format (a failed case is an `::error`,
`case_annotations`), the piece most kinds name in `nnprobe.kinds`; diagnose maps its findings' severities.
Escaping follows the runner's parser (actions/toolkit `escapeData`/`escapeProperty`): a message can never
end the command early or start a new one. GitHub shows 10 errors and 10 warnings per step, so at most
`MAX_ANNOTATIONS` are written, then one line saying how many were left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnprobe.report.markdown import render_markdown

MAX_ANNOTATIONS = 50
MESSAGE_CHARS = 2_000  # per annotation, before escaping
LEVELS = ("error", "warning", "notice")


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    title: str
    message: str


def escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF percent-encoded."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title=...): also ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(annotation: Annotation) -> str:
    message = annotation.message
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 1] + "…"
    return f"::{annotation.level} title={escape_property(annotation.title)}::{escape_data(message)}"


def case_annotations(result: Any) -> list[Annotation]:
    """Every failed JUnit case of the result is an error (gates of eval, robust, fool, compare ...)."""
    from nnprobe.report.junit import junit_cases

    return [Annotation("error", f"{case.classname.replace('nnprobe.', 'nnprobe ', 1)} {case.name}",
                       case.message or case.name)
            for case in junit_cases(result) if case.status == "failed"]


def skipped_annotations(result: Any) -> list[Annotation]:
    """eval and robust: failed gates, and one warning when files were skipped (skips are never silent)."""
    skipped = getattr(result, "skipped", None)
    if skipped is None:
        skipped = getattr(result, "data", {}).get("skipped", [])
    notes = []
    if skipped:
        notes.append(Annotation("warning", f"nnprobe {result.to_dict()['kind']} skipped files",
                                f"{len(skipped)} input file(s) were skipped; the JSON report lists each with "
                                "its reason."))
    for finding in getattr(result, "setup_findings", ()):  # eval: a setup mistake that explains a low top-1
        notes.append(Annotation("error" if finding.severity == "error" else "warning",
                                f"nnprobe eval: {finding.id}", f"{finding.message} Fix: {finding.fix}"))
    return case_annotations(result) + notes


def diagnose_annotations(result: Any) -> list[Annotation]:
    """An error finding, or any finding that fails the run (--fail-on), is an error; other warnings are
    warnings; info findings are not annotated (they stay in the summary)."""
    from nnprobe.diagnosis.results import reaches

    annotations = []
    for finding in result.findings:
        failing = reaches(finding.severity, result.fail_on)
        if finding.severity == "error" or failing:
            level = "error"
        elif finding.severity == "warning":
            level = "warning"
        else:
            continue
        annotations.append(Annotation(level, f"nnprobe diagnose {finding.id} ({finding.run or result.path})",
                                      f"{finding.message} Hint: {finding.hint}"))
    return annotations


def annotations(result: Any) -> list[Annotation]:
    """The result's annotations (the "github" piece of its kind, `nnprobe.kinds`), errors first (stable
    within a level)."""
    from nnprobe import kinds

    made = kinds.of(result).piece("github")(result)
    return sorted(made, key=lambda a: LEVELS.index(a.level))


def annotation_lines(result: Any, limit: int = MAX_ANNOTATIONS) -> list[str]:
    made = annotations(result)
    lines = [workflow_command(a) for a in made[:limit]]
    left = made[limit:]
    if left:
        errors = sum(a.level == "error" for a in left)
        lines.append(workflow_command(Annotation(
            "warning", "nnprobe: more annotations", f"{len(left)} more annotation(s) not shown ({errors} error(s), "
            f"{len(left) - errors} warning(s)); the summary and --format json list them.")))
    return lines


def render_github(result: Any) -> str:
    """Annotations, a blank line, then the markdown summary (readable in the log)."""
    from nnprobe.report.escaping import defuse_commands

    lines = annotation_lines(result)
    return "\n".join(lines) + ("\n\n" if lines else "") + defuse_commands(render_markdown(result), "github")


def append_step_summary(result: Any, path: str) -> str | None:
    """Append the markdown summary to `path` ($GITHUB_STEP_SUMMARY: appended, as GitHub expects when a step
    writes several); returns why it could not be written (never raises for an unwritable file)."""
    try:
        text = render_markdown(result)
    except TypeError:
        return f"no markdown summary for a {type(result).__name__}"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if handle.tell() else "") + text)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
    return None
