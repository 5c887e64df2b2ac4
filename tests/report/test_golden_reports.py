"""Every format of every result kind, byte for byte as before the report layer took over JUnit cases,
gate sentences and panels (golden files written by the code before that change; see report_fixtures)."""
from __future__ import annotations

import dataclasses
import json

import pytest

import report_fixtures as fixtures
from nnprobe.attacks.results import fooled_gate, robust_gate
from nnprobe.report.junit import junit_cases
from nnprobe.results import accuracy_gate

CASES = fixtures.cases()


@pytest.mark.parametrize("fmt", fixtures.FORMATS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_render_is_byte_identical_to_golden(name, fmt):
    expected = (fixtures.GOLDEN / f"{name}.{fmt}").read_bytes()
    assert fixtures.rendered(CASES[name], fmt).encode("utf-8") == expected


def test_gate_constructors_word_gates_as_before():
    """The sentences in the golden files were written by the core before the change; the constructors
    beside the results must produce them from the numbers alone."""
    eval_result = fixtures.eval_result()
    assert (accuracy_gate("min-top1", 0.5, eval_result.top1), accuracy_gate("min-top5", 1.0, 1.0)) \
        == fixtures.eval_gates()
    assert (accuracy_gate("min-top1", 0.75, eval_result.top1),) == fixtures.eval_failing_gates()
    points = fixtures.robust_result().points
    assert (robust_gate(2 / 255, 0.3, points[1]), robust_gate(0.01, 0.2, points[2])) == fixtures.robust_gates()
    assert (fooled_gate(1, 3),) == fixtures.fool_gates()
    assert fooled_gate(0, 3).passed and fooled_gate(0, 3).message == "0 of 3 adversarial images fool the model"


def test_gate_message_stays_in_the_json():
    body = json.loads((fixtures.GOLDEN / "robust-gated.json").read_text())
    assert [g["message"] for g in body["gates"]] == [g.message for g in fixtures.robust_gates()]
    assert list(body["gates"][0]) == ["name", "threshold", "measured", "passed", "message"]


def test_junit_counts_follow_fail_on():
    """Independent count: a finding fails its check at or above --fail-on, skipped checks are skipped."""
    for fail_on, levels in (("error", {"error"}), ("warning", {"error", "warning"}), ("never", set())):
        result = CASES["diagnose" if fail_on == "error" else f"diagnose-{fail_on}"]
        failed_checks = sum(any(f.severity in levels for f in o.findings) for r in result.runs for o in r.outcomes)
        failed_extra = sum(f.severity in levels for f in result.extra_findings)
        statuses = [c.status for c in junit_cases(result)]
        assert statuses.count("failed") == failed_checks + failed_extra
        assert statuses.count("skipped") == sum(o.status == "skipped" for r in result.runs for o in r.outcomes)


def test_junit_cases_refuse_an_unknown_result():
    @dataclasses.dataclass
    class Other:
        gates: tuple = ()

    with pytest.raises(TypeError, match="Other"):
        junit_cases(Other())
