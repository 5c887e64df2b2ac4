"""Every field of every result dataclass is wired (issue 16 part 3): each leaf field of each kind's result,
changed in a filled result, changes its JSON and at least one human report (table, markdown, JUnit, GitHub)
unless the kind declares it JSON-only with a reason; merge and compare say what they do with every field
(nnprobe/kinds/fields.py), and the merged-equals-one-process tests in tests/eval/test_shard_merge.py hold
merge to it. A field added tomorrow fails here until it is rendered or declared."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import numpy as np
import pytest

import kind_fixtures
from nnprobe import kinds
from nnprobe.kinds import fields
from nnprobe.report import render

HUMAN = ("table", "markdown", "junit", "github")
RESULTS = kind_fixtures.one_of_each()
# values the renderers branch on: changed to another valid value, not to text
CHOICES = {"severity": ("info", "warning", "error"), "fail_on": ("error", "warning", "never"),
           "status": ("passed", "flagged", "skipped"), "baseline_severity": ("info", "warning", "error")}
# fields that identify a row among others (a corruption point by its corruption and severity): changed alone
# they name a point the settings do not have, which is no result at all
IDENTIFYING = {"corruption": {"points.corruption", "points.severity"}}
# fields the filled fixtures leave at None: not walked (fill them in kind_fixtures to walk them)
UNFILLED = {
    "eval": {"model.weights", "model.published_top5", "per_sample", "comparison", "samples", "calibration_sums"},
    "robust": {"model.weights", "model.published_top5", "plot", "per_sample", "samples", "comparison",
               "median_min_eps", "sanity", "settings.target_index", "settings.target_label"},
    # mCE needs ImageNet-C's 15 on 1000 classes: tests/corruptions/test_mce_bootstrap.py renders its intervals
    "corruption": {"model.weights", "model.published_top5", "plot", "bootstrap.mce", "bootstrap.relative_mce"},
    "fool": {"model.weights", "model.published_top5", "items.precision_check", "items.search",
             "settings.target_index", "settings.target_label"},
    "diagnose": {"comparison"},
    "models": set(),
    "eval-models": {"runs.model.weights", "runs.model.published_top5", "runs.per_sample", "runs.comparison",
                    "runs.samples", "runs.calibration_sums"},
    "variants": {"model.weights", "model.published_top5"},
    "compare": {"new.baseline_severity", "new.baseline_message", "gone.baseline_severity", "gone.baseline_message",
                "unchanged.baseline_severity", "unchanged.baseline_message"},
}


@pytest.fixture(autouse=True)
def _intervals_computed_once(monkeypatch):
    """The same Clopper-Pearson bounds, computed once per (counts, confidence): the walk renders a few hundred
    results that differ in one field, most with the counts unchanged."""
    from nnprobe import intervals

    real, cache = intervals.clopper_pearson_bounds, {}

    def cached(k, n, confidence=intervals.CONFIDENCE):
        key = (tuple(map(int, np.atleast_1d(k))), tuple(map(int, np.atleast_1d(n))), float(confidence))
        if key not in cache:
            cache[key] = real(k, n, confidence)
        return cache[key]

    monkeypatch.setattr(intervals, "clopper_pearson_bounds", cached)


def _leaves(value: Any, path: tuple = (), hint: Any = None):
    """(path, value, type hint) of every leaf field; a tuple of dataclasses is walked through its first item."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = typing.get_type_hints(type(value))
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), path + (f.name,), hints[f.name])
    elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        yield from _leaves(value[0], path + (0,), None)
    else:
        yield path, value, hint


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int))


def _changed(name: str, value: Any, hint: Any) -> Any:
    """Another valid value of the same kind (None: nothing to change it to here)."""
    if name in CHOICES and value in CHOICES[name]:
        options = CHOICES[name]
        return options[(options.index(value) + 1) % len(options)]
    if value is None:
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
        simple = {str: "Q", int: 3, float: 0.25, bool: True}
        return next((simple[a] for a in args if a in simple), None)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return 0.3141 if math.isnan(value) else value + 0.1234
    if isinstance(value, str):
        return value + "Q"
    if isinstance(value, tuple):
        if value:
            return value + value[:1]
        element = (typing.get_args(hint) or (None,))[0]
        return ({"attack": "Q", "role": "main"},) if typing.get_origin(element) is dict or element is dict else \
            (("Q",) if element is str else None)
    if isinstance(value, dict):
        return {**value, "zz": next(iter(value.values()))} if value else {"zz": 1}
    return None


def _replaced(obj: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        return (_replaced(obj[0], rest, new), *obj[1:])
    return dataclasses.replace(obj, **{head: _replaced(getattr(obj, head), rest, new)})


def _covered(path: str, declared) -> bool:
    return any(path == d or path.startswith(d + ".") for d in declared)


def _in_memory(result: Any, path: tuple) -> bool:
    """A field the JSON leaves out on purpose (`field(compare=False)`: rows and series held for other uses)."""
    obj = result
    for part in path:
        if isinstance(part, int):
            obj = obj[0]
            continue
        if dataclasses.is_dataclass(obj) and not dataclasses.fields(obj)[[f.name for f in dataclasses.fields(obj)]
                                                                        .index(part)].compare:
            return True
        obj = getattr(obj, part)
    return False


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_every_field_reaches_the_json_and_a_report_or_is_declared_json_only(kind):
    result = RESULTS[kind.name]
    before = {fmt: render(result, fmt) for fmt in ("json", *HUMAN)}
    ignored, unwalked, silent_json = [], set(), []
    for path, value, hint in _leaves(result):
        dotted = _dotted(path)
        if _in_memory(result, path):
            continue
        new = _changed(str(path[-1]), value, hint)
        if new is None or dotted in IDENTIFYING.get(kind.name, ()):
            unwalked.add(dotted)
            continue
        after = {fmt: render(_replaced(result, path, new), fmt) for fmt in before}
        changed = {fmt for fmt in before if after[fmt] != before[fmt]}
        if _covered(dotted, fields.NOT_REPORTED.get(kind.name, {})):
            assert not changed, f"{kind.name}: {dotted} is reported now: drop it from NOT_REPORTED"
            continue
        if "json" not in changed:
            silent_json.append(dotted)
        if not changed & set(HUMAN) and not _covered(dotted, kind.json_only):
            ignored.append(dotted)
    assert not silent_json, f"{kind.name}: fields the JSON report does not carry: {silent_json}"
    assert not ignored, f"{kind.name}: fields no report shows; render them or declare them in kinds.fields.JSON_ONLY"
    assert unwalked <= UNFILLED[kind.name] | IDENTIFYING.get(kind.name, set()), \
        f"{kind.name}: fill these in kind_fixtures so they are walked: {unwalked - UNFILLED[kind.name]}"


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_declarations_name_real_fields(kind):
    """A declaration left behind by a renamed or removed field is an error too."""
    paths = {_dotted(p) for p, _, _ in _leaves(RESULTS[kind.name])}
    for declared in [*kind.json_only, *fields.NOT_REPORTED.get(kind.name, {})]:
        assert any(p == declared or p.startswith(declared + ".") for p in paths), (kind.name, declared)


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.name)
def test_merge_and_compare_say_what_they_do_with_every_field(kind):
    names = {f.name for f in dataclasses.fields(kind.piece("result"))}
    if kind.merge is not None:
        assert set(kind.merged) == names, f"{kind.name}: say how merge adds up {names ^ set(kind.merged)}"
    else:
        assert not kind.merged
    if kind.check is not None and kind.name in ("eval", "robust", "diagnose"):
        assert set(kind.compared) == names, f"{kind.name}: say what compare does with {names ^ set(kind.compared)}"


def test_every_kind_has_a_filled_fixture_and_every_format():
    assert set(RESULTS) == {k.name for k in kinds.KINDS}
    for kind in kinds.KINDS:
        assert kinds.of(RESULTS[kind.name]) is kind
        for fmt in kind.renderers:
            assert callable(kind.piece(fmt)), (kind.name, fmt)
        assert kind.check is None or callable(kind.check)
        for role in ("merge", "compare", "rows"):
            if getattr(kind, role) is not None:
                assert callable(kind.piece(role)), (kind.name, role)


def _eval_body() -> dict:
    import json

    import report_fixtures

    return json.loads((report_fixtures.GOLDEN / "eval.json").read_text())


def _one_less_right(body: dict) -> None:  # class 0 loses a right answer: counts stay consistent
    body.update(correct_top1=3, top1=3 / 7)
    body["per_class"][0].update(correct_top1=2, top1=0.5)


def _top5(body: dict) -> None:
    body.update(correct_top5=6, top5=6 / 7)


def _moved_between_classes(body: dict) -> None:  # same totals, another class wrong
    body["per_class"][0].update(correct_top1=2, top1=0.5)
    body["per_class"][1].update(correct_top1=2, top1=2 / 3)


# compared eval field -> a change of the candidate that keeps it a valid result
EVAL_CHANGES = {
    "correct_top1": _one_less_right, "correct_top5": _top5,
    "total": lambda b: b.update(total=8, top1=4 / 8, top5=7 / 8, per_class=[]),
    "mean_loss": lambda b: b.update(mean_loss=1.5), "per_class": _moved_between_classes,
    "calibration": lambda b: b.update(calibration={"ece": 0.2, "nll": 1.0, "brier": 0.5, "bins": []}),
    "data": lambda b: b["data"].update(fingerprint="e" * 64),
    "run": lambda b: b["run"].update(versions={"nnprobe": "0", "torch": "9.9"}),
}


@pytest.mark.parametrize("field", sorted(n for n, why in kinds.named("eval").compared.items()
                                         if not why.startswith(("not compared", "rows of")) and n != "per_sample"))
def test_every_field_eval_compare_reads_changes_the_comparison(field):
    """compare really reads what kinds.fields.COMPARE says it reads (per_sample: tests/compare pairs the rows
    image by image against a plain loop)."""
    import nnprobe

    assert field in EVAL_CHANGES, f"give EVAL_CHANGES a valid change of {field}"
    base, cand = _eval_body(), _eval_body()
    base["data"]["fingerprint"] = cand["data"]["fingerprint"] = "f" * 64
    base["calibration"] = cand["calibration"] = {"ece": 0.1, "nll": 0.8, "brier": 0.4, "bins": []}
    for side in (base, cand):
        side["run"]["versions"] = {"nnprobe": "0", "torch": "2.11.0"}
    same = nnprobe.compare(base, dict(cand), allow_different_data=True).to_dict()
    EVAL_CHANGES[field](cand)
    other = nnprobe.compare(base, cand, allow_different_data=True).to_dict()
    assert other != same
