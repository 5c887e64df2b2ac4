"""Every renderer of every result kind escapes what comes from data (issue 17 part 6): JUnit stays XML 1.0
well-formed, no line of any report (nor of the `failed:` lines on stderr) is a GitHub workflow command, a
markdown table keeps its columns. Kinds and formats are enumerated from nnprobe.kinds, so a new kind or
format is covered the day it is registered (and fails here until `kind_fixtures.one_of_each` has one)."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

import kind_fixtures
from nnprobe import kinds
from nnprobe.report import FORMATS, render

HOSTILE = ("\x01\x0b\x1b[31m|x<y>&\\ `*_ %0A %25\n::error title=x::injected\r\n##[error]old style\r"
           "  ::add-mask::secret\u2028::warning::after a separator")
LINE_BREAK = re.compile("\r\n|\r|\n")
ANNOTATION = re.compile(r"^::(error|warning|notice) title=[^:\r\n]*::[^\r\n]*$")
COMMAND = re.compile(r"^[ \t\f\v]*(::|##\[)")


def _results():
    made = kind_fixtures.one_of_each()
    return {name: kind_fixtures.poisoned(result, HOSTILE) for name, result in made.items()}


RESULTS = _results()


def test_every_kind_and_format_is_enumerated():
    assert set(RESULTS) == {k.name for k in kinds.KINDS}, "add the new kind to kind_fixtures.one_of_each"
    assert set(FORMATS) == set(kinds.FORMATS)
    for kind in kinds.KINDS:
        assert set(kind.renderers) | {"json"} == set(kinds.FORMATS), kind.name
        assert kinds.of(RESULTS[kind.name]) is kind


def _commands(text: str, fmt: str) -> list[str]:
    """Lines a runner would execute, other than nnprobe's own annotations at the top of --format github."""
    lines = LINE_BREAK.split(text)
    if fmt == "github" and lines[0].startswith("::"):
        head = lines.index("")
        assert all(ANNOTATION.match(line) for line in lines[:head]), lines[:head]
        lines = lines[head:]
    return [line for line in lines if COMMAND.match(line)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(RESULTS))
def test_no_line_of_a_report_is_a_workflow_command(name, fmt):
    text = render(RESULTS[name], fmt)
    assert _commands(text, fmt) == []


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_junit_is_well_formed_xml_1_0(name):
    text = render(RESULTS[name], "junit")
    root = ET.fromstring(text.encode("utf-8"))  # expat refuses any character XML 1.0 forbids
    assert root.tag == "testsuites"
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text)
    names = [case.get("name") for case in root.iter("testcase")]
    assert names, "every kind makes at least one case"


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_json_round_trips_the_hostile_text(name):
    body = json.loads(render(RESULTS[name], "json"))
    found, stack = [], [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.endswith(HOSTILE):
            found.append(item)
    assert found


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


@pytest.mark.parametrize("fmt", ["markdown", "github"])
@pytest.mark.parametrize("name", sorted(RESULTS))
def test_markdown_tables_keep_their_columns(name, fmt):
    lines = LINE_BREAK.split(render(RESULTS[name], fmt))
    for i, line in enumerate(lines):
        if line.startswith("| :--") or line.startswith("| --:"):
            columns = _unescaped_pipes(line)
            header = lines[i - 1]
            assert _unescaped_pipes(header) == columns
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                assert _unescaped_pipes(row) == columns, row


@pytest.mark.parametrize("name", sorted(set(RESULTS) - {"models"}))  # a listing (models) fails nothing
def test_failed_lines_on_stderr_are_single_lines(name):
    from nnprobe.cli.preflight import why_failed

    lines = why_failed(RESULTS[name])
    assert lines, "every fixture fails something"
    for line in lines:
        assert not re.search("[\x00-\x1f\x7f\u2028\u2029\x85]", line), line
        assert not COMMAND.match(line)


def test_an_error_sentence_on_stderr_is_one_line(tmp_path, invoke):
    """A path with a line break in it, named in an error sentence, stays on the Error: line."""
    bad = tmp_path / "x\n::error title=pwned::y.json"
    bad.write_text("{not json")
    run = invoke("compare", str(bad), str(bad))
    assert run.returncode == 2
    assert [line for line in run.stderr.splitlines() if line.strip()] and \
        all(line.startswith("Error:") for line in run.stderr.splitlines() if line.strip()), run.stderr


def test_a_run_folder_named_like_a_command_is_not_one(tmp_path):
    """diagnose's report names the run folder on its own line: `::error title=x::y` must stay text."""
    import dataclasses

    import report_fixtures

    result = dataclasses.replace(report_fixtures.diagnosis(), path="::error title=x::y")
    for fmt in FORMATS:
        assert _commands(render(result, fmt), fmt) == [], fmt
