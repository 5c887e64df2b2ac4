"""`--format markdown`: golden summaries of every result kind, numbers checked against the fixtures'
counts, hostile text escaped, and the 64 KiB cap (a GitHub PR comment) on a 10,000-finding diagnosis."""
from __future__ import annotations

import dataclasses
import re

import pytest

import report_fixtures as fixtures
from nnprobe.diagnosis.results import Diagnosis, Finding
from nnprobe.report import FORMATS, render
from nnprobe.report import markdown
from nnprobe import kinds
from nnprobe.report.markdown import escape, fit, render_markdown
from nnprobe.results import Gate, PerClass

CASES = fixtures.cases()
COMMENT_LIMIT = 65_536  # GitHub's PR comment limit (characters); the step summary allows 1 MiB
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_is_byte_identical_to_golden(name):
    expected = (fixtures.GOLDEN / f"{name}.markdown").read_bytes()
    assert fixtures.rendered(CASES[name], "markdown").encode("utf-8") == expected


def test_both_ci_formats_are_offered_and_render_goes_through_the_registry():
    assert {"markdown", "github"} <= set(FORMATS)
    assert {k.type_name for k in kinds.KINDS if "markdown" in k.renderers} == {
        "EvalResult", "FoolResult", "RobustResult", "Diagnosis", "Comparison", "CorruptionResult", "ModelRuns",
        "VariantTable", "ModelCatalog"}
    assert render(CASES["eval"], "markdown") == render_markdown(CASES["eval"])


def _rows(text: str, header_start: str) -> list[list[str]]:
    """The body cells of the table whose header line starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in UNESCAPED_PIPE.split(line)[1:-1]])
    return rows


def test_eval_numbers_come_from_the_counts():
    result = fixtures.eval_result(fixtures.eval_failing_gates())
    text = render_markdown(result)
    assert text.startswith("### nnprobe eval: ❌ failed\n")
    rows = {row[0]: row[1:] for row in _rows(text, "| metric |")}
    from scipy.stats import binomtest

    lo, hi = binomtest(4, 7).proportion_ci(0.95, method="exact")
    assert rows["top-1"] == [f"{100 * 4 / 7:.2f}%", f"{100 * lo:.2f}% – {100 * hi:.2f}%", "4/7", "75.50%"]
    lo5 = binomtest(7, 7).proportion_ci(0.95, method="exact").low
    assert rows["top-5"] == ["100.00%", f"{100 * lo5:.2f}% – 100.00%", "7/7", "—"]
    # worst classes: classes with images, ascending top-1 (dog 1/3 < cat 3/4), the empty class left out
    assert [row[0] for row in _rows(text, "| class |")] == ["dog \\[big\\] (1)", "cat (0)"]
    assert "**Gates:** 1 of 1 failed" in text and "- ❌ **min-top1**: top1 0.5714 is below the required 0.7500" in text
    assert "1 file(s) skipped" in text
    assert render_markdown(fixtures.eval_result()).startswith("### nnprobe eval: ✅ passed (no gates)\n")


def test_failed_gates_come_first_and_the_list_is_capped():
    gates = tuple(Gate(f"g{i}", 0.5, 0.1 * (i % 10), i % 10 >= 5, f"gate {i}") for i in range(45))
    text = render_markdown(fixtures.eval_result(gates))
    items = [line for line in text.splitlines() if line.startswith("- ")]
    failed = sum(not g.passed for g in gates)
    assert f"**Gates:** {failed} of 45 failed" in text
    assert len(items) == markdown.ROWS and all(line.startswith("- ❌") for line in items)
    assert f"... and {45 - markdown.ROWS} more gates" in text


def test_robust_and_fool_tables_have_one_row_per_point_and_item():
    robust = CASES["robust-gated"]
    rows = _rows(render_markdown(robust), "| eps |")
    assert [row[0] for row in rows] == ["0", "2/255", "0.01"]
    assert [row[3] for row in rows] == [f"{p.correct_top1}/{p.total}" for p in robust.points]
    from scipy import stats  # each budget's interval: the exact binomial interval, as scipy computes it

    exact = [stats.binomtest(p.correct_top1, p.total).proportion_ci(0.95, method="exact") for p in robust.points]
    assert [row[2] for row in rows] == [f"{100 * ci.low:.2f}% – {100 * ci.high:.2f}%" for ci in exact]
    fool = CASES["fool-gated"]
    text = render_markdown(fool)
    rows = _rows(text, "| image |")
    assert [row[-1] for row in rows] == ["yes", "no", "no"]  # fooled first
    assert f"**{sum(i.success for i in fool.items)} of {len(fool.items)}**" in text


def test_diagnose_lists_every_finding_errors_first():
    result = CASES["diagnose"]
    rows = _rows(render_markdown(result), "| severity |")
    order = {"error": 0, "warning": 1, "info": 2}
    expected = [f.id for f in sorted(result.findings, key=lambda f: order[f.severity])]
    assert [row[2] for row in rows] == expected
    assert [row[0] for row in rows].count("**error**") == sum(f.severity == "error" for f in result.findings)


@pytest.mark.parametrize(("raw", "expected"), [
    ("a|b", "a\\|b"), ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"), ("a & b", "a &amp; b"),
    ("*bold* _it_ `code`", "\\*bold\\* \\_it\\_ \\`code\\`"), ("[link](http://x)", "\\[link\\](http://x)"),
    ("line1\nline2\r\nline3", "line1 line2 line3"), ("- item", "\\- item"), ("+ item", "\\+ item"),
    ("12. item", "12\\. item"), ("# heading", "\\# heading"), ("back\\slash", "back\\\\slash"),
    ("~~strike~~ $x$", "\\~\\~strike\\~\\~ \\$x\\$"), ("esc\x1b[31m", "esc\ufffd\\[31m"), ("", ""),
])
def test_escape(raw, expected):
    assert escape(raw) == expected


def test_escape_clips_long_text_before_escaping():
    assert escape("x" * 500) == "x" * (markdown.CELL - 1) + "…"
    assert escape("y" * 30, limit=10) == "y" * 9 + "…"


HOSTILE = "evil|name <img src=x onerror=alert(1)> *b* `c`\n| 9 | injected | row |\n# heading\n::error::x"


def _assert_inert(text: str, columns: dict[str, int]) -> None:
    """No HTML tag, no line that GitHub would read as a block we did not write, every table row intact."""
    assert "<" not in text
    for line in text.splitlines():
        assert not line.startswith(("::", "# ", "<")), line
        assert not (line.startswith("#") and not line.startswith("### nnprobe ")), line
    for header, count in columns.items():
        for row in _rows(text, header):
            assert len(row) == count


def test_hostile_names_stay_inside_their_cells():
    model = dataclasses.replace(fixtures.MODEL, spec=HOSTILE)
    result = dataclasses.replace(fixtures.eval_result(fixtures.eval_failing_gates()), model=model,
                                 per_class=(PerClass(0, HOSTILE, 0, 2, 1), PerClass(1, "ok", 1, 1, 1)))
    text = render_markdown(result)
    _assert_inert(text, {"| metric |": 5, "| class |": 4})
    assert len(_rows(text, "| class |")) == 2
    finding = Finding(HOSTILE, "error", HOSTILE, HOSTILE, run=HOSTILE)
    diagnosis = dataclasses.replace(CASES["diagnose"], path=HOSTILE, extra_findings=(finding,) * 3)
    text = render_markdown(diagnosis)
    _assert_inert(text, {"| severity |": 5})
    assert len(_rows(text, "| severity |")) == len(diagnosis.findings)
    fool = CASES["fool"]
    item = dataclasses.replace(fool.items[0], image=HOSTILE)
    _assert_inert(render_markdown(dataclasses.replace(fool, items=(item,))), {"| image |": 5})


def _huge_diagnosis(count: int, message: str) -> Diagnosis:
    severities = ("info", "warning", "error")
    findings = tuple(Finding(f"check-{i}", severities[i % 3], f"{message} {i}", message * 2, {"i": i},
                             run=f"runs/{i}") for i in range(count))
    return dataclasses.replace(CASES["diagnose"], extra_findings=findings)


@pytest.mark.parametrize("message", ["plain words " * 40, "<&>|*" * 200, "🔥" * 400], ids=["plain", "special", "emoji"])
def test_ten_thousand_findings_fit_a_pr_comment(message):
    result = _huge_diagnosis(10_000, message)
    text = render_markdown(result)
    assert len(text.encode("utf-8")) <= markdown.MAX_CHARS < COMMENT_LIMIT
    rows = _rows(text, "| severity |")
    total = len(result.findings)
    more = re.search(r"^\.\.\. and (\d+) more findings$", text, re.MULTILINE)
    assert more and len(rows) + int(more.group(1)) == total
    assert 0 < len(rows) <= markdown.FINDING_ROWS
    errors = sum(f.severity == "error" for f in result.findings)
    assert errors >= len(rows) and all(row[0] == "**error**" for row in rows)  # errors first
    assert f"{errors} error(s)" in text and text.rstrip().endswith("s_")  # the closing line survived


def test_fit_cuts_at_a_line_and_says_so():
    text = "".join(f"line {i} " + "é" * 50 + "\n" for i in range(5_000))
    cut = fit(text, limit=10_000)
    assert len(cut.encode("utf-8")) <= 10_000
    body, note = cut.rsplit("\n_", 1)
    assert body.endswith("\n") and text.startswith(body) and "truncated" in note
    assert fit("short\n") == "short\n"


def test_a_new_result_kind_is_one_registration(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Future:
        passed: bool

    with pytest.raises(TypeError, match="Future"):
        render_markdown(Future(True))
    monkeypatch.setitem(kinds._BY_TYPE, "Future", kinds.Kind("future", f"{__name__}:Future",
                                                             {"markdown": f"{__name__}:_future_lines"}))
    assert render_markdown(Future(False)) == "### nnprobe compare: ❌ failed\n\nbase \\| cand\n"


def _future_lines(result) -> list[str]:
    return markdown.heading("compare", result.passed, "base | cand")
