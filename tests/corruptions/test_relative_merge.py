"""--perturbation-baseline under --shard, in `nnprobe merge` and under --nproc: slices run with a baseline carry
its counts and merge gives the single run's ratios; merge --perturbation-baseline gives them to slices run
without one; slices whose baselines differ, and a baseline that does not compare with the merged whole
(other images, seed, frames, a slice of its own), are refused in one sentence; --nproc 2 equals one
process. Every baseline field of the merged JSON is compared with the one-process run's."""
from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli

import nnprobe
import tinymodels
from nnprobe.errors import DataError, UsageError
from nnprobe.report import render

MOVES = "brightness,translate,rotate"  # the tiny net flips on each (not on gaussian noise)
BASELINE_FIELDS = ("perturbations", "perturbation_baseline", "flip_rate_vs_baseline", "top5_distance_vs_baseline",
                   "mfr_vs_baseline", "mt5d_vs_baseline", "mean_flip_probability", "mean_top5_distance")
LINEAR = f"{os.path.join(os.path.dirname(tinymodels.__file__), 'tinymodels.py')}:linear_classifier"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seven images, the tiny net's whole run as the baseline, and the linear model's one-process run on it."""
    root = tmp_path_factory.mktemp("relmerge")
    tinymodels.save_class_folders(root / "data", 7, seed=6)
    options = dict(data=str(root / "data"), corruptions="contrast", severity=1, device="cpu", workers=0,
                   batch_size=3, perturbations=MOVES, seed=2)
    base = root / "base.json"
    base.write_text(json.dumps(nnprobe.corruptions(tinymodels.tiny_classifier(), **options).to_dict()))
    one = nnprobe.corruptions(tinymodels.linear_classifier(), perturbation_baseline=str(base), **options).to_dict()
    assert one["mfr_vs_baseline"] is not None and one["perturbation_baseline"]["model"] == "tiny"
    return root, options, base, one


def slices(runs, count: int, baseline=None) -> list[dict]:
    _, options, _, _ = runs
    return [nnprobe.corruptions(tinymodels.linear_classifier(), shard=f"{k}/{count}", perturbation_baseline=baseline,
                                **options).to_dict() for k in range(1, count + 1)]


@pytest.mark.parametrize("count", [2, 3])
def test_slices_run_with_a_baseline_merge_to_the_single_runs_ratios(runs, count):
    _, _, base, one = runs
    parts = slices(runs, count, str(base))
    for part in parts:  # a slice carries the whole baseline's counts, and shows no ratio of its own
        assert part["perturbation_baseline"] == one["perturbation_baseline"]
        assert part["flip_rate_vs_baseline"] is None and part["mfr_vs_baseline"] is None
    merged = nnprobe.merge(parts).to_dict()
    for field in BASELINE_FIELDS:
        assert merged[field] == one[field], field
    assert sum(p["clean"]["total"] for p in parts) == 7 and all(p["clean"]["total"] for p in parts)


def test_a_slice_says_its_ratios_come_with_merge(runs):
    _, _, base, _ = runs
    part = slices(runs, 2, str(base))[0]
    from nnprobe.imagenet_c.results import CorruptionResult
    from nnprobe.results import from_jsonable

    result = from_jsonable(CorruptionResult, part)
    for fmt in ("table", "markdown", "html"):
        text = " ".join(render(result, fmt).split())
        assert "against tiny" in text and "once nnprobe merge adds the slices up" in text, fmt
        assert "FP / T5D vs baseline" not in text, fmt


def test_merge_gives_a_baseline_to_slices_run_without_one(runs):
    _, _, base, one = runs
    merged = nnprobe.merge(slices(runs, 3), perturbation_baseline=str(base)).to_dict()
    for field in BASELINE_FIELDS:
        assert merged[field] == one[field], field
    carried = nnprobe.merge(slices(runs, 2, str(base)), perturbation_baseline=str(base)).to_dict()
    assert carried["mfr_vs_baseline"] == one["mfr_vs_baseline"]  # the same baseline twice: no conflict


def test_baselines_that_do_not_compare_are_refused_in_one_sentence(runs):
    root, options, base, _ = runs
    with_base, without = slices(runs, 2, str(base)), slices(runs, 2)
    with pytest.raises(DataError, match="differ in --perturbation-baseline"):
        nnprobe.merge([with_base[0], without[1]])
    body = json.loads(base.read_text())
    other = dict(body, model=dict(body["model"], spec="other"))
    with pytest.raises(DataError, match="differ in --perturbation-baseline"):
        nnprobe.merge([with_base[0], dict(with_base[1], perturbation_baseline=dict(
            with_base[1]["perturbation_baseline"], model="other"))])
    with pytest.raises(UsageError, match="the slices were run against tiny .* counts other flips"):
        nnprobe.merge(with_base, perturbation_baseline=dict(other, perturbations=[
            dict(p, flips=p["flips"] + 1) for p in body["perturbations"]]))
    fewer = dict(body, perturbations=[dict(p, comparisons=p["comparisons"] + 30) for p in body["perturbations"]])
    cases = [(dict(body, settings=dict(body["settings"], seed=9)), "another --seed"),
             (dict(body, data=dict(body["data"], fingerprint="0" * 16)), "other images"),
             (dict(body, perturbations=body["perturbations"][:1]), "has no translate, rotate sequences"),
             (fewer, "compared another number of frames on brightness, translate, rotate"),
             (with_base[0], "is one --shard slice")]
    for baseline, message in cases:
        with pytest.raises(UsageError, match=message):
            nnprobe.merge(without, perturbation_baseline=baseline)
    with pytest.raises(UsageError, match="is one --shard slice"):  # nor as a slice's own baseline
        nnprobe.corruptions(tinymodels.linear_classifier(), shard="1/2", perturbation_baseline=with_base[1],
                            **options)
    with pytest.raises(UsageError, match="compared another number of frames"):  # found on the merged whole
        nnprobe.merge(slices(runs, 2, fewer))
    damaged = [dict(p, perturbation_baseline=dict(p["perturbation_baseline"], perturbations=[
        dict(q, flips=q["comparisons"] + 1) for q in p["perturbation_baseline"]["perturbations"]])) for p in with_base]
    with pytest.raises(DataError, match="the baseline's perturbation 'brightness' has counts"):  # the schema's
        nnprobe.merge(damaged)


def test_cli_merge_takes_the_baseline_and_refuses_eval_parts(runs, tmp_path, invoke):
    root, _, base, one = runs
    names = []
    for k, part in enumerate(slices(runs, 2), 1):
        names.append(str(tmp_path / f"part{k}.json"))
        with open(names[-1], "w") as f:
            json.dump(part, f)
    done = invoke("merge", *names, "--perturbation-baseline", str(base), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mfr_vs_baseline"] == one["mfr_vs_baseline"]
    missing = invoke("merge", *names, "--perturbation-baseline", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "Perturbation baseline" in missing.stderr and "Traceback" not in missing.stderr
    wrong = invoke("merge", *names, "--perturbation-baseline", names[0])
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1 and "slice" in wrong.stderr
    evals = []
    for k in (1, 2):
        evals.append(str(tmp_path / f"eval{k}.json"))
        body = nnprobe.evaluate(tinymodels.linear_classifier(), str(root / "data"), shard=f"{k}/2", device="cpu",
                                workers=0).to_dict()
        with open(evals[-1], "w") as f:
            json.dump(body, f)
    refused = invoke("merge", *evals, "--perturbation-baseline", str(base))
    assert refused.returncode == 2 and "these are eval slices" in refused.stderr, refused.stderr


def test_nproc_2_with_a_baseline_equals_one_process(runs, tmp_path, invoke):
    root, _, base, _ = runs
    common = ["corruptions", str(root / "data"), "--model", LINEAR, "--corruptions", "contrast", "--severity", "1",
              "--device", "cpu", "--workers", "0", "--batch-size", "3", "--threads", "1", "--seed", "2",
              "--perturbations", MOVES, "--perturbation-baseline", str(base), "--format", "json", "-q"]
    one = invoke(*common, "-o", str(tmp_path / "one.json"))
    two = run_cli(*common, "-o", str(tmp_path / "two.json"), "--nproc", "2", env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert (a["run"]["world_size"], b["run"]["world_size"]) == (1, 2)
    for field in BASELINE_FIELDS:
        assert b[field] == a[field], field
    assert a["mfr_vs_baseline"] is not None
