"""`--nproc N`: nnprobe starts its own workers; the report equals one process's, exit codes and the one
sentence stay nnprobe's (no launcher traceback); under an outer torchrun only rank 0 speaks. Also the
CLI side of --shard auto ({shard} part names) and --quiet."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders, run_cli

from nnprobe.launch import exit_code

EXACT = ("correct_top1", "correct_top5", "total", "converted", "per_class", "skipped")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("nproc") / "data", {5: 3, 350: 2}, wrong={5: 2})


def eval_args(data, *more: str) -> list[str]:
    return ["eval", str(data), "--model", factory_spec("color_net_1000"), *PLAIN_FLAGS, "--workers", "0",
            "--batch-size", "2", "--device", "cpu", *more]


def test_nproc_2_equals_one_process_and_keeps_exit_codes(data, tmp_path):
    one = run_cli(*eval_args(data, "--format", "json"))
    two = run_cli(*eval_args(data, "--format", "json", "--nproc", "2"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 0's report on the real stdout, nothing else
    assert [b[k] for k in EXACT] == [a[k] for k in EXACT] and (a["correct_top1"], a["total"]) == (5, 7)
    assert (a["run"]["world_size"], b["run"]["world_size"]) == (1, 2)
    gate = run_cli(*eval_args(data, "--nproc", "2", "--min-top1", "0.9", "-q"))
    assert gate.returncode == 1 and "Traceback" not in gate.stderr
    assert gate.stderr.count("failed: min-top1") == 1 and "Rank 1" not in gate.stderr, gate.stderr
    assert "FAIL min-top1" in gate.stdout  # rank 0 finished its report (no rank stopped it early)
    missing = run_cli(*eval_args(tmp_path / "nothing", "--nproc", "2"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [f"Error: Data folder {tmp_path / 'nothing'} does not exist or is "
                                                   "not a folder."], missing.stderr


@pytest.mark.parametrize("late", [0, 1])
def test_under_an_outer_torchrun_only_rank_zero_speaks(tmp_path, late):
    """Both ranks find the same missing folder; rank `late` starts 3 s after the other. torchrun stops every
    rank at the first failure (its monitor looks every 0.1 s), so when silent rank 1 failed first, rank 0 was
    stopped before its sentence (under load this happened by chance): rank 1 now waits until rank 0 has
    spoken."""
    env = dict(os.environ, LATE_RANK=str(late), LATE_BY="3")
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "--monitor-interval", "0.1", str(Path(__file__).with_name("late_rank.py")),
                            *eval_args(tmp_path / "nothing")], capture_output=True, text=True, timeout=300, env=env)
    said = [line for line in ranks.stderr.splitlines() if line.startswith("Error: ")]
    assert said == [f"Error: Data folder {tmp_path / 'nothing'} does not exist or is not a folder."], ranks.stderr
    assert "exitcode  : 2" in ranks.stderr  # the first rank to end exited with nnprobe's code (torchrun's summary)
    assert ranks.returncode != 0


def test_a_failed_silent_rank_speaks_only_when_rank_zero_did_not(tmp_path, invoke, monkeypatch):
    """The handshake on a launcher agent's store (a real TCPStore here): rank 0 sets its key at its end; a
    failed silent rank that finds it stays silent, one that waits in vain (rank 0 blocked or gone) says its
    own sentence instead of nothing."""
    from datetime import timedelta

    import torch.distributed as dist

    from nnprobe import distributed

    store = dist.TCPStore("localhost", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=20))
    for name, value in dict(TORCHELASTIC_USE_AGENT_STORE="True", MASTER_ADDR="localhost", MASTER_PORT=str(store.port),
                            WORLD_SIZE="2", LOCAL_RANK="1", RANK="1", TORCHELASTIC_RESTART_COUNT="7").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distributed, "SPEAK_WAIT", 0.5)
    sentence = f"Error: Data folder {tmp_path / 'nothing'} does not exist or is not a folder."
    alone = invoke(*eval_args(tmp_path / "nothing"))  # rank 0 never said it spoke
    assert alone.returncode == 2 and alone.stderr.splitlines() == [sentence], alone.stderr
    monkeypatch.setenv("RANK", "0")
    main = invoke(*eval_args(tmp_path / "nothing"))
    assert main.returncode == 2 and main.stderr.splitlines() == [sentence] and store.get("nnprobe/spoken/7") == b"1"
    monkeypatch.setenv("RANK", "1")
    quiet = invoke(*eval_args(tmp_path / "nothing"))
    assert quiet.returncode == 2 and quiet.stderr == ""


@pytest.mark.parametrize("codes, expected, names", [
    ({0: 0, 1: 0}, 0, None),
    ({0: 2, 1: 2}, 2, None),  # rank 0 said it
    ({0: 1, 1: -15}, 1, None),  # rank 1 stopped by the launcher after rank 0 ended with a failed gate
    ({0: -15, 1: 3}, 3, 1),  # rank 1 failed, rank 0 was stopped: rank 1's code, named
    ({0: 0, 1: 2}, 2, 1),
    ({0: -15, 1: -15}, 143, 0),  # both terminated from outside
])
def test_exit_code_is_rank_zeros_unless_another_rank_decided(codes, expected, names):
    code, sentence = exit_code(codes)
    assert code == expected
    assert (sentence is None) == (names in (None, 0)), sentence
    if sentence:
        assert sentence.startswith(f"Rank {names} of 2 stopped with exit code {expected}")


def test_shard_auto_names_its_part_and_a_retry_replaces_it(data, tmp_path, invoke, monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    template = str(tmp_path / "parts" / "part-{shard}.json")
    (tmp_path / "parts").mkdir()
    for _ in range(2):  # the same index run twice, as a retried pod would
        run = invoke(*eval_args(data, "--shard", "auto/2", "--format", "json", "-o", template, "-q"))
        assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["part-2-of-2.json"]
    body = json.loads((tmp_path / "parts" / "part-2-of-2.json").read_text())
    assert body["data"]["shard"] == {"index": 2, "count": 2, "images": 3}
    run = invoke(*eval_args(data, "--shard", "auto"))
    assert run.returncode == 2 and "give --shard auto/N" in run.stderr


def test_quiet_silences_progress_and_nothing_else(data, invoke):
    loud = invoke(*eval_args(data, "--min-top1", "0.9", "--format", "json"))
    quiet = invoke(*eval_args(data, "--min-top1", "0.9", "--format", "json", "--quiet"))
    assert loud.returncode == quiet.returncode == 1
    assert "evaluating: 7/7 in" in loud.stderr and "evaluating" not in quiet.stderr
    assert quiet.stderr == loud.stderr.replace(loud.stderr.splitlines()[0] + "\n", "")  # only the progress line
    assert [json.loads(quiet.stdout)[k] for k in EXACT] == [json.loads(loud.stdout)[k] for k in EXACT]
