"""`--reference-model` with several models: each model is a candidate held against the one reference, as a
single-model `--reference-model` run holds it (its parity, its --max-flips/--max-logit-diff gates, an ONNX export
without preprocessing flags taking the reference's). The reference is the single-model path run separately (itself
tested against a plain loop over both models' logits in tests/models/test_onnx_parity.py)."""
from __future__ import annotations

import json

import pytest
from eval.test_shard_merge import _run_only, _same, _without
from helpers import PLAIN, PLAIN_FLAGS
from models.test_onnx_parity import FACTORY, setup  # noqa: F401 - the module's fixture: data, good and bad exports

import nnprobe


def _body(result) -> dict:
    return _run_only(_without(result.to_dict(), "images_per_second"))


@pytest.mark.parametrize("given", ["spec", "classifier"])
def test_each_model_is_held_against_the_reference_as_alone(setup, given):  # noqa: F811
    """The reference as a spec with the preprocessing flags, or as a Classifier carrying its own preprocessing
    (no flags: the ONNX candidates take the reference's)."""
    _, data, reference, good, bad = setup
    data = str(data)
    options = dict(reference_model=FACTORY, **PLAIN) if given == "spec" else dict(reference_model=reference)
    calls = []
    hook = reference.net.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    try:
        both = nnprobe.evaluate([good, bad], data, workers=0, max_logit_diff=0.01, batch_size=4, **options)
    finally:
        hook.remove()
    if given == "classifier":  # one reference forward per batch, shared by the two candidates (not one each)
        assert calls == [4, 4, 1]
    for spec, run in zip((good, bad), both.runs):
        alone = nnprobe.evaluate(spec, data, workers=0, max_logit_diff=0.01, **options)
        _same(_body(alone), _body(run))
        assert run.parity.images == 9 and run.parity.reference == reference.info.spec
        if given == "classifier":
            assert run.model.preprocessing.source == f"the reference model's ({reference.info.spec})"
    assert [r.parity.top1_changed for r in both.runs] == [0, both.runs[1].parity.top1_changed]
    assert both.runs[1].parity.top1_changed > 0 and both.failed_models == [bad]
    assert [g.name for g in both.gates] == [f"{m}: {g}" for m in (good, bad) for g in ("max-flips", "max-logit-diff")]


def test_cli_names_the_drifting_model(setup, invoke):  # noqa: F811
    _, data, _, good, bad = setup
    argv = ["eval", str(data), "--model", good, "--model", bad, "--reference-model", FACTORY, *PLAIN_FLAGS, "--workers",
            "0", "--threads", "1"]
    run = invoke(*argv, "--format", "json")
    assert run.returncode == 1 and f"failed: {bad}: max-flips" in run.stderr and f"failed: {good}" not in run.stderr
    body = json.loads(run.stdout)
    assert body["kind"] == "eval-models" and body["failed_models"] == [bad]
    assert [m["parity"]["top1_changed"] == 0 for m in body["models"]] == [True, False]
    loose = invoke(*argv, "--max-flips", "1000", "-q")
    assert loose.returncode == 0 and loose.stdout.count("top-1 answers changed") == 1 + 2, loose.stdout  # the summary, each report
    summary = loose.stdout.split("model 1 of 2")[0]  # under the summary: each model against the reference
    p = [m["parity"] for m in body["models"]]
    each = "; ".join(f"{name} {q['top1_changed']}/9 (largest logit difference {q['max_logit_diff']:.3g})"
                     for name, q in zip((good, bad), p))
    said = f"top-1 answers changed against the reference {FACTORY}: {each}"
    assert " ".join(said.split()) in " ".join(summary.split()), summary
    md = invoke(*argv, "--max-flips", "1000", "--format", "markdown").stdout
    assert said.replace("_", "\\_") in md.split("#### model 1 of 2")[0], md
