"""`--format github` (workflow-command annotations + the markdown summary) and `$GITHUB_STEP_SUMMARY`.

Annotations are read back with a parser written here from GitHub's documented rules (properties split on
',', key=value, '%XX' unescaped once), so a message that would end the command early or start a new one
is caught. The CLI test runs the real `nnprobe diagnose` on a bundled run."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import report_fixtures as fixtures
from nnprobe.cli import main
from nnprobe.diagnosis.results import Finding
from nnprobe.report import render
from nnprobe.report.github import (MAX_ANNOTATIONS, annotation_lines, append_step_summary, escape_data,
                                   escape_property, render_github)
from nnprobe.report.markdown import render_markdown

CASES = fixtures.cases()
ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "samples" / "runs" / "nan-loss"
COMMAND = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")
ESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}


def _unescape(text: str) -> str:
    return re.sub(r"%(25|0D|0A|3A|2C)", lambda m: ESCAPES[m.group(0)], text)


def parse(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(level, properties, message) of each workflow command line, as the runner reads them."""
    commands = []
    for line in output.splitlines():
        if not line.startswith("::"):
            continue
        match = COMMAND.match(line)
        assert match, f"malformed workflow command: {line!r}"
        props = dict(part.split("=", 1) for part in match.group(2).split(",")) if match.group(2) else {}
        commands.append((match.group(1), {k: _unescape(v) for k, v in props.items()}, _unescape(match.group(3))))
    return commands


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_is_byte_identical_to_golden(name):
    expected = (fixtures.GOLDEN / f"{name}.github").read_bytes()
    assert fixtures.rendered(CASES[name], "github").encode("utf-8") == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_annotations_then_the_markdown_summary(name):
    text = render(CASES[name], "github")
    commands = [line for line in text.splitlines() if line.startswith("::")]
    assert text.splitlines()[:len(commands)] == commands  # all annotations come first
    assert text.endswith(render_markdown(CASES[name]))


def test_escaping_follows_the_runner():
    assert escape_data("50%\r\nnext: a, b") == "50%25%0D%0Anext: a, b"
    assert escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    assert escape_data("%0A literal") == "%250A literal"  # a literal escape stays literal
    assert _unescape(escape_property("%3A:%2C,%25")) == "%3A:%2C,%25"


def test_gate_annotations_are_the_failed_gates():
    for name in ("eval-failed", "robust-gated", "fool-gated"):
        result = CASES[name]
        errors = [(p["title"], m) for level, p, m in parse(render_github(result)) if level == "error"]
        failed = [g for g in result.gates if not g.passed]
        if name == "fool-gated":  # --fail-if-fooled: each fooling image is a failed case
            assert len(errors) == sum(item.success for item in result.items) == 1
        else:  # then eval's setup findings, each an error with its fix
            findings = [f"{f.message} Fix: {f.fix}" for f in getattr(result, "setup_findings", ())]
            assert [m for _, m in errors] == [g.message for g in failed] + findings
            assert all(title.endswith(g.name) for (title, _), g in zip(errors, failed))
    warnings = [m for level, _, m in parse(render_github(CASES["eval"])) if level == "warning"]
    assert warnings == [f"{len(CASES['eval'].skipped)} input file(s) were skipped; the JSON report lists each "
                        "with its reason."]
    assert not [c for c in parse(render_github(CASES["eval-gated"])) if c[0] == "error"]


@pytest.mark.parametrize(("name", "fail_on"), [("diagnose", "error"), ("diagnose-warning", "warning"),
                                               ("diagnose-never", "never")])
def test_diagnose_levels(name, fail_on):
    """error findings and findings that fail the run are errors; other warnings are warnings; no info."""
    result = CASES[name]
    levels = {"error": 0, "warning": 1 if fail_on != "warning" else 0}
    expected = sorted(((("error", "warning")[levels[f.severity]], f"{f.message} Hint: {f.hint}")
                       for f in result.findings if f.severity != "info"), key=lambda e: e[0] != "error")
    got = [(level, message) for level, _, message in parse(render_github(result))]
    assert got == expected


def test_hostile_messages_cannot_forge_commands():
    hostile = "100% bad\n::error::forged\r\n::stop-commands::x, a:b"
    finding = Finding("evil", "error", hostile, hostile, run="r,u:n\n::warning::x")
    result = dataclasses.replace(CASES["diagnose-never"], runs=(), extra_findings=(finding,))
    text = render_github(result)
    commands = parse(text)
    assert commands == [("error", {"title": "nnprobe diagnose evil (r,u:n\n::warning::x)"},
                         f"{hostile} Hint: {hostile}")]
    assert sum(line.startswith("::") for line in text.splitlines()) == 1


def test_annotations_are_capped_errors_first():
    findings = tuple(Finding(f"w{i}", "warning", f"warn {i}", "h") for i in range(80)) + \
        tuple(Finding(f"e{i}", "error", f"err {i}", "h") for i in range(70))
    result = dataclasses.replace(CASES["diagnose"], runs=(), extra_findings=findings)
    commands = parse("\n".join(annotation_lines(result)))
    assert len(commands) == MAX_ANNOTATIONS + 1
    assert [c[0] for c in commands[:MAX_ANNOTATIONS]] == ["error"] * MAX_ANNOTATIONS
    assert [c[2] for c in commands[:MAX_ANNOTATIONS]] == [f"err {i} Hint: h" for i in range(MAX_ANNOTATIONS)]
    left = 150 - MAX_ANNOTATIONS
    assert commands[-1][0] == "warning" and commands[-1][2].startswith(
        f"{left} more annotation(s) not shown ({70 - MAX_ANNOTATIONS} error(s), 80 warning(s))")


def test_append_step_summary_appends_and_never_raises(tmp_path):
    summary = tmp_path / "summary.md"
    assert append_step_summary(CASES["eval"], str(summary)) is None
    assert append_step_summary(CASES["robust"], str(summary)) is None
    assert summary.read_text(encoding="utf-8") == render_markdown(CASES["eval"]) + "\n" + \
        render_markdown(CASES["robust"])
    problem = append_step_summary(CASES["eval"], str(tmp_path))  # a folder: cannot be opened for append
    assert problem and "IsADirectoryError" in problem

    @dataclasses.dataclass(frozen=True)
    class Unregistered:
        passed: bool = True

    before = summary.read_bytes()
    assert append_step_summary(Unregistered(), str(summary)) == "no markdown summary for a Unregistered"
    assert summary.read_bytes() == before


# ---- the CLI: $GITHUB_STEP_SUMMARY -----------------------------------------------------------------


def _diagnose(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", str(RUN), *args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _without_timing(markdown_text: str) -> str:
    return re.sub(r"_\d+\.\d\d s_\n", "_T s_\n", markdown_text)


def test_step_summary_is_appended_when_format_is_not_given(capsys, monkeypatch, tmp_path):
    plain_code, plain_out, _ = _diagnose(capsys)
    md_code, md_out, _ = _diagnose(capsys, "--format", "markdown")
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step output\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = _diagnose(capsys)
    assert code == plain_code == md_code == 1
    assert out == plain_out and out.startswith("Run ")  # stdout is still the table
    written = summary.read_text(encoding="utf-8")
    assert written.startswith("earlier step output\n\n### nnprobe diagnose: ❌ failed (--fail-on error)\n")
    assert _without_timing(written) == _without_timing("earlier step output\n\n" + md_out)
    assert "note:" not in err


@pytest.mark.parametrize("fmt", ["json", "table", "junit", "markdown", "github"])
def test_step_summary_is_untouched_when_format_is_given(capsys, monkeypatch, tmp_path, fmt):
    summary = tmp_path / "step_summary.md"
    summary.write_bytes(b"untouched\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = _diagnose(capsys, "--format", fmt)
    assert code == 1 and summary.read_bytes() == b"untouched\n"
    if fmt == "json":
        assert json.loads(out)["kind"] == "diagnose"


def test_output_onto_the_summary_file_is_not_appended_twice(capsys, monkeypatch, tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("old\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = _diagnose(capsys, "-o", str(summary))
    written = summary.read_text(encoding="utf-8")
    assert code == 1 and out == ""
    assert written.startswith("Run ") and "### nnprobe" not in written  # -o replaced it with the table, once
    other = tmp_path / "report.txt"
    summary.write_text("", encoding="utf-8")
    _diagnose(capsys, "-o", str(other))
    assert other.read_text(encoding="utf-8").startswith("Run ")
    assert summary.read_text(encoding="utf-8").startswith("### nnprobe diagnose: ❌ failed")


def test_an_unwritable_summary_is_a_note_not_a_failure(capsys, monkeypatch, tmp_path):
    _, plain_out, _ = _diagnose(capsys)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    code, out, err = _diagnose(capsys)
    assert code == 1 and out == plain_out
    # the one output guard refuses the summary path before any work: one warning, and the report is unchanged
    notes = [line for line in err.splitlines() if line.startswith("warning: not appending the summary")]
    assert len(notes) == 1 and "missing" in notes[0] and "does not exist" in notes[0]


def test_every_command_offers_the_ci_formats():
    import importlib.util

    import dataclasses

    from nnprobe.cli import COMMANDS
    from nnprobe.options.base import spec_of
    from nnprobe.options.outputs import ReportOptions

    format_field = next(f for f in dataclasses.fields(ReportOptions) if f.name == "format")
    parse_format = spec_of(format_field).parse

    assert {"eval", "fool", "robust", "diagnose"} <= set(COMMANDS)
    for module in COMMANDS.values():
        if importlib.util.find_spec(module) is None:  # registered ahead of its module: not listed by the CLI
            continue
        option = next(p for p in importlib.import_module(module).command.params if "--format" in p.opts)
        group, name = option.name.split("__")  # the click option is generated from an options field
        assert (group, name) == ("report", "format")
        assert {"markdown", "github"} <= set(spec_of(format_field).choices)
        assert parse_format("github", "--format") == "github"
