"""Several models in one eval under `--shard K/N` and `--nproc N`, as one model works (issue 19 follow-up).

The reference is always the single-model path run separately: each model's part file equals its own --shard
run's part, `nnprobe merge` of all models' parts gives per model exactly the single-model merge (every field of
the JSON, calibration suite and per-sample rows included), and `--nproc 2` gives each model what its own
`--nproc 2` run and its one-process run give. Both sides always run with `--threads 1`."""
from __future__ import annotations

import glob
import json

import pytest
from eval.test_shard_merge import _run_only, _same, _without
from helpers import PLAIN_FLAGS, TESTS, factory_spec, make_wnid_folders

from nnprobe import api
from nnprobe.errors import DataError
from nnprobe.options.base import PathKind
from nnprobe.options.verbs import VERBS, fields
from nnprobe.per_sample import read

GOOD = factory_spec("color_net_1000")
ROUNDED = f"{TESTS / 'eval' / 'masked_models.py'}:rounded_color_net_1000"
WORDS = {GOOD: "tiny_models.py_color_net_1000", ROUNDED: "masked_models.py_rounded_color_net_1000"}
FLAGS = [*PLAIN_FLAGS, "--workers", "0", "--threads", "1", "--device", "cpu", "--batch-size", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("sliced") / "data", {5: 3, 350: 2, 998: 2},
                             wrong={5: 1, 998: 1})


def _both(*more: str) -> list[str]:
    return ["--model", GOOD, "--model", ROUNDED, *FLAGS, *more]


def _part(path: str) -> dict:
    """A part's JSON less how it ran (seconds, speed), where its per-sample file went and the model's name."""
    body = json.loads(open(path).read())
    body["run"] = _without(body["run"], "seconds")
    return _without(body, "images_per_second", "per_sample", "name")


def _whole(result) -> dict:
    return _run_only(_without(result.to_dict(), "images_per_second"))


@pytest.fixture(scope="module")
def sliced(data, tmp_path_factory):
    """3 slices of the two-model run (CLI, one part per model and slice), and each model's own 3 slices."""
    from nnprobe.cli import main

    root = tmp_path_factory.mktemp("parts")
    (root / "many").mkdir()
    for spec in (GOOD, ROUNDED):
        (root / WORDS[spec]).mkdir()
    for k in (1, 2, 3):
        argv = ["eval", str(data), "--shard", f"{k}/3", "--format", "json", "-q"]
        runs = [(_both(), root / "many")] + [(["--model", s, *FLAGS], root / WORDS[s]) for s in (GOOD, ROUNDED)]
        for more, folder in runs:
            with pytest.raises(SystemExit) as done:
                main([*argv, *more, "-o", str(folder / "part-{shard}.json"), "--save-predictions",
                      str(folder / "rows-{shard}.jsonl")])
            assert done.value.code == 0
    return root


def test_each_models_part_is_its_own_shard_runs_part(sliced):
    names = sorted(p.rsplit("/", 1)[-1] for p in glob.glob(str(sliced / "many" / "*")))
    assert names == sorted(f"{kind}-{k}-of-3.{WORDS[s]}.{ext}" for k in (1, 2, 3) for s in (GOOD, ROUNDED)
                           for kind, ext in (("part", "json"), ("rows", "jsonl")))
    for spec, word in WORDS.items():
        for k in (1, 2, 3):
            mine, alone = sliced / "many" / f"part-{k}-of-3.{word}.json", sliced / word / f"part-{k}-of-3.json"
            _same(_part(str(alone)), _part(str(mine)))
            assert "name" not in json.loads(alone.read_text())
            assert json.loads(mine.read_text())["name"] == spec  # as the user named it: merge's row name
            assert json.loads(mine.read_text())["data"]["shard"]["index"] == k
            assert read(str(sliced / "many" / f"rows-{k}-of-3.{word}.jsonl")) == \
                read(str(sliced / word / f"rows-{k}-of-3.jsonl"))


def test_merge_of_every_models_parts_is_each_models_own_merge(sliced, tmp_path):
    merged = api.merge([str(sliced / "many" / "part-*.json")], min_top1=0.5,
                       save_predictions=str(tmp_path / "all.jsonl"))
    assert merged.names == (ROUNDED, GOOD)  # in the order the sorted part names first show each model
    assert merged.to_dict()["kind"] == "eval-models"
    for name, run in merged.named:
        word = WORDS[name]
        alone = api.merge([str(sliced / word / "part-*.json")], min_top1=0.5,
                          save_predictions=str(tmp_path / f"alone.{word}.jsonl"))
        assert run.calibration_suite.missing is None  # every calibration field, from the merged rows
        _same(_whole(alone), _whole(run))
        slices = [[_without(s, "part", "seconds") for s in r.to_dict()["data"]["slices"]] for r in (run, alone)]
        assert slices[0] == slices[1] and len(slices[0]) == 3  # each slice's own counts, as the model's merge
        assert run.per_sample.path == str(tmp_path / f"all.{word}.jsonl")
        assert (run.per_sample.sha256, run.per_sample.rows) == (alone.per_sample.sha256, alone.per_sample.rows)
        assert [g.name for g in run.gates] == [g.name for g in alone.gates] and run.passed == alone.passed
    assert [g.name for g in merged.gates] == [f"{n}: min-top1" for n in merged.names]
    for word in WORDS.values():  # or one model's parts alone: its own merge, as one model's run
        one = api.merge([str(sliced / "many" / f"part-*.{word}.json")], min_top1=0.5)
        _same(_whole(api.merge([str(sliced / word / "part-*.json")], min_top1=0.5)), _whole(one))


def test_merge_names_the_model_whose_slices_are_incomplete_and_refuses_mixed_parts(sliced, data, tmp_path):
    parts = sorted(glob.glob(str(sliced / "many" / "part-*.json")))
    short = [p for p in parts if not (p.endswith(f"2-of-3.{WORDS[ROUNDED]}.json"))]
    with pytest.raises(DataError, match=f"^{ROUNDED}: Slice 2/3 missing: 2 of 3 given"):
        api.merge(short)
    other = make_wnid_folders(tmp_path / "other", {5: 2, 350: 1})
    stranger = api.evaluate(ROUNDED, other, workers=0, shard="1/3", resize=40, crop=32, interpolation="bilinear",
                            mean=(0, 0, 0), std=(1, 1, 1))
    mixed = [p for p in parts if WORDS[ROUNDED] not in p] + [stranger.to_dict()]
    with pytest.raises(DataError, match="differ in data .* and in model: they are not parts of one run"):
        api.merge(mixed)


def test_cli_merge_of_all_parts(sliced, invoke):
    run = invoke("merge", str(sliced / "many" / "part-*.json"), "--format", "json")
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["kind"] == "eval-models" and sorted(body["names"]) == sorted(WORDS)


def test_a_several_model_runs_json_is_a_part_of_every_model(data, sliced, invoke, tmp_path):
    """What --format json prints for a several-model --shard run without -o (kind eval-models) is each model's
    part too: merge splits it by model (from files and as dicts), giving what the per-model parts give."""
    for k in (1, 2, 3):
        run = invoke("eval", str(data), *_both("--shard", f"{k}/3", "--format", "json", "-q"))
        assert run.returncode == 0, run.stderr
        (tmp_path / f"all-{k}.json").write_text(run.stdout)
    from_parts = api.merge([str(sliced / "many" / "part-*.json")])
    dicts = [json.loads((tmp_path / f"all-{k}.json").read_text()) for k in (1, 2, 3)]
    for merged in (api.merge([str(tmp_path / "all-*.json")]), api.merge(dicts)):
        assert merged.names == (GOOD, ROUNDED)  # in the run's model order
        for name, run in merged.named:
            _same(_whole(dict(from_parts.named)[name]), _whole(run))
    bad = dict(dicts[0], models=[])
    with pytest.raises(DataError, match="holds no model's result"):
        api.merge([bad])


# What each of eval's output flags writes for GOOD in a two-model --shard 1/2 run (written out by hand: the
# enumeration below fails on an output flag added without its per-model name here).
PER_MODEL = {"-o": ("x-{shard}.json", f"x-1-of-2.{WORDS[GOOD]}.json"),
             "--save-predictions": ("x-{shard}.jsonl", f"x-1-of-2.{WORDS[GOOD]}.jsonl"),
             "--plot": ("x.png", f"x.{WORDS[GOOD]}.reliability.png")}


@pytest.mark.parametrize("flag", sorted({spec.flag for _, _, spec in fields(VERBS["eval"])
                                         if spec.cli and spec.path == PathKind.OUTPUT}))
def test_every_per_model_output_of_a_sliced_run_refuses_an_input(flag, data, tmp_path, invoke):
    """Each output flag's per-model file ({shard} filled in) goes through the output guard: named as the
    --models file, the run is refused before any work and the file is untouched."""
    assert set(PER_MODEL) == {spec.flag for _, _, spec in fields(VERBS["eval"])
                              if spec.cli and spec.path == PathKind.OUTPUT}
    template, clash = PER_MODEL[flag]
    specs = tmp_path / clash
    specs.write_text(f"{GOOD}\n{ROUNDED}\n")
    run = invoke("eval", str(data), "--models", str(specs), *FLAGS, "--shard", "1/2", "--format", "json",
                 flag, str(tmp_path / template))
    assert run.returncode == 2 and f"{WORDS[GOOD]})" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert specs.read_text() == f"{GOOD}\n{ROUNDED}\n" and sorted(p.name for p in tmp_path.iterdir()) == [clash]


def test_nproc_gives_each_model_its_own_nproc_and_one_process_numbers(data, invoke):
    """The two-model --nproc 2 run against each model's one-process run (in-process), and against the first
    model's own --nproc 2 run (tests/eval/test_nproc.py holds one model's --nproc 2 to its one process)."""
    from helpers import run_cli

    def body(run) -> dict:
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    both = body(run_cli("eval", str(data), *_both("--nproc", "2"), "--format", "json", "-q"))
    assert [m["name"] for m in both["models"]] == [GOOD, ROUNDED]
    references = {spec: [body(invoke("eval", str(data), "--model", spec, *FLAGS, "--format", "json", "-q"))]
                  for spec in (GOOD, ROUNDED)}
    references[GOOD].append(body(run_cli("eval", str(data), "--model", GOOD, *FLAGS, "--nproc", "2", "--format",
                                         "json", "-q")))
    for spec, mine in zip((GOOD, ROUNDED), both["models"]):
        assert mine["run"]["world_size"] == 2 and mine["total"] == 9  # 7 plus the 2 wrong ones
        for reference in references[spec]:
            theirs = _run_only(_without(reference, "images_per_second"))
            _same(theirs, _run_only(_without(mine, "images_per_second", "name")))
