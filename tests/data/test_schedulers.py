"""`--shard auto`: each scheduler's own variables (0-based) become nnprobe's K/N (1-based); outside any
scheduler it is 1/1; contradictions are one sentence; part names are the same on every retry of a slice."""
from __future__ import annotations

import pytest

from nnprobe import schedulers
from nnprobe.errors import UsageError
from nnprobe.options.parts import Part, parse_part, part_name
from nnprobe.schedulers import SCHEDULERS, auto_part

ALL_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
            "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "BATCH_TASK_INDEX",
            "BATCH_TASK_COUNT")

# What each scheduler sets for the task at 0-based position 2 of 5 (Slurm's --array=1-5 starts at 1);
# and whether it tells the count.
TASK_2_OF_5 = {
    "slurm": ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "1",
               "SLURM_ARRAY_TASK_MAX": "5", "SLURM_ARRAY_TASK_STEP": "1", "SLURM_JOB_ID": "77"}, True),
    "kubernetes": ({"JOB_COMPLETION_INDEX": "2"}, False),
    "aws-batch": ({"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ID": "abc:2"}, False),
    "gcp-batch": ({"BATCH_TASK_INDEX": "2", "BATCH_TASK_COUNT": "5"}, True),
}


def test_every_registered_scheduler_is_covered_here():
    assert set(TASK_2_OF_5) == set(SCHEDULERS)


@pytest.mark.parametrize("name", sorted(TASK_2_OF_5))
def test_each_scheduler_index_becomes_the_third_of_five(name):
    env, tells_count = TASK_2_OF_5[name]
    assert auto_part(5, env) == (3, 5)
    if tells_count:
        assert auto_part(None, env) == (3, 5)
        with pytest.raises(UsageError, match="has 5 tasks"):
            auto_part(4, env)
    else:
        with pytest.raises(UsageError, match=r"gives the index .*=2\) but not the number of tasks: give --shard auto/N"):
            auto_part(None, env)
    if not tells_count:
        with pytest.raises(UsageError, match="=2 is not below the task count 2"):
            auto_part(2, env)


def test_an_index_past_the_count_is_refused():
    with pytest.raises(UsageError, match="BATCH_TASK_INDEX=2 is not below the task count 2"):
        auto_part(None, {"BATCH_TASK_INDEX": "2", "BATCH_TASK_COUNT": "2"})


@pytest.mark.parametrize("name", sorted(TASK_2_OF_5))
def test_cli_spelling_reads_the_environment(name, monkeypatch):
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)
    env, tells_count = TASK_2_OF_5[name]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert parse_part("auto/5") == Part(3, 5) and parse_part(" AUTO / 5 ") == Part(3, 5)
    if tells_count:
        assert parse_part("auto") == Part(3, 5)


def test_outside_any_scheduler_auto_is_one_slice_of_one(monkeypatch):
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "12")  # a Slurm job that is not an array is the whole data set
    assert parse_part("auto") == Part(1, 1) and auto_part(1, {}) == (1, 1)
    with pytest.raises(UsageError, match=r"no scheduler's array index is set .*give --shard K/4"):
        parse_part("auto/4")


def test_slurm_array_with_a_step_and_an_uneven_array():
    stepped = {"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_MAX": "18",
               "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "5"}  # --array=10-18:2
    assert auto_part(None, stepped) == (3, 5)
    with pytest.raises(UsageError, match="not on the array's grid"):
        auto_part(None, dict(stepped, SLURM_ARRAY_TASK_ID="15"))
    uneven = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7",
              "SLURM_ARRAY_TASK_COUNT": "3"}  # --array=1,3,7
    with pytest.raises(UsageError, match="not evenly spaced from 1 to 7"):
        auto_part(None, uneven)


@pytest.mark.parametrize("value, message", [("x", "is not a whole number"), ("-1", "is negative")])
def test_a_broken_variable_is_one_sentence(value, message):
    with pytest.raises(UsageError, match=f"JOB_COMPLETION_INDEX.*{message}"):
        auto_part(3, {"JOB_COMPLETION_INDEX": value})


def test_two_schedulers_that_disagree_are_refused_and_agreeing_ones_are_fine():
    with pytest.raises(UsageError, match="JOB_COMPLETION_INDEX=1 and AWS_BATCH_JOB_ARRAY_INDEX=2 disagree"):
        schedulers.placement({"JOB_COMPLETION_INDEX": "1", "AWS_BATCH_JOB_ARRAY_INDEX": "2"})
    assert auto_part(4, {"JOB_COMPLETION_INDEX": "1", "AWS_BATCH_JOB_ARRAY_INDEX": "1"}) == (2, 4)


def test_part_names_are_one_per_slice_and_sort_in_slice_order():
    names = [part_name("out/part-{shard}.json", Part(k, 12)) for k in range(1, 13)]
    assert names[0] == "out/part-01-of-12.json" and names[-1] == "out/part-12-of-12.json"
    assert sorted(names) == names and len(set(names)) == 12
    assert part_name("out/part-{shard}.json", Part(7, 12)) == names[6]  # a retry writes the same name
    assert part_name("plain.json", Part(2, 3)) == "plain.json"
    assert part_name("p-{shard}.json", None) == "p-1-of-1.json"


@pytest.mark.parametrize("bad", ["1-2", "auto/0", "auto/x", "automatic"])
def test_bad_spellings_are_one_sentence(bad):
    with pytest.raises(UsageError) as caught:
        parse_part(bad)
    assert str(caught.value).startswith("--shard") and str(caught.value).count(". ") == 0
