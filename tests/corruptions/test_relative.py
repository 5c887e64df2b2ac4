"""--perturbation-baseline: ImageNet-P flip rates over a reference model's run on the same sequences (mFR and
mT5D against that model, since AlexNet's are not published). The ratios against a plain computation from
the two JSON files; the refusals (other images, seed or perturbations, no --perturbations, a result of another
kind) one sentence each; the CLI and the reports. Slices, merge and --nproc: test_relative_merge.py."""
from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

import nnprobe
import tinymodels
from nnprobe.errors import DataError, UsageError

MOVES = "brightness,translate"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A data folder, the tiny model's run written as JSON (the baseline), and the linear model's against it."""
    root = tmp_path_factory.mktemp("relative")
    tinymodels.save_class_folders(root / "data", 6, seed=5)
    options = dict(data=str(root / "data"), corruptions="contrast", severity=1, device="cpu", workers=0,
                   batch_size=4, perturbations=MOVES)
    base = nnprobe.corruptions(tinymodels.tiny_classifier(), **options)
    path = root / "base.json"
    path.write_text(json.dumps(base.to_dict()))
    ours = nnprobe.corruptions(tinymodels.linear_classifier(), perturbation_baseline=str(path), **options)
    return root, options, path, ours


def test_each_flip_rate_is_divided_by_the_baselines_and_averaged(runs):
    root, _, path, ours = runs
    theirs = {p["perturbation"]: p for p in json.loads(path.read_text())["perturbations"]}
    body = ours.to_dict()
    fr, t5d = {}, {}
    for p in body["perturbations"]:
        q = theirs[p["perturbation"]]
        fr[p["perturbation"]] = (p["flips"] / p["comparisons"]) / (q["flips"] / q["comparisons"])
        t5d[p["perturbation"]] = ((p["top5_distance_sum"] / p["comparisons"])
                                  / (q["top5_distance_sum"] / q["comparisons"]))
    assert body["flip_rate_vs_baseline"] == pytest.approx(fr)
    assert body["top5_distance_vs_baseline"] == pytest.approx(t5d)
    assert body["mfr_vs_baseline"] == pytest.approx(sum(fr.values()) / 2)
    assert body["mt5d_vs_baseline"] == pytest.approx(sum(t5d.values()) / 2)
    assert body["perturbation_baseline"]["source"] == str(path)
    assert body["perturbation_baseline"]["model"] == "tiny"
    assert all(q["flips"] > 0 for q in theirs.values())  # ratios of something


def test_the_reports_show_the_ratios_and_what_they_are_against(runs):
    from nnprobe.report import markdown
    from nnprobe.report.corruption_table import render

    ours = runs[3]
    console = Console(file=io.StringIO(), width=200)
    render(ours, console)
    text = console.file.getvalue()
    assert "FP / T5D vs baseline" in text and f"mFR {ours.mfr_vs_baseline:.3f}" in text and "against tiny" in text
    lines = "\n".join(markdown.corruption_lines(ours))
    assert "FP / T5D vs baseline" in lines and f"mFR {ours.mfr_vs_baseline:.3f}" in lines


def test_a_baseline_that_does_not_compare_is_refused_in_one_sentence(runs, tmp_path):
    root, options, path, _ = runs
    model = tinymodels.linear_classifier()
    body = json.loads(path.read_text())
    cases = [
        (dict(body, settings=dict(body["settings"], seed=9)), {}, "another --seed"),
        (dict(body, data=dict(body["data"], fingerprint="0" * 16)), {}, "other images"),
        (dict(body, perturbations=body["perturbations"][:1]), {}, "has no translate sequences"),
        (body, dict(perturbations=None), "give --perturbations too"),
    ]
    for baseline, change, message in cases:
        with pytest.raises(UsageError, match=message):
            nnprobe.corruptions(model, **dict(options, **change), perturbation_baseline=baseline)
    with pytest.raises(DataError, match="is not an nnprobe corruption result"):
        nnprobe.corruptions(model, **options, perturbation_baseline=dict(body, kind="eval"))


def test_cli_prints_mfr_against_the_baseline_and_refuses_a_missing_file(runs, invoke):
    root, _, path, ours = runs
    spec = f"{tinymodels.__file__}:linear_classifier"
    common = [str(root / "data"), "--model", spec, "--corruptions", "contrast", "--severity", "1", "--device", "cpu",
              "--workers", "0", "--batch-size", "4", "--perturbations", MOVES]
    done = invoke("corruptions", *common, "--perturbation-baseline", str(path), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mfr_vs_baseline"] == pytest.approx(ours.mfr_vs_baseline)
    missing = invoke("corruptions", *common, "--perturbation-baseline", str(root / "nope.json"))
    assert missing.returncode == 2 and "Perturbation baseline" in missing.stderr and "Traceback" not in missing.stderr


def test_a_baseline_that_cannot_compare_is_refused_before_the_sweep(runs, monkeypatch):
    """Other images, seed, sequences or a slice: one sentence before any image is corrupted, not after."""
    from nnprobe.imagenet_c import sweep

    root, options, path, _ = runs
    body = json.loads(path.read_text())

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep ran before the baseline was checked")

    monkeypatch.setattr(sweep, "corruption_sweep", no_sweep)
    cases = [(dict(body, settings=dict(body["settings"], seed=9)), "another --seed"),
             (dict(body, data=dict(body["data"], fingerprint="0" * 16)), "other images"),
             (dict(body, perturbations=body["perturbations"][:1]), "has no translate sequences"),
             (dict(body, data=dict(body["data"], shard={"index": 1, "count": 2})), "is one --shard slice")]
    for baseline, message in cases:
        with pytest.raises(UsageError, match=message):
            nnprobe.corruptions(tinymodels.linear_classifier(), **options, perturbation_baseline=baseline)
    with pytest.raises(AssertionError, match="the sweep ran"):  # a baseline that compares gets to the sweep
        nnprobe.corruptions(tinymodels.linear_classifier(), **options, perturbation_baseline=body)
