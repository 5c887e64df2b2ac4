"""The Python API's signatures are the options' fields: every verb takes explicit, annotated keywords (no
**kwargs), exactly the API fields of its option groups (enumerated, so a new option cannot be half-wired),
parses text through the CLI's parsers, and names the nearest keyword when one is unknown."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import nnprobe
from nnprobe import api
from nnprobe.errors import DataError, UsageError
from nnprobe.options import verbs

# verb -> (its option groups, the parameters that are not option fields)
VERBS = {
    "evaluate": (verbs.EVAL, {"progress"}),
    "robust": (verbs.ROBUST, {"progress"}),
    "corruptions": (verbs.CORRUPTIONS, {"progress"}),
    "fool": (verbs.FOOL, {"progress"}),
    "diagnose": (verbs.DIAGNOSE_ONLY, set()),
    "follow": (verbs.FOLLOW, {"progress"}),
    "compare": (verbs.COMPARE, set()),
    "merge": (verbs.MERGE, set()),
    "list_models": (verbs.MODELS_ONLY, set()),
}


def api_fields(groups) -> set[str]:
    return {name for _, name, spec in verbs.fields(groups) if spec.api}


@pytest.mark.parametrize("verb", VERBS)
def test_signature_is_the_option_fields(verb):
    groups, extra = VERBS[verb]
    func = getattr(nnprobe, verb)
    signature = inspect.signature(func)
    kinds = {p.kind for p in signature.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    assert set(signature.parameters) == api_fields(groups) | extra
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert signature.return_annotation is not inspect.Signature.empty
    assert func.__doc__ and len(func.__doc__) > 80


@pytest.mark.parametrize("verb", VERBS)
def test_an_unknown_keyword_names_the_nearest(verb):
    groups, _ = VERBS[verb]
    real = sorted(api_fields(groups))[0]
    with pytest.raises(UsageError, match=rf"no keyword '{real}x'; did you mean '{real}'\?"):
        getattr(nnprobe, verb)(**{f"{real}x": 1})


def test_diagnose_never_ignores_a_keyword_it_does_not_know():
    with pytest.raises(UsageError, match="diagnose\\(\\) has no keyword 'folow'; did you mean 'follow'|no keyword"):
        nnprobe.diagnose("samples/runs/healthy", folow=True)


@pytest.mark.parametrize("call, fragment", [
    (lambda: nnprobe.evaluate(min_top1="0.5x"), "--min-top1 '0.5x' is not a number"),
    (lambda: nnprobe.evaluate(min_top1=[0.5]), "--min-top1"),
    (lambda: nnprobe.evaluate(limit="ten"), "--limit 'ten' is not a whole number"),
    (lambda: nnprobe.robust(eps="2/0"), "divides by zero"),
    (lambda: nnprobe.robust(eps="1e400"), "not a finite number"),
    (lambda: nnprobe.robust(eps="31000"), "above 30000"),
    (lambda: nnprobe.corruptions(severity="1-999999999"), "between 1 and 5"),
    (lambda: nnprobe.robust(shard="3/2"), "K must be between 1 and N"),
    (lambda: nnprobe.follow("x", kill_pid="12x"), "is not a process ID"),
    (lambda: nnprobe.compare("a.json", "b.json", max_drop_top1="lots"), "is not a number like 0.003"),
    (lambda: nnprobe.merge([], min_robust_top1="2/255"), "must read EPS=FRACTION"),
    (lambda: nnprobe.evaluate(device=3), "--device '3'"),
])
def test_text_and_wrong_types_are_one_usage_error_before_any_work(call, fragment):
    with pytest.raises(UsageError, match=fragment):
        call()


def test_text_values_mean_what_they_mean_on_the_command_line():
    built = verbs.build(verbs.ROBUST, dict(eps="0,2/255", min_robust_top1=["2/255=0.3"], step_size="0.5/255",
                                           seed="7", severity="2-3"))
    assert built["attack"].eps == (0.0, 2 / 255) and built["attack"].step_size == 0.5 / 255
    assert built["gates"].min_robust_top1 == {2 / 255: 0.3} and built["attack"].seed == 7
    typed = verbs.build(verbs.ROBUST, dict(eps=[0, 2 / 255], min_robust_top1={2 / 255: 0.3}, step_size=0.5 / 255,
                                           seed=7, severity=[2, 3]))
    assert typed == built
    assert verbs.build(verbs.EVAL, dict(min_top1="75%"))["gates"].min_top1 == 0.75


def test_merge_takes_text_gates(tmp_path):
    """merge(min_top1="0.5") is parsed, not compared as a string deep inside (the old TypeError)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "compare"))
    from compare_helpers import eval_result, random_eval_pair

    rows, _ = random_eval_pair(seed=1, n=20, num_classes=3, worse=0.1)
    path = eval_result(tmp_path, "r", rows, 3)
    with pytest.raises(DataError, match="is not a --shard K/N result"):  # parsed, then judged as a part
        nnprobe.merge([path], min_top1="0.5")


def test_help_lists_every_verb():
    proc = subprocess.run([sys.executable, "-m", "nnprobe", "--help"], capture_output=True, text=True, timeout=60)
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.startswith("  ")}
    assert {"eval", "fool", "robust", "corruptions", "diagnose", "follow", "compare", "merge"} <= listed


def test_help_of_each_verb_shows_its_signature():
    for verb in VERBS:
        assert "(" in repr(inspect.signature(getattr(api, verb)))
        assert getattr(api, verb).__wrapped__.__name__ == verb


def signature_block(verb: str) -> str:
    """A verb's full signature as docs/api.md shows it: one parameter a line, annotations unquoted."""
    func = getattr(nnprobe, verb)
    lines, starred = [f"nnprobe.{verb}("], False
    for param in inspect.signature(func).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not starred:
            lines.append("    *,")
            starred = True
        text = param.name + (f": {param.annotation}" if param.annotation is not inspect.Parameter.empty else "")
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        lines.append(f"    {text},")
    lines.append(f") -> {str(inspect.signature(func).return_annotation).strip(chr(39))}")
    return "\n".join(lines)


def test_docs_api_shows_every_verbs_full_signature():
    """docs/api.md's signatures are the functions' own (regenerate the block with signature_block)."""
    page = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    for verb in VERBS:
        assert f"```python\n{signature_block(verb)}\n```" in page, verb
