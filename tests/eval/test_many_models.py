"""Several models in one eval run: --model repeated, --models FILE, a timm wildcard over the local cache only.
Each model's row is what a single-model eval of it gives (run separately, as the reference), gates apply per
model and the failure names the model; what one model refuses, several refuse in one sentence."""
from __future__ import annotations

import json

import pytest
from helpers import PLAIN, PLAIN_FLAGS, factory_spec, make_wnid_folders, run_cli

import nnprobe
from nnprobe.errors import UsageError
from nnprobe.models import catalog

GOOD, RANDOM = factory_spec("color_net_1000"), factory_spec("random_cnn_10")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("many") / "data", {5: 2, 400: 1}, wrong={400: 1})  # 3/4


def test_each_row_is_the_single_model_eval_of_that_model(data):
    both = nnprobe.evaluate([GOOD, "default"], data, workers=0, limit=None, min_top1=0.5, **PLAIN)
    assert [r.model.spec for r in both.runs] == [GOOD, "default:efficientnet_lite0"] and both.names == (GOOD, "default")
    for run, spec in zip(both.runs, (GOOD, "default")):
        alone = nnprobe.evaluate(spec, data, workers=0, min_top1=0.5, **PLAIN)
        assert (run.correct_top1, run.correct_top5, run.total) == (alone.correct_top1, alone.correct_top5, alone.total)
        assert run.top1_interval == alone.top1_interval and run.passed == alone.passed
        assert run.calibration_suite.nll == alone.calibration_suite.nll  # the same seeded bootstrap per model
    assert both.runs[0].correct_top1 == 3 and both.runs[0].passed and not both.runs[1].passed
    assert not both.passed and both.failed_models == ["default"]
    assert [g.name for g in both.gates] == [f"{GOOD}: min-top1", "default: min-top1"]


def test_cli_rows_in_every_format_and_the_exit_code_names_the_failed_model(data, tmp_path, invoke):
    specs = tmp_path / "models.txt"
    specs.write_text(f"# the tiny colour net, then the embedded default\n{GOOD}   # passes\n\n  default\n")
    run = invoke("eval", str(data), "--models", str(specs), *PLAIN_FLAGS, "--workers", "0", "--min-top1", "0.5",
                 "--format", "json")
    assert run.returncode == 1
    body = json.loads(run.stdout)
    assert body["kind"] == "eval-models" and body["failed_models"] == ["default"]
    assert [(m["model"]["spec"], m["correct_top1"], m["total"]) for m in body["models"]] == \
        [(GOOD, 3, 4), ("default:efficientnet_lite0", body["models"][1]["correct_top1"], 4)]
    assert body["models"][0]["top1_interval"]["method"] == "clopper-pearson"
    assert "failed: default: min-top1" in run.stderr and f"failed: {GOOD}" not in run.stderr
    assert [m["name"] for m in body["models"]] == [GOOD, "default"]
    table = invoke("eval", str(data), "--model", GOOD, "--model", "default", *PLAIN_FLAGS, "--workers", "0")
    assert table.returncode == 0 and "nnprobe eval — several models" in table.stdout
    assert table.stdout.count("nnprobe eval — ") == 3  # the summary, then each model's own report
    assert "75.00% │ 19.41% – 99.37%" in table.stdout  # 3/4 and its exact interval in the summary row
    md = invoke("eval", str(data), "--model", GOOD, "--model", "default", *PLAIN_FLAGS, "--workers", "0",
                "--format", "markdown")
    assert "| model | top-1 | top-1 interval |" in md.stdout and "19.41% – 99.37%" in md.stdout


@pytest.mark.parametrize("extra, named", [
    (["--shard", "1/2", "--reference-model", "default"], "--reference-model compares whole runs"),
    (["--shard", "1/2", "--min-top1", "0.5"], "Gates judge the whole data set"),  # as for one model
    (["--shard", "1/2", "--baseline", "BASE"], "A --shard slice is not the whole data set")])
def test_what_one_model_refuses_several_refuse_in_one_sentence(data, invoke, tmp_path, extra, named):
    """--shard, --nproc (tests/eval/test_many_models_sliced.py) and --reference-model
    (tests/eval/test_many_models_reference.py) work with several models; what stays refused is what one model
    refuses with them too."""
    base = tmp_path / "base.json"
    base.write_text(invoke("eval", str(data), "--model", GOOD, *PLAIN_FLAGS, "--workers", "0", "--format",
                           "json").stdout)
    extra = [str(base) if word == "BASE" else word for word in extra]
    run = invoke("eval", str(data), "--model", GOOD, "--model", "default", *PLAIN_FLAGS, "--workers", "0", *extra)
    assert run.returncode == 2 and named in run.stderr and "Traceback" not in run.stderr, run.stderr
    if "--shard" in extra:
        alone = invoke("eval", str(data), "--model", GOOD, *PLAIN_FLAGS, "--workers", "0", *extra)
        assert alone.returncode == 2 and named in alone.stderr


def test_spec_file_comments_blank_lines_and_an_empty_file(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("# header\nresnet18  # a torchvision name\n\n   timm:vit_small_patch16_224\nresnet18\n")
    assert catalog.read_spec_file(f) == ["resnet18", "timm:vit_small_patch16_224", "resnet18"]
    assert catalog.model_list((), f) == ["resnet18", "timm:vit_small_patch16_224"]  # named twice: run once
    f.write_text("# nothing but comments\n\n")
    with pytest.raises(UsageError, match="names no model"):
        catalog.read_spec_file(f)


def _fake_timm_cache(root, names):
    """The Hugging Face hub layout with timm's tiny test models' (randomly initialised) weights."""
    import timm
    from safetensors.torch import save_file

    for name in names:
        repo = root / f"models--timm--{name}"
        snapshot = repo / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        net = timm.create_model(name.split(".")[0], pretrained=False)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, snapshot / "model.safetensors")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
    (root / "models--timm--test_vit.r160_in1k" / "snapshots" / "x").mkdir(parents=True)  # no weights: not cached
    (root / "models--google--test_resnet").mkdir()  # not timm's


def test_timm_wildcard_takes_only_what_the_cache_holds(tmp_path, data):
    cache = tmp_path / "hub"
    _fake_timm_cache(cache, ["test_convnext.r160_in1k", "test_resnet.r160_in1k"])
    assert catalog.cached_timm(cache) == ["test_convnext.r160_in1k", "test_resnet.r160_in1k"]
    assert catalog.expand_wildcard("timm:test_*", cache) == ["timm:test_convnext.r160_in1k", "timm:test_resnet.r160_in1k"]
    assert catalog.expand_wildcard("timm:*.r160_in1k", cache)[0] == "timm:test_convnext.r160_in1k"
    with pytest.raises(UsageError, match="never downloads"):
        catalog.expand_wildcard("timm:test_vit*", cache)
    run = run_cli("eval", str(data), "--model", "timm:test_*", "--workers", "0", "--format", "json",
                  env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NNPROBE_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert [(m["model"]["spec"], m["model"]["weights"], m["total"]) for m in body["models"]] == [
        ("timm:test_convnext.r160_in1k", "timm/test_convnext.r160_in1k", 4),
        ("timm:test_resnet.r160_in1k", "timm/test_resnet.r160_in1k", 4)]


def _json(run):
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


def test_save_predictions_and_plot_write_one_file_per_model(data, tmp_path, invoke):
    from nnprobe.per_sample import read

    preds, plot = tmp_path / "preds.jsonl", tmp_path / "eval.png"
    both = _json(invoke("eval", str(data), "--model", GOOD, "--model", "default", *PLAIN_FLAGS, "--workers", "0",
                        "--save-predictions", str(preds), "--plot", str(plot), "--format", "json"))
    words = ["tiny_models.py_color_net_1000", "default"]
    assert not preds.exists() and not plot.exists()  # the names are templates: one file per model beside them
    for spec, word, run in zip((GOOD, "default"), words, both["models"]):
        mine = tmp_path / f"preds.{word}.jsonl"
        assert run["per_sample"]["path"] == str(mine)
        alone = tmp_path / f"alone.{word}.jsonl"
        _json(invoke("eval", str(data), "--model", spec, *PLAIN_FLAGS, "--workers", "0", "--save-predictions",
                     str(alone), "--format", "json"))
        assert read(str(mine)) == read(str(alone))  # the same header and rows as that model's own eval
        for figure in ("reliability", "per_class"):
            assert (tmp_path / f"eval.{word}.{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_per_model_file_never_overwrites_an_input(data, tmp_path, invoke):
    specs = tmp_path / "list.default.txt"  # what --save-predictions list.txt would name the default model's file
    specs.write_text(f"{GOOD}\ndefault\n")
    run = invoke("eval", str(data), "--models", str(specs), *PLAIN_FLAGS, "--workers", "0", "--save-predictions",
                 str(tmp_path / "list.txt"))
    assert run.returncode == 2 and "--save-predictions (default)" in run.stderr and "Traceback" not in run.stderr
    assert specs.read_text() == f"{GOOD}\ndefault\n"


def test_baseline_is_compared_with_each_model(data, tmp_path, invoke):
    base = tmp_path / "base.json"
    base.write_text(invoke("eval", str(data), "--model", GOOD, *PLAIN_FLAGS, "--workers", "0", "--format",
                           "json").stdout)
    gates = ["--baseline", str(base), "--max-drop-top1", "10pt"]
    run = invoke("eval", str(data), "--model", GOOD, "--model", "default", *PLAIN_FLAGS, "--workers", "0", *gates,
                 "--format", "json")
    assert run.returncode == 1 and "failed: default: max-drop-top1" in run.stderr
    both = json.loads(run.stdout)
    assert both["failed_models"] == ["default"]
    for spec, model in zip((GOOD, "default"), both["models"]):
        alone = json.loads(invoke("eval", str(data), "--model", spec, *PLAIN_FLAGS, "--workers", "0", *gates,
                                  "--format", "json").stdout)
        assert model["comparison"] == alone["comparison"] and model["gates"] == alone["gates"]
    assert both["models"][0]["comparison"]["metrics"][0]["delta"] == 0
