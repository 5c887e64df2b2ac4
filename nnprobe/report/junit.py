"""JUnit XML from a result: each gate, image or check is one testcase (pytest's junitxml shape).

The cases are built here from the numbers in the result, so the results stay data and every format
(table, junit, the "failed:" lines on stderr) says a gate's verdict in the same words (`gate_sentence`).
No torch: the result types are looked up by name, as the table renderers are.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nnprobe.report.escaping import xml_text
from nnprobe.report.gates import gate_sentence


@dataclass(frozen=True)
class JUnitCase:
    """One testcase of a JUnit report: status is 'passed', 'failed' or 'skipped'."""

    classname: str
    name: str
    status: str
    message: str = ""
    details: str = ""


def _gate_cases(classname: str, gates) -> list[JUnitCase]:
    return [JUnitCase(classname, g.name, "passed" if g.passed else "failed", gate_sentence(g)) for g in gates]


def eval_cases(result) -> list[JUnitCase]:
    cases = _gate_cases("nnprobe.eval", result.gates)
    if not cases:  # no gate asked for: still one case that records the measurement
        cases.append(JUnitCase("nnprobe.eval", "accuracy", "passed",
                               f"top-1 {result.top1:.4f}, top-5 {result.top5:.4f} on {result.total} images"))
    return cases


def fool_cases(result) -> list[JUnitCase]:
    """One case per (image, eps); with --fail-if-fooled a fooling image is a failed case."""
    failing = any(g.name == "fail-if-fooled" for g in result.gates)
    cases = []
    for item in result.items:
        verdict = (f"{item.original[0].label} -> {item.adversarial[0].label} at L∞ {item.linf_255:.0f}/255: "
                   f"{'fooled' if item.success else 'not fooled'}")
        status = "failed" if (failing and item.success) else "passed"
        cases.append(JUnitCase("nnprobe.fool", f"{item.image} eps={item.eps:.6g}", status, verdict))
    return cases


def robust_cases(result) -> list[JUnitCase]:
    cases = _gate_cases("nnprobe.robust", result.gates)
    if not cases:
        cases = [JUnitCase("nnprobe.robust", f"eps={p.eps:.6g}", "passed",
                           f"robust top-1 {p.top1:.4f} ({p.correct_top1}/{p.total})") for p in result.points]
    # sanity-check findings are warnings: shown, not failed (no gate asked for them)
    cases += [JUnitCase("nnprobe.robust.sanity", f.id, "passed", f"[{f.severity}] {f.message} Hint: {f.hint}")
              for f in getattr(result, "findings", ())]
    return cases


def corruption_cases(result) -> list[JUnitCase]:
    """The --min-corruption-top1 gate; without one, one passed case per corruption recording its mean."""
    cases = _gate_cases("nnprobe.corruption", result.gates)
    if not cases:
        cases = [JUnitCase("nnprobe.corruption", name, "passed", f"mean top-1 {top1:.4f} over severities "
                           f"{','.join(map(str, result.settings.severities))}")
                 for name, top1 in result.per_corruption.items()]
    return cases


def diagnose_cases(result) -> list[JUnitCase]:
    """One case per check per run: failed at/above --fail-on, skipped when its metric is missing."""
    from nnprobe.diagnosis.results import reaches, severity_rank

    cases = []
    for run in result.runs:
        classname = f"nnprobe.diagnose.{run.path}"
        for outcome in run.outcomes:
            text = "\n".join(f"[{f.severity}] {f.message} Hint: {f.hint}" for f in outcome.findings)
            if outcome.status == "skipped":
                cases.append(JUnitCase(classname, outcome.id, "skipped", outcome.reason))
            elif any(reaches(f.severity, result.fail_on) for f in outcome.findings):
                worst = max(outcome.findings, key=lambda f: severity_rank(f.severity))
                cases.append(JUnitCase(classname, outcome.id, "failed", worst.message, text))
            else:
                cases.append(JUnitCase(classname, outcome.id, "passed", text))
    for finding in result.extra_findings:
        status = "failed" if reaches(finding.severity, result.fail_on) else "passed"
        cases.append(JUnitCase(f"nnprobe.diagnose.{finding.run or result.path}", finding.id, status,
                               finding.message, f"{finding.message} Hint: {finding.hint}"))
    return cases


def compare_cases(result) -> list[JUnitCase]:
    """One case per gate of `nnprobe compare`; with none asked for, one passed case with the top-line delta."""
    cases = _gate_cases(f"nnprobe.compare.{result.compared}", result.gates)
    if not cases:
        shown = "; ".join(f"{m.name} {m.delta:+.4g}" for m in result.metrics[:3] if m.delta is not None)
        cases.append(JUnitCase(f"nnprobe.compare.{result.compared}", "comparison", "passed",
                               shown or f"{result.candidate} vs {result.baseline}"))
    return cases


def junit_cases(result: Any) -> list[JUnitCase]:
    """The result's cases, made by the piece its kind provides (`nnprobe.kinds`: "junit")."""
    from nnprobe import kinds

    return kinds.of(result).piece("junit")(result)


def render_junit(cases: Sequence[JUnitCase], suite: str) -> str:
    failures = sum(c.status == "failed" for c in cases)
    skipped = sum(c.status == "skipped" for c in cases)
    root = ET.Element("testsuites")
    element = ET.SubElement(root, "testsuite", name=xml_text(suite), tests=str(len(cases)),
                            failures=str(failures), errors="0", skipped=str(skipped))
    for case in cases:  # every string from data made XML 1.0-safe (control characters replaced)
        node = ET.SubElement(element, "testcase", classname=xml_text(case.classname), name=xml_text(case.name))
        if case.status == "failed":
            failure = ET.SubElement(node, "failure", message=xml_text(case.message))
            failure.text = xml_text(case.details or case.message)
        elif case.status == "skipped":
            ET.SubElement(node, "skipped", message=xml_text(case.message))
        elif case.message:
            out = ET.SubElement(node, "system-out")
            out.text = xml_text(case.message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
