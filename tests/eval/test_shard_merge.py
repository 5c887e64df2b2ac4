"""`--shard K/N` + `nnprobe merge`: N = 1, 2, 3 slices merged equal one process exactly, for eval and robust;
gaps, overlaps and slices of other runs are refused in one sentence."""
from __future__ import annotations

import json

import pytest
from data.test_decode import make_broken_files
from helpers import PLAIN, PLAIN_FLAGS, TESTS, factory_spec, make_wnid_folders

from nnprobe import api
from nnprobe.data.shards import shard_positions
from nnprobe.errors import DataError, UsageError
from nnprobe.models.imagenet import imagenet_wnids
from nnprobe.options.parts import Part, parse_part
from nnprobe.per_sample import read

MODEL = factory_spec("color_net_1000")
EXACT_ROW = ("i", "path", "label", "top5", "correct")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_wnid_folders(tmp_path_factory.mktemp("shards") / "data", {5: 4, 350: 2, 998: 3},
                             wrong={5: 2, 998: 1})
    make_broken_files(root / imagenet_wnids()[350] / "x")
    (root / imagenet_wnids()[350] / "x" / "bomb.png").unlink()
    return root


def test_slices_and_ranks_cover_every_position_once():
    for total in (0, 1, 7, 23):
        for count in (1, 2, 3, 5):
            for world in (1, 2, 3):
                got = sorted(p for k in range(1, count + 1) for r in range(world)
                             for p in shard_positions(total, r, world, Part(k, count)))
                assert got == list(range(total)), (total, count, world)


def test_shard_spelling():
    assert parse_part("3/8") == Part(3, 8) and parse_part(" 1 / 1 ") == Part(1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/99999999"):
        with pytest.raises(UsageError):
            parse_part(bad)


def _run_slices(tmp_path, verb, data, count, **options):
    """The count slices, each written as a result JSON beside its per-sample file (as an array job would)."""
    paths = []
    for k in range(1, count + 1):
        rows = tmp_path / f"{verb.__name__}-{k}of{count}.jsonl"
        result = verb(MODEL, data, workers=0, shard=f"{k}/{count}", save_predictions=str(rows), **options, **PLAIN)
        path = tmp_path / f"{verb.__name__}-{k}of{count}.json"
        path.write_text(json.dumps(result.to_dict()))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("count", [1, 2, 3])
def test_eval_slices_merged_equal_one_process(tmp_path, data, count):
    one = api.evaluate(MODEL, data, workers=0, save_predictions=str(tmp_path / "one.jsonl"), **PLAIN)
    parts = _run_slices(tmp_path, api.evaluate, data, count)
    merged = api.merge(list(reversed(parts)), min_top1=0.5, save_predictions=str(tmp_path / "merged.jsonl"))
    a, b = one.to_dict(), merged.to_dict()
    for key in ("correct_top1", "correct_top5", "total", "converted", "per_class", "skipped", "predictions",
                "model", "top1", "top5"):
        assert b[key] == a[key], key
    assert (a["total"], a["correct_top1"], len(a["skipped"])) == (12, 9, 3)
    assert b["mean_loss"] == pytest.approx(a["mean_loss"], rel=1e-6)
    assert b["data"]["fingerprint"] == a["data"]["fingerprint"] and b["data"]["merged_from"] == count
    assert "shard" not in b["data"] and [g["passed"] for g in b["gates"]] == [True]
    assert [x.count for x in merged.calibration.bins] == [x.count for x in one.calibration.bins]
    assert merged.calibration.ece == pytest.approx(one.calibration.ece, abs=1e-6)
    assert merged.calibration.brier == pytest.approx(one.calibration.brier, rel=1e-6)
    assert merged.confused_pairs == one.confused_pairs and sum(p.count for p in one.confused_pairs) == 3
    (_, rows_one), (_, rows_merged) = read(str(tmp_path / "one.jsonl")), read(str(tmp_path / "merged.jsonl"))
    assert [{k: r[k] for k in EXACT_ROW} for r in rows_merged] == [{k: r[k] for k in EXACT_ROW} for r in rows_one]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_robust_slices_merged_equal_one_process(tmp_path, data, count):
    options = dict(eps="0,2/255,8/255", steps=3, seed=7)
    one = api.robust(MODEL, data, workers=0, **options, **PLAIN)
    merged = api.merge(_run_slices(tmp_path, api.robust, data, count, **options), min_robust_top1={2 / 255: 0.1})
    for p, q in zip(one.points, merged.points):
        assert (q.eps, q.correct_top1, q.correct_top5, q.total, q.clean_correct, q.fooled) == \
               (p.eps, p.correct_top1, p.correct_top5, p.total, p.clean_correct, p.fooled)
        assert q.mean_linf == pytest.approx(p.mean_linf, rel=1e-6, nan_ok=True)
        assert q.mean_l2 == pytest.approx(p.mean_l2, rel=1e-6, nan_ok=True)
    assert one.points[0].total == 12 and merged.settings == one.settings and merged.gates[0].passed


def test_gaps_overlaps_and_other_runs_are_refused(tmp_path, data):
    parts = _run_slices(tmp_path, api.evaluate, data, 3)
    with pytest.raises(DataError, match=r"Slice 2/3 missing: 2 of 3 given"):
        api.merge([parts[0], parts[2]])
    with pytest.raises(DataError, match="both slice 1/3: an overlap"):
        api.merge([parts[0], parts[0], parts[1], parts[2]])
    other = make_wnid_folders(tmp_path / "other", {5: 4, 350: 2, 998: 3})
    foreign = api.evaluate(MODEL, other, workers=0, shard="2/3", **PLAIN).to_dict()
    with pytest.raises(DataError, match="differ in data"):
        api.merge([parts[0], foreign, parts[2]])
    two = api.evaluate(MODEL, data, workers=0, shard="2/2", **PLAIN).to_dict()
    with pytest.raises(DataError, match="number of slices"):
        api.merge([parts[0], two])
    whole = api.evaluate(MODEL, data, workers=0, **PLAIN).to_dict()
    with pytest.raises(DataError, match="not a --shard K/N result"):
        api.merge([whole])
    robust = api.robust(MODEL, data, workers=0, shard="2/3", eps="0", **PLAIN).to_dict()
    with pytest.raises(DataError, match="differ in kind"):
        api.merge([parts[0], robust, parts[2]])
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(DataError, match="is not JSON"):
        api.merge([str(tmp_path / "junk.json")])
    with pytest.raises(UsageError, match="give them to nnprobe merge"):
        api.evaluate(MODEL, data, workers=0, shard="1/2", min_top1=0.5, **PLAIN)


def test_merge_command(tmp_path, data, invoke):
    parts = _run_slices(tmp_path, api.evaluate, data, 2)
    out = tmp_path / "all.json"
    proc = invoke("merge", *parts, "--format", "json", "-o", str(out), "--min-top1", "0.8")
    assert proc.returncode == 1 and "min-top1" in proc.stderr  # 9/12 < 0.8
    body = json.loads(out.read_text())
    assert (body["correct_top1"], body["total"], body["data"]["merged_from"]) == (9, 12, 2)
    before = open(parts[0]).read()
    refused = invoke("merge", *parts, "-o", parts[0])
    assert refused.returncode == 2 and open(parts[0]).read() == before
    gap = invoke("merge", parts[1])
    assert gap.returncode == 2 and "Slice 1/2 missing" in gap.stderr and "Traceback" not in gap.stderr
    bad = invoke("eval", str(data), "--model", MODEL, *PLAIN_FLAGS, "--shard", "4/3")
    assert bad.returncode == 2 and "--shard" in bad.stderr


@pytest.mark.parametrize("count", [2, 3])
def test_autoattack_slices_merged_equal_one_process(tmp_path, data, count):
    options = dict(attack="autoattack", eps="0,1/255,4/255", steps=3, seed=2)
    one = api.robust(MODEL, data, workers=0, **options, **PLAIN)
    merged = api.merge(_run_slices(tmp_path, api.robust, data, count, **options))
    assert [(p.correct_top1, p.correct_top5, p.total, p.fooled) for p in merged.points] == \
           [(p.correct_top1, p.correct_top5, p.total, p.fooled) for p in one.points]
    assert merged.settings == one.settings and one.points[0].total == 12
    # the sanity evidence of all slices, summed (test_merged_robust_equals_one_process_in_every_field has more)
    assert merged.sanity == one.sanity and merged.findings == one.findings and one.sanity["model"]["grad_checked"] == 12


@pytest.mark.parametrize("count", [1, 2, 3])
def test_corruption_slices_merged_equal_one_process(tmp_path, data, count):
    options = dict(corruptions="gaussian_noise,jpeg_compression,fog", severity="1,5", seed=4)
    one = api.robust(MODEL, data, workers=0, **options, **PLAIN)
    parts = []
    for k in range(1, count + 1):
        part = api.robust(MODEL, data, workers=0, shard=f"{k}/{count}", **options, **PLAIN).to_dict()
        parts.append(part)
    merged = api.merge(parts, min_corruption_top1=0.0)
    assert merged.clean == one.clean and merged.clean.total == 12
    assert [(p.corruption, p.severity, p.correct_top1, p.correct_top5, p.total) for p in merged.points] == \
           [(p.corruption, p.severity, p.correct_top1, p.correct_top5, p.total) for p in one.points]
    assert merged.mean_corruption_top1 == one.mean_corruption_top1 and merged.gates[0].passed
    from nnprobe.report import render

    summary = render(merged, "markdown")
    assert f"mean corruption top-1 **{100 * one.mean_corruption_top1:.2f}%**" in summary


def _without(body: dict, *keys: str) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


def _same(left, right, where: str = "") -> None:
    """Equal in every field: the same keys, exact values, floats to 1e-6 (sums over other batch splits)."""
    if isinstance(left, dict) and isinstance(right, dict):
        assert set(left) == set(right), (where, set(left) ^ set(right))
        for key in left:
            _same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert right == pytest.approx(left, rel=1e-6, abs=1e-9), where
    else:
        assert left == right, (where, left, right)


def _run_only(body: dict) -> dict:
    """A robust result's JSON less what says how it ran (time, processes, where its files went, slicing)."""
    body = _without(body, "per_sample")
    body["run"] = _without(body["run"], "seconds", "world_size")
    body["data"] = _without(body["data"], "shard", "merged_from", "slices")
    return body


@pytest.mark.parametrize("model, attack, count, min_norm", [("softmax_color_net_1000", "pgd", 2, "fmn-l2"),
                                                            ("rounded_color_net_1000", "pgd", 3, None)])
def test_merged_robust_equals_one_process_in_every_field(tmp_path, data, count, model, attack, min_norm):
    """Every field of the JSON, the sanity findings and their summed evidence included (issue 16 part 3:
    a merged run used to report slice 1's `checked: 6` for the whole data set's 12), and --min-norm's
    distribution, recomputed from the slices' per-sample distances."""
    options = dict(attack=attack, eps="0,2/255,8/255", steps=3, seed=7, min_norm=min_norm,
                   min_norm_steps=10 if min_norm else None)
    gates = {2 / 255: 0.1}
    spec = f"{TESTS / 'eval' / 'masked_models.py'}:{model}"
    one = api.robust(spec, data, workers=0, min_robust_top1=gates, save_predictions=str(tmp_path / "one.jsonl"),
                     **options, **PLAIN)
    parts = []
    for k in range(1, count + 1):
        rows = tmp_path / f"{k}.jsonl"
        part = api.robust(spec, data, workers=0, shard=f"{k}/{count}", save_predictions=str(rows), **options,
                          **PLAIN)
        parts.append(tmp_path / f"{k}.json")
        parts[-1].write_text(json.dumps(part.to_dict()))
    merged = api.merge([str(p) for p in parts], min_robust_top1=gates, save_predictions=str(tmp_path / "all.jsonl"))
    assert one.findings, "the model sets off a sanity check"
    _same(_run_only(one.to_dict()), _run_only(merged.to_dict()))
    assert (merged.per_sample.sha256, merged.per_sample.rows) == (one.per_sample.sha256, one.per_sample.rows)
    assert merged.min_norm == one.min_norm and (min_norm is None) == (one.min_norm is None)  # exactly
    checked = {f.id: f.evidence["checked"] for f in merged.findings if f.id in ("zero-gradients",
                                                                             "probabilities-not-logits")}
    assert list(checked.values()) == [12], checked  # every image of the data set, not slice 1's 6 or 4


@pytest.mark.parametrize("count", [3])
def test_merged_eval_and_corruption_equal_one_process_in_every_field(tmp_path, data, count):
    """Every key of the JSON (floats to 1e-6) but how it ran, for eval with its per-sample rows merged and
    for a corruption sweep: a field merge forgets fails here (issue 16 part 3)."""
    one = api.evaluate(MODEL, data, workers=0, save_predictions=str(tmp_path / "one.jsonl"), min_top1=0.5, **PLAIN)
    merged = api.merge(_run_slices(tmp_path, api.evaluate, data, count), min_top1=0.5,
                       save_predictions=str(tmp_path / "merged.jsonl"))
    # the calibration suite from the merged rows, intervals too (tests/eval/test_merge_calibration.py)
    assert merged.calibration_suite is not None and merged.calibration_suite.missing is None
    _same(_run_only(_without(one.to_dict(), "images_per_second")),
          _run_only(_without(merged.to_dict(), "images_per_second")))
    options = dict(corruptions="gaussian_noise,fog", severity="1,3", seed=4)
    one = api.robust(MODEL, data, workers=0, min_corruption_top1=0.1, **options, **PLAIN)
    parts = [api.robust(MODEL, data, workers=0, shard=f"{k}/{count}", **options, **PLAIN).to_dict()
             for k in range(1, count + 1)]
    _same(_run_only(one.to_dict()), _run_only(api.merge(parts, min_corruption_top1=0.1).to_dict()))
