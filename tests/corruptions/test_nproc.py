"""`--nproc 2` on `robust` (an attack sweep with --min-norm distances and per-sample rows) and on `corruptions`
(with ImageNet-P sequences, translate's read from the canvas around each crop): the report and the rows equal
one process's, field for field (the run's own provenance aside), and the exit codes stay nnprobe's: 1 on a
failed gate with the report finished, 2 with one sentence on a missing folder, never a launcher traceback. Two
workers on a tiny model: each case starts the workers once."""
from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli

import tinymodels

TINY = f"{os.path.join(os.path.dirname(tinymodels.__file__), 'tinymodels.py')}:tiny_classifier"
VERBS = {  # a failing gate each, so one run shows both the equal report and exit code 1
    "robust": (["robust", "--eps", "0,8/255", "--attack", "pgd", "--steps", "3", "--min-robust-top1", "8/255=0.99",
                "--min-norm", "fmn-linf", "--min-norm-steps", "10"], "min-robust-top1@8/255"),
    "corruptions": (["corruptions", "--corruptions", "gaussian_noise,contrast,sparkles", "--severity", "1,4",
                     "--perturbations", "gaussian_noise,brightness,translate", "--min-corruption-top1", "1.0"],
                    "min-corruption-top1"),
}
VERBS["corruptions --x264-roundtrip"] = (VERBS["corruptions"][0] + ["--x264-roundtrip"], "min-corruption-top1")
RUN_OWN = ("seconds", "world_size")  # how long, and on how many ranks: the only fields allowed to differ


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("nproc") / "data"
    tinymodels.save_class_folders(root, 11, seed=3)  # odd: the ranks get 6 and 5 images
    return root


def command(verb: str, data, *more: str) -> list[str]:
    head, _ = VERBS[verb]
    # --threads 1 on both sides: the default follows the CPUs idle at the start, and two thread counts round
    # FMN's float32 distances differently (CI saw the 90% quantile move in the 8th digit)
    return [head[0], str(data), "--model", TINY, "--workers", "0", "--device", "cpu", "--batch-size", "4",
            "--threads", "1", *head[1:], "-q", *more]


@pytest.mark.parametrize("verb", list(VERBS))
def test_nproc_2_equals_one_process_and_keeps_the_exit_codes(verb, folder, tmp_path, invoke):
    def rows(name: str) -> list[str]:  # robust's per-sample file, with each --min-norm distance
        return ["--save-predictions", str(tmp_path / f"{name}.jsonl")] if verb == "robust" else []

    one = invoke(*command(verb, folder, "--format", "json", "-o", str(tmp_path / "one.json"), *rows("one")))
    two = run_cli(*command(verb, folder, "--format", "json", "-o", str(tmp_path / "two.json"), "--nproc", "2",
                           *rows("two")), env={"OMP_NUM_THREADS": "1"})
    gate = VERBS[verb][1]
    for proc in (one, two):
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count(f"failed: {gate}") == 1, proc.stderr
    a, b = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert (a["run"]["world_size"], b["run"]["world_size"]) == (1, 2)
    for body in (a, b):
        for key in RUN_OWN:
            body["run"].pop(key)
        body.pop("per_sample", None)  # where each run wrote its rows: the files themselves are compared below
    assert b == a  # every count, rate, norm, gate, setting and bootstrap interval: the same bits
    if verb == "robust":
        assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
        assert a["min_norm"]["found"] > 0 and b"min_norm_distance" in (tmp_path / "one.jsonl").read_bytes()
    else:  # the interval was resampled from every rank's per-image verdicts
        assert a["bootstrap"]["mean_corruption_top1"]["lo"] < a["bootstrap"]["mean_corruption_top1"]["hi"]
    assert a["passed"] is False and (a["points"][1]["correct_top1"] < 11 if verb == "robust" else
                                     [p["comparisons"] for p in a["perturbations"]] == [11 * 30, 11 * 30, 11 * 40])
    missing = run_cli(*command(verb, tmp_path / "nothing", "--nproc", "2"), env={"OMP_NUM_THREADS": "1"})
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [f"Error: Data folder {tmp_path / 'nothing'} does not exist or is "
                                                   "not a folder."], missing.stderr
