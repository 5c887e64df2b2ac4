"""`nnprobe compare RUN_A RUN_B` on training runs is `nnprobe diagnose RUN_B --baseline RUN_A`: the same JSON
(findings, values at the same step, the "validation loss above the baseline's" sentence), the same human
report and the same exit code, on real corpus runs of several loggers given as folders or as log files. A run
and a result JSON together are refused in one sentence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_helpers import eval_result, random_eval_pair

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
PAIRS = [  # (baseline, candidate): corpus runs, folders or their log files
    ("jsonl-healthy-adam", "jsonl-overfit"),  # a new error, the loss above the baseline's
    ("tb-healthy-sgd", "tb-nan"),  # TensorBoard event files
    ("lightning-csv-healthy-adam/metrics.csv", "lightning-csv-diverge/metrics.csv"),  # log files, not folders
    ("hf-healthy-adam/trainer_state.json", "hf-overfit"),  # a .json log beside a folder
    ("keras-nan", "keras-nan/training.csv"),  # the same error on both sides: nothing new, yet the run fails
    ("mlflow-healthy-sgd", "mlflow-healthy-adam"),  # two healthy runs: exit 0
]


def without_time(body: dict) -> dict:
    body = dict(body)
    body.pop("seconds")
    return body


@pytest.mark.parametrize("base,cand", PAIRS, ids=[f"{b}-vs-{c}" for b, c in PAIRS])
def test_compare_of_two_runs_is_diagnose_with_a_baseline(invoke, base, cand):
    base, cand = str(CORPUS / base), str(CORPUS / cand)
    compared = invoke("compare", base, cand, "--format", "json")
    diagnosed = invoke("diagnose", cand, "--baseline", base, "--format", "json")
    assert compared.returncode == diagnosed.returncode, compared.stderr
    assert compared.stderr == diagnosed.stderr
    one, other = json.loads(compared.stdout), json.loads(diagnosed.stdout)
    assert without_time(one) == without_time(other)
    assert one["kind"] == "diagnose" and one["baseline"]["kind"] == "compare"
    assert one["baseline"]["baseline"] == base and one["baseline"]["candidate"] == cand
    errors = [f for f in one["findings"] if f["severity"] == "error"]
    new_errors = [f for f in one["baseline"]["new"] if f["severity"] == "error"]
    assert compared.returncode == (1 if errors or new_errors else 0)
    assert any(m["name"] == "(the run): best val_acc" for m in one["baseline"]["metrics"])


def test_the_human_report_carries_the_loss_sentence_and_the_same_lines(invoke):
    base, cand = str(CORPUS / "jsonl-healthy-adam"), str(CORPUS / "jsonl-overfit")
    compared, diagnosed = invoke("compare", base, cand), invoke("diagnose", cand, "--baseline", base)
    assert compared.returncode == diagnosed.returncode == 1
    assert compared.stdout == diagnosed.stdout and compared.stderr == diagnosed.stderr
    text = " ".join(compared.stdout.split())
    assert "the candidate's validation loss is above the baseline's from epoch" in text
    assert "failed: --baseline no-new-errors: 1 new error finding(s), first: [overfitting]" in compared.stderr
    assert "(the run): at epoch 14 val_loss" in compared.stdout  # the last epoch both logged


def test_the_sentence_names_the_epoch_a_plain_loop_finds(invoke):
    """The epoch in the sentence, from the two runs' logged validation losses by a plain loop over the epochs
    both logged (their step counters differ): the first from which the candidate stays above."""
    from nnprobe import api

    base, cand = str(CORPUS / "jsonl-healthy-adam"), str(CORPUS / "jsonl-overfit")
    rows = {}
    for name, path in (("base", base), ("cand", cand)):
        lines = [json.loads(line) for line in Path(path, "metrics.jsonl").read_text().splitlines()]
        rows[name] = {r["epoch"]: r["val_loss"] for r in lines if "val_loss" in r}  # both log epochs
    answer, shared = None, sorted(set(rows["base"]) & set(rows["cand"]))
    for epoch in shared:
        if rows["cand"][epoch] > rows["base"][epoch]:
            answer = epoch if answer is None else answer
        else:
            answer = None
    assert answer is not None
    body = api.compare(base, cand).to_dict()
    points = sum(e >= answer for e in shared)
    assert f"the candidate's validation loss is above the baseline's from epoch {answer:g} on ({points} of the " \
           f"{len(shared)} epochs both logged)" in " ".join(body["baseline"]["notes"])


def test_a_run_and_a_result_are_refused_in_one_sentence(invoke, tmp_path):
    rows, _ = random_eval_pair(seed=1, n=50, num_classes=3, worse=0.0)
    result = eval_result(tmp_path, "base", rows, 3)
    for args in ((str(CORPUS / "tb-nan"), str(result)), (str(result), str(CORPUS / "keras-nan" / "training.csv"))):
        run = invoke("compare", *args)
        assert run.returncode == 2 and run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1 and "cannot compare a training run" in run.stderr
        assert "Traceback" not in run.stderr


def test_result_gates_on_two_runs_are_refused(invoke):
    run = invoke("compare", str(CORPUS / "tb-nan"), str(CORPUS / "tb-healthy-sgd"), "--max-drop-top1", "1pt")
    assert run.returncode == 2 and "two training runs compared gate on new error findings" in run.stderr


def test_a_diagnose_json_beside_its_run_is_still_a_result(invoke, tmp_path):
    """A diagnose report (a .json) is a result, not a JSON-lines log: two of them compare as results."""
    reports = []
    for name in ("tb-healthy-sgd", "tb-nan"):
        reports.append(tmp_path / f"{name}.json")
        assert invoke("diagnose", str(CORPUS / name), "--format", "json", "-o", str(reports[-1])).returncode in (0, 1)
    run = invoke("compare", *map(str, reports), "--format", "json")
    body = json.loads(run.stdout)
    assert body["kind"] == "compare" and body["compared"] == "diagnose" and run.returncode == 1
