"""`diagnose --baseline RUN`: the comparison in the same command (findings new/gone, summaries, values at
the same step, and from where the validation loss stays above the baseline's); a new error fails.
The "above from" answer is checked on synthetic curves built so the answer is known, and by a plain loop."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from nnprobe import api
from nnprobe.cli import main
from nnprobe.comparison.diagnose_compare import loss_above_from
from nnprobe.diagnosis.series import Series


def series(steps, values, epochs=None) -> Series:
    n = len(steps)
    return Series("val_loss", "x", "jsonl", np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=float),
                  np.full(n, np.nan), np.asarray(epochs if epochs is not None else [np.nan] * n, dtype=float))


def reference(base: dict[int, float], cand: dict[int, float]) -> int | None:
    """The first shared step from which the candidate is above at every later shared step (plain loop)."""
    shared = sorted(set(base) & set(cand))
    answer = None
    for step in shared:
        above = cand[step] > base[step] or (math.isnan(cand[step]) and math.isfinite(base[step]))
        if above and answer is None:
            answer = step
        elif not above:
            answer = None
    return answer


def test_above_from_epoch_4_after_an_early_crossing():
    base = [1.0 / (1 + e) for e in range(10)]
    cand = [b + (0.05 if e in (1, 4, 5, 6, 7, 8, 9) else -0.05) for e, b in enumerate(base)]  # above at 1, not 2-3
    place = loss_above_from(series(range(0, 100, 10), base), series(range(0, 100, 10), cand, epochs=range(10)))
    assert place == {"step": 40, "epoch": 4.0, "points": 6, "common": 10, "unit": "step"}
    assert reference(dict(zip(range(0, 100, 10), base)), dict(zip(range(0, 100, 10), cand))) == 40


def test_aligned_by_step_not_by_position():
    """The candidate logs twice as often: only the steps both logged count."""
    base_steps, cand_steps = list(range(0, 200, 20)), list(range(0, 200, 10))
    base = [2.0 - 0.1 * i for i in range(10)]
    cand = [2.0 - 0.05 * i + (0.3 if s >= 120 else -0.3) for i, s in enumerate(cand_steps)]
    place = loss_above_from(series(base_steps, base), series(cand_steps, cand))
    assert place["step"] == reference(dict(zip(base_steps, base)), dict(zip(cand_steps, cand))) == 120
    assert place["epoch"] is None and place["common"] == 10 and place["points"] == 4


def test_nan_in_the_candidate_counts_as_above_and_no_answer_when_it_ends_below():
    steps = list(range(8))
    base = [1.0] * 8
    cand = [0.5, 0.5, 0.5, 0.5, 0.5, 2.0, float("nan"), float("nan")]
    assert loss_above_from(series(steps, base), series(steps, cand))["step"] == 5 == \
        reference(dict(zip(steps, base)), dict(zip(steps, cand)))
    assert loss_above_from(series(steps, base), series(steps, cand[:5] + [2.0, 2.0, 0.9])) is None
    assert loss_above_from(series([1, 2], [1, 1]), series([3, 4], [5, 5])) is None  # no shared step


def test_runs_of_different_batch_sizes_are_matched_by_epoch():
    """Two runs whose step counters differ (batch 32 vs 64: twice the steps per epoch) share epochs, not steps:
    compared epoch by epoch (a plain loop over the epochs both logged)."""
    epochs = list(range(12))
    base = [1.0 / (1 + e) for e in epochs]
    cand = [b + (0.1 if e >= 5 else -0.1) for e, b in zip(epochs, base)]
    place = loss_above_from(series([50 * (e + 1) for e in epochs], base, epochs),
                            series([100 * (e + 1) for e in epochs], cand, epochs))
    assert reference(dict(zip(epochs, base)), dict(zip(epochs, cand))) == 5
    assert place == {"step": 600, "epoch": 5.0, "points": 7, "common": 12, "unit": "epoch"}
    assert loss_above_from(series([50 * (e + 1) for e in epochs], base),  # no epochs: the steps, two shared
                           series([100 * (e + 1) for e in epochs], cand))["common"] == 6


@pytest.mark.parametrize("seed", range(5))
def test_random_curves_agree_with_the_plain_loop(seed):
    rng = np.random.default_rng(seed)
    base_steps = np.sort(rng.choice(60, 30, replace=False))
    cand_steps = np.sort(rng.choice(60, 30, replace=False))
    base, cand = rng.normal(size=30), rng.normal(size=30) + np.linspace(-1, 1, 30)
    cand[rng.random(30) < 0.1] = np.nan
    place = loss_above_from(series(base_steps, base), series(cand_steps, cand))
    expected = reference(dict(zip(base_steps.tolist(), base)), dict(zip(cand_steps.tolist(), cand)))
    assert (place["step"] if place else None) == expected


def write_run(folder, nan_at=(), up_from=None) -> str:
    """One JSON line per epoch; validation loss rising by 0.08 per epoch from `up_from` on."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as handle:
        for e in range(12):
            val_loss = 2.2 * math.exp(-0.3 * e) + 0.35 + (0.08 * (e - up_from + 1) if up_from and e >= up_from else 0)
            row = {"step": 100 * (e + 1), "epoch": e, "train_loss": 2.3 * math.exp(-0.35 * e) + 0.15,
                   "val_loss": val_loss, "val_acc": 0.85 - 0.6 * math.exp(-0.4 * e),
                   "train_acc": 0.9 - 0.7 * math.exp(-0.4 * e)}
            if e in nan_at:
                row["train_loss"] = float("nan")
            handle.write(json.dumps(row) + "\n")
    return str(folder)


def invoke(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_rising_validation_loss_is_dated_and_only_a_warning_passes(tmp_path, capsys):
    base, cand = write_run(tmp_path / "base"), write_run(tmp_path / "cand", up_from=4)
    code, out, _ = invoke(capsys, cand, "--baseline", base)
    assert code == 0
    assert "the candidate's validation loss is above the baseline's from epoch 4 on" in " ".join(out.split())
    result = api.diagnose(cand, baseline=base)
    comparison = result.comparison
    assert [(f.id, f.severity) for f in comparison.new] == [(f.id, f.severity) for f in result.findings]
    assert comparison.gone == () and comparison.passed
    at_last = {m.name: m for m in comparison.metrics}["(the run): at epoch 11 val_loss"]  # both log epochs
    assert at_last.delta == pytest.approx(0.08 * (11 - 4 + 1), rel=1e-9)  # the added rise at epoch 11


def test_a_new_error_fails_even_with_fail_on_never(tmp_path, capsys):
    base, cand = write_run(tmp_path / "base"), write_run(tmp_path / "cand", nan_at=(9,))
    assert invoke(capsys, cand, "--fail-on", "never")[0] == 0
    code, out, err = invoke(capsys, cand, "--fail-on", "never", "--baseline", base, "--format", "json")
    assert code == 1 and "failed: --baseline no-new-errors: 1 new error finding(s)" in err
    body = json.loads(out)
    assert body["failed"] is True and body["baseline"]["kind"] == "compare"
    assert [(f["id"], f["severity"]) for f in body["baseline"]["new"]] == [("loss-not-finite", "error")]
    assert [g["passed"] for g in body["baseline"]["gates"]] == [False]
    # the other way round the NaN run is the baseline: its error is gone, nothing new, passed
    code, out, _ = invoke(capsys, base, "--baseline", cand, "--format", "json")
    body = json.loads(out)
    assert code == 0 and [f["id"] for f in body["baseline"]["gone"]] == ["loss-not-finite"]
    assert body["baseline"]["new"] == []


def test_baseline_from_a_diagnose_json_compares_findings_and_summaries(tmp_path, capsys):
    base, cand = write_run(tmp_path / "base"), write_run(tmp_path / "cand", nan_at=(9,))
    report = tmp_path / "base.json"
    assert invoke(capsys, base, "--format", "json", "-o", report)[0] == 0
    result = api.diagnose(cand, baseline=str(report))
    comparison = result.comparison
    assert [f.id for f in comparison.new] == ["loss-not-finite"] and not comparison.passed
    names = [m.name for m in comparison.metrics]
    assert "(the run): best val_acc" in names and not any("at step" in n for n in names)
    assert any("need its run folder" in note for note in comparison.notes)


def test_the_baseline_is_an_input_the_report_may_not_overwrite(tmp_path, capsys):
    base, cand = write_run(tmp_path / "base"), write_run(tmp_path / "cand")
    report = tmp_path / "base.json"
    invoke(capsys, base, "--format", "json", "-o", report)
    before = report.read_bytes()
    code, _, err = invoke(capsys, cand, "--baseline", report, "--format", "json", "-o", report)
    assert code == 2 and "input" in err and report.read_bytes() == before
    assert invoke(capsys, cand, "--baseline", tmp_path / "missing")[0] == 2
