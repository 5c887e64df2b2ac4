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
    "eval": {"model.weights", "model.published_top5", "per_sample", "comparison", "samples"},
    "robust": {"model.weights", "model.published_top5", "plot", "per_sample", "samples", "comparison",
               "median_min_eps", "sanity", "settings.target_index", "settings.target_label"},
    "corruption": {"model.weights", "model.published_top5", "plot"},
    "fool": {"model.weights", "model.published_top5", "items.precision_check", "items.search",
             "settings.target_index", "settings.target_label"},
    "diagnose": {"comparison"},
    "compare": {"new.baseline_severity", "new.baseline_message", "gone.baseline_severity", "gone.baseline_message",
                "unchanged.baseline_severity", "unchanged.baseline_message"},
}


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
