"""nnprobe.compare on hand-built results: every expected number is counted here by plain loops over the
rows the test made, the p-values by scipy; the public API is called twice (it is a product)."""
from __future__ import annotations

import json

import pytest
from compare_helpers import diagnose_dict, eval_result, eval_rows, random_eval_pair, robust_result
from scipy.stats import binomtest

import nnprobe
from nnprobe.comparison import parse_drop
from nnprobe.errors import DataError, InputError, UsageError


def p_worse(b: int, c: int) -> float:
    return binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0


@pytest.fixture
def pair(tmp_path):
    base_rows, cand_rows = random_eval_pair(seed=3, n=400, num_classes=7, worse=0.08)
    base = eval_result(tmp_path, "base", base_rows, 7)
    cand = eval_result(tmp_path, "cand", cand_rows, 7, gz=True)
    return base, cand, base_rows, cand_rows


def test_eval_deltas_flips_and_mcnemar(pair):
    base, cand, base_rows, cand_rows = pair
    worse = [a["path"] for a, b in zip(base_rows, cand_rows) if a["correct"] and not b["correct"]]
    better = [a["path"] for a, b in zip(base_rows, cand_rows) if not a["correct"] and b["correct"]]
    assert len(worse) > 15 and better  # the fixture really moved answers
    results = [nnprobe.compare(base, cand) for _ in range(2)]
    assert results[0] == results[1]
    result = results[0]
    assert (result.compared, result.same_data, result.paired, result.passed) == ("eval", True, True, True)
    flips = result.flips_top1
    assert (flips.right_to_wrong, flips.wrong_to_right) == (len(worse), len(better))
    assert list(flips.right_to_wrong_paths) == worse[:20] and list(flips.wrong_to_right_paths) == better[:20]
    assert flips.p == pytest.approx(p_worse(len(worse), len(better)), rel=1e-12)
    top1 = {m.name: m for m in result.metrics}["top1"]
    assert top1.delta == pytest.approx((len(better) - len(worse)) / 400)
    loss = {m.name: m for m in result.metrics}["mean_loss"]
    expected = sum(r["loss"] for r in cand_rows) / 400 - sum(r["loss"] for r in base_rows) / 400
    assert loss.delta == pytest.approx(expected)
    worse5 = sum(a["label"] in a["top5"] and b["label"] not in b["top5"] for a, b in zip(base_rows, cand_rows))
    better5 = sum(a["label"] not in a["top5"] and b["label"] in b["top5"] for a, b in zip(base_rows, cand_rows))
    assert (result.flips_top5.right_to_wrong, result.flips_top5.wrong_to_right) == (worse5, better5)
    assert result.to_dict()["kind"] == "compare" and json.dumps(result.to_dict(), allow_nan=False)


def test_classes_that_lost_most(pair):
    base, cand, base_rows, cand_rows = pair
    drops = []
    for k in range(7):
        mine = [(a, b) for a, b in zip(base_rows, cand_rows) if a["label"] == k]
        before, after = sum(a["correct"] for a, _ in mine), sum(b["correct"] for _, b in mine)
        b_k = sum(a["correct"] and not b["correct"] for a, b in mine)
        c_k = sum(b["correct"] and not a["correct"] for a, b in mine)
        drops.append(((before - after) / len(mine), k, before, after, len(mine), p_worse(b_k, c_k)))
    expected = sorted((d for d in drops if d[0] > 0), key=lambda d: (-d[0], d[1]))[:10]
    got = nnprobe.compare(base, cand).classes
    assert [(c.index, c.baseline_correct, c.candidate_correct, c.baseline_total) for c in got] == \
        [(k, before, after, total) for _, k, before, after, total, _ in expected]
    assert [c.p for c in got] == pytest.approx([d[5] for d in expected], rel=1e-12)
    worst = expected[0]
    gate = nnprobe.compare(base, cand, max_class_drop=worst[0] - 1e-6).gates[0]
    assert (gate.name, gate.passed, gate.measured) == ("max-class-drop", False, pytest.approx(worst[0]))
    assert f"class{worst[1]}" in gate.message
    assert nnprobe.compare(base, cand, max_class_drop=worst[0] + 1e-6).passed


def test_drop_gates_and_alpha(pair):
    base, cand, base_rows, cand_rows = pair
    b = sum(x["correct"] and not y["correct"] for x, y in zip(base_rows, cand_rows))
    c = sum(y["correct"] and not x["correct"] for x, y in zip(base_rows, cand_rows))
    drop, p = (b - c) / 400, p_worse(b, c)
    assert drop > 0.02 and 0.01 < p < 0.05
    assert not nnprobe.compare(base, cand, max_drop_top1=drop - 0.001).passed
    assert nnprobe.compare(base, cand, max_drop_top1=f"{100 * drop + 0.1}pt").passed
    assert not nnprobe.compare(base, cand, max_drop_top1="0.3pt", alpha=0.05).passed  # over and significant
    assert nnprobe.compare(base, cand, max_drop_top1="0.3pt", alpha=0.01).passed  # over, not significant
    assert nnprobe.compare(base, cand, max_drop_top1="0.3pt", alpha=p).passed  # p < alpha is strict
    gate = nnprobe.compare(base, cand, max_drop_top1="0.3pt", alpha=0.05).gates[0]
    assert gate.threshold == pytest.approx(0.003) and gate.measured == pytest.approx(drop)
    drop5 = (sum(r["label"] in r["top5"] for r in base_rows) - sum(r["label"] in r["top5"] for r in cand_rows)) / 400
    gate5 = nnprobe.compare(base, cand, max_drop_top5=0.0).gates[0]
    assert gate5.measured == pytest.approx(drop5) and gate5.passed == (drop5 <= 0)


def test_a_gain_never_fails_a_drop_gate(pair):
    base, cand, _, _ = pair
    reverse = nnprobe.compare(cand, base, max_drop_top1=0, max_class_drop=0.05, alpha=0.05)
    assert reverse.gates[0].passed and reverse.gates[0].measured < 0


@pytest.mark.parametrize("text, value", [("0.3pt", 0.003), ("0.3%", 0.003), ("0.3pp", 0.003), ("0.003", 0.003),
                                         (0.5, 0.5), ("100pt", 1.0), ("0", 0.0), (" 1.5 PT ", 0.015)])
def test_threshold_syntax(text, value):
    assert parse_drop(text, "x") == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "2", "-1pt", "101%", "nan", "inf", "pt", True])
def test_bad_thresholds_are_one_sentence(text):
    with pytest.raises(UsageError):
        parse_drop(text, "max_drop_top1")


@pytest.mark.parametrize("alpha", [0, 1, "x", -0.1, 1.5])
def test_bad_alpha(pair, alpha):
    with pytest.raises(UsageError):
        nnprobe.compare(pair[0], pair[1], alpha=alpha)


def test_ece_delta_when_both_have_calibration(tmp_path):
    rows = eval_rows([0, 1], [[0, 1], [0, 1]], [0.1, 0.2])
    base = eval_result(tmp_path, "b", rows, 2, calibration={"ece": 0.05, "nll": 1, "brier": 1, "bins": []})
    cand = eval_result(tmp_path, "c", rows, 2, calibration={"ece": 0.08, "nll": 1, "brier": 1, "bins": []})
    ece = {m.name: m for m in nnprobe.compare(base, cand).metrics}["ece"]
    assert (ece.baseline, ece.candidate, ece.delta) == (0.05, 0.08, pytest.approx(0.03))
    other = eval_result(tmp_path, "d", rows, 2)
    assert "ece" not in {m.name for m in nnprobe.compare(base, other).metrics}


def test_different_images_are_refused_naming_the_first_difference(tmp_path):
    rows = eval_rows([0, 1, 1], [[0, 1], [1, 0], [0, 1]], [0.1, 0.2, 0.3])
    moved = [dict(r) for r in rows]
    moved[1]["path"] = "c1/other.png"
    base, cand = eval_result(tmp_path, "b", rows, 2), eval_result(tmp_path, "c", moved, 2)
    with pytest.raises(DataError, match=r"row 1 is c1/img0001.png \(label 1\) .* row 1 is c1/other.png"):
        nnprobe.compare(base, cand)
    allowed = nnprobe.compare(base, cand, allow_different_data=True)
    assert (allowed.same_data, allowed.paired, allowed.flips_top1) == (False, False, None)
    assert any("only the aggregates" in note for note in allowed.notes)
    with pytest.raises(UsageError, match="alpha"):
        nnprobe.compare(base, cand, allow_different_data=True, alpha=0.05, max_drop_top1=0.1)


def test_different_labels_refused_by_fingerprint_alone(tmp_path):
    rows = eval_rows([0, 1], [[0, 1], [1, 0]], [0.1, 0.2])
    relabelled = eval_rows([0, 0], [[0, 1], [1, 0]], [0.1, 0.2])
    base = eval_result(tmp_path, "b", rows, 2, preds=False)
    cand = eval_result(tmp_path, "c", relabelled, 2, preds=False)
    with pytest.raises(DataError, match="data sets differ"):
        nnprobe.compare(base, cand)


def test_older_results_without_fingerprint_are_compared_with_a_note(tmp_path):
    rows = eval_rows([0, 1], [[0, 1], [1, 0]], [0.1, 0.2])
    base = eval_result(tmp_path, "b", rows, 2, preds=False, with_fingerprint=False)
    cand = eval_result(tmp_path, "c", rows, 2, preds=False, with_fingerprint=False)
    result = nnprobe.compare(base, cand)
    assert result.same_data is None and not result.paired
    assert sum("no data fingerprint" in n for n in result.notes) == 2
    assert any("No per-sample file" in n for n in result.notes)
    with pytest.raises(UsageError, match="per-sample files in both"):
        nnprobe.compare(base, cand, alpha=0.05)


def test_a_changed_per_sample_file_is_refused(pair):
    base, cand, _, _ = pair
    preds = base.with_name("base.preds")
    lines = preds.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"loss": ', '"loss": 1')
    preds.write_text("".join(lines))
    with pytest.raises(DataError, match="does not match the sha256"):
        nnprobe.compare(base, cand)


def test_per_sample_paths_resolve_beside_the_result_then_cwd(pair, tmp_path, monkeypatch):
    base, cand, _, _ = pair
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert nnprobe.compare(base, cand).paired  # beside the JSON, though cwd is elsewhere
    body = json.loads(base.read_text())
    (elsewhere / "base.preds").write_bytes(base.with_name("base.preds").read_bytes())
    moved = tmp_path / "sub"
    moved.mkdir()
    (moved / "base.json").write_text(json.dumps(body))
    assert nnprobe.compare(moved / "base.json", cand).paired  # found from the current folder
    (elsewhere / "base.preds").unlink()
    with pytest.raises(InputError, match="is not found"):
        nnprobe.compare(moved / "base.json", cand)


def test_dicts_and_paths_and_kinds(pair, tmp_path):
    base, cand, _, _ = pair
    body = json.loads(base.read_text())
    body["per_sample"] = None
    assert not nnprobe.compare(body, json.loads(cand.read_text()) | {"per_sample": None}).paired
    robust = robust_result(tmp_path, "r", [{"i": 0, "path": "a", "label": 0, "clean_correct": True,
                                            "fell_at": None}], [0.0])
    with pytest.raises(UsageError, match="cannot compare a eval result"):
        nnprobe.compare(base, robust)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not an nnprobe"):
        nnprobe.compare(tmp_path / "junk.json", cand)
    with pytest.raises(InputError, match="does not exist"):
        nnprobe.compare(tmp_path / "nope.json", cand)


def robust_rows(fell: list[float | None], clean: list[bool]) -> list[dict]:
    return [{"i": i, "path": f"c0/{i}.png", "label": 0, "clean_correct": ok, "fell_at": f if ok else 0.0}
            for i, (f, ok) in enumerate(zip(fell, clean))]


EPS = [0.0, 1 / 255, 2 / 255, 4 / 255]


def test_robust_per_eps_deltas_gates_and_earlier_falls(tmp_path):
    import random

    rng = random.Random(5)
    choices = [None] + EPS[1:]
    base_fell = [rng.choice(choices) for _ in range(300)]
    clean = [rng.random() < 0.9 for _ in range(300)]
    cand_fell = [f if rng.random() < 0.6 else rng.choice(choices) for f in base_fell]
    base_rows, cand_rows = robust_rows(base_fell, clean), robust_rows(cand_fell, clean)
    base = robust_result(tmp_path, "b", base_rows, EPS)
    cand = robust_result(tmp_path, "c", cand_rows, EPS)
    results = [nnprobe.compare(base, cand, max_drop_top1="1pt") for _ in range(2)]
    assert results[0] == results[1]
    result = results[0]

    def right(row, e):
        return row["clean_correct"] and (row["fell_at"] is None or row["fell_at"] > e)

    for point, e in zip(result.points, EPS):
        b = sum(right(x, e) and not right(y, e) for x, y in zip(base_rows, cand_rows))
        c = sum(right(y, e) and not right(x, e) for x, y in zip(base_rows, cand_rows))
        assert point.eps == e
        assert (point.flips.right_to_wrong, point.flips.wrong_to_right) == (b, c)
        assert point.drop == pytest.approx((b - c) / 300)
        assert point.flips.p == pytest.approx(p_worse(b, c), rel=1e-12)
    assert [g.name for g in result.gates] == ["max-drop-top1 eps=0", "max-drop-top1 eps=1/255",
                                              "max-drop-top1 eps=2/255", "max-drop-top1 eps=4/255"]
    assert [g.passed for g in result.gates] == [p.drop <= 0.01 for p in result.points]

    significant = nnprobe.compare(base, cand, max_drop_top1=0, alpha=0.2)
    assert [g.passed for g in significant.gates] == \
        [not (p.drop > 0 and p_worse(p.flips.right_to_wrong, p.flips.wrong_to_right) < 0.2) for p in result.points]
    top5 = nnprobe.compare(base, cand, max_drop_top5=0.005).gates
    body_b, body_c = (json.loads(x.read_text())["points"] for x in (base, cand))
    drops5 = [(x["correct_top5"] - y["correct_top5"]) / 300 for x, y in zip(body_b, body_c)]
    assert [g.measured for g in top5] == pytest.approx(drops5)
    assert [g.passed for g in top5] == [d <= 0.005 for d in drops5]
    with pytest.raises(UsageError, match="top-1 verdicts only"):
        nnprobe.compare(base, cand, max_drop_top5=0.005, alpha=0.05)

    def key(f):
        return float("inf") if f is None else f

    earlier = [x["path"] for x, y in zip(base_rows, cand_rows) if key(y["fell_at"]) < key(x["fell_at"])]
    later = sum(key(y["fell_at"]) > key(x["fell_at"]) for x, y in zip(base_rows, cand_rows))
    assert (result.fell_earlier, result.fell_later, list(result.fell_earlier_paths)) == \
        (len(earlier), later, earlier[:20])


def test_robust_eps_sets_must_match(tmp_path):
    rows = robust_rows([None, 1 / 255, 2 / 255], [True, True, False])
    base = robust_result(tmp_path, "b", rows, EPS)
    cand = robust_result(tmp_path, "c", rows, EPS[:3] + [8 / 255])
    with pytest.raises(DataError, match="eps 4/255 is in the baseline's sweep but not the candidate's"):
        nnprobe.compare(base, cand)
    result = nnprobe.compare(base, cand, allow_different_data=True, max_drop_top1=0)
    assert [p.eps for p in result.points] == EPS[:3] and len(result.gates) == 3 and not result.paired
    with pytest.raises(UsageError, match="per-class"):
        nnprobe.compare(base, base, max_class_drop=0.1)


def test_diagnose_findings_new_gone_changed_unchanged():
    base = diagnose_dict([("spikes", "warning", "3 spikes.", "a"), ("loss-not-finite", "error", "NaN at 5.", "a"),
                          ("plateau", "info", "flat.", "b")], ["a", "b"])
    cand = diagnose_dict([("spikes", "warning", "3 spikes.", "a"), ("loss-not-finite", "error", "NaN at 9.", "a"),
                          ("chance-accuracy", "warning", "chance.", "b")], ["a", "b"])
    result = nnprobe.compare(base, cand)
    assert [(f.id, f.run) for f in result.unchanged] == [("spikes", "a")]
    assert [(f.id, f.message, f.baseline_message) for f in result.changed] == \
        [("loss-not-finite", "NaN at 9.", "NaN at 5.")]
    assert [f.id for f in result.new] == ["chance-accuracy"] and [f.id for f in result.gone] == ["plateau"]
    assert result.passed and result.gates[0].name == "no-new-errors"  # a changed error is not a new one
    assert any("findings only" in n for n in result.notes) and result.metrics == ()
    worse = diagnose_dict([("x", "error", "new.", "b")] +
                          [(f["id"], f["severity"], f["message"], f["run"]) for f in cand["findings"]], ["a", "b"])
    failed = nnprobe.compare(base, worse)
    assert not failed.passed and failed.gates[0].measured == 1.0
    escalated = diagnose_dict([("spikes", "error", "3 spikes.", "a")], ["a", "b"])
    assert not nnprobe.compare(base, escalated).passed
    with pytest.raises(UsageError, match="new error findings"):
        nnprobe.compare(base, cand, max_drop_top1=0.1)


def test_diagnose_single_runs_match_whatever_their_folder_names():
    base = diagnose_dict([("spikes", "warning", "3 spikes.", "runs/main")], ["runs/main"])
    cand = diagnose_dict([("spikes", "warning", "3 spikes.", "runs/pr-12")], ["runs/pr-12"])
    result = nnprobe.compare(base, cand)
    assert (len(result.unchanged), result.new, result.gone) == (1, (), ())


def test_diagnose_run_folders_are_diagnosed_and_summarised(tmp_path):
    """Two run folders with a CSV of val accuracy: the best and where it was reached, counted here."""
    def run(name, accs):
        folder = tmp_path / name
        folder.mkdir()
        lines = ["epoch,step,val_acc,val_loss,train_loss"]
        lines += [f"{e},{(e + 1) * 10},{a},{1 - a},{1.2 - a}" for e, a in enumerate(accs)]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
        return folder

    base_acc = [0.2, 0.5, 0.7, 0.8, 0.78, 0.79]
    cand_acc = [0.2, 0.4, 0.6, 0.65, 0.74, 0.7]
    base, cand = run("main", base_acc), run("pr", cand_acc)
    diagnosis = nnprobe.compare(base, cand)  # diagnose(cand, baseline=base): the comparison attached
    result = diagnosis.comparison
    assert diagnosis.path == str(cand) and diagnosis.to_dict() == \
        {**nnprobe.diagnose(cand, baseline=base).to_dict(), "seconds": diagnosis.seconds}
    assert result.compared == "diagnose" and (result.baseline, result.candidate) == (str(base), str(cand))
    metrics = {m.name.split(": ", 1)[1]: m for m in result.metrics}
    assert metrics["best val_acc"].baseline == max(base_acc) and metrics["best val_acc"].candidate == max(cand_acc)
    assert metrics["best val_acc epoch"].baseline == base_acc.index(max(base_acc))
    assert metrics["best val_acc epoch"].candidate == cand_acc.index(max(cand_acc))
    assert metrics["final val_acc"].delta == pytest.approx(cand_acc[-1] - base_acc[-1])
    assert not any("findings only" in n for n in result.notes)
