"""`nnprobe models [PATTERN]` lists what loads offline, with the preprocessing each would use: checked on
fake caches (the torch hub's checkpoint names, the Hugging Face hub layout) against the published
torchvision transforms (REFERENCE.md's table) and timm's transform resolved from the built model itself."""
from __future__ import annotations

import json
import math

import pytest
from helpers import run_cli

import nnprobe

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("caches")
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    from torchvision.models import EfficientNet_B0_Weights, ResNet50_Weights

    for weights in (ResNet50_Weights.IMAGENET1K_V2, EfficientNet_B0_Weights.IMAGENET1K_V1):
        (checkpoints / weights.url.rsplit("/", 1)[1]).write_bytes(b"")  # listed by name, never opened
    (checkpoints / "not-a-torchvision-file.pth").write_bytes(b"")
    hub = root / "hf"
    repo = hub / "models--timm--test_convnext.r160_in1k"
    (repo / "snapshots" / "1").mkdir(parents=True)
    net = timm.create_model("test_convnext", pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, repo / "snapshots" / "1" / "model.safetensors")
    (root / "local").mkdir()
    (root / "local" / "mine.pt2").write_bytes(b"")
    (root / "local" / "notes.txt").write_text("x")
    return root, net


@pytest.fixture
def env(caches, monkeypatch):
    root, _ = caches
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf"))
    return root


def _by_spec(catalog):
    return {e.spec: e for e in catalog.entries}


def test_cached_weights_with_their_published_preprocessing(env, caches):
    import timm.data

    got = _by_spec(nnprobe.list_models())
    assert set(got) == {"default", "resnet50", "efficientnet_b0", "timm:test_convnext.r160_in1k"}
    r50, b0 = got["resnet50"], got["efficientnet_b0"]
    assert (r50.weights, r50.resize, r50.crop, r50.interpolation, (r50.mean, r50.std)) == \
        ("IMAGENET1K_V2", 232, 224, "bilinear", IMAGENET)  # not 256: V2 weights
    assert (b0.weights, b0.resize, b0.crop, b0.interpolation) == ("IMAGENET1K_V1", 256, 224, "bicubic")
    assert r50.where.endswith("resnet50-11ad3fa6.pth")
    cfg = timm.data.resolve_data_config({}, model=caches[1])  # from the built model: the independent path
    t = got["timm:test_convnext.r160_in1k"]
    assert (t.crop, t.interpolation, t.mean, t.std) == (cfg["input_size"][-1], cfg["interpolation"],
                                                        tuple(cfg["mean"]), tuple(cfg["std"]))
    assert t.resize == math.floor(cfg["input_size"][-1] / cfg["crop_pct"]) and t.weights == "timm/test_convnext.r160_in1k"
    assert (got["default"].resize, got["default"].crop, got["default"].interpolation) == (256, 224, "bicubic")


def test_pattern_filters_names_and_finds_local_files(env):
    assert list(_by_spec(nnprobe.list_models("resnet*"))) == ["resnet50"]
    assert list(_by_spec(nnprobe.list_models("timm:*"))) == ["timm:test_convnext.r160_in1k"]
    local = nnprobe.list_models(str(env / "local" / "*"))
    assert [(e.source, e.weights) for e in local.entries] == [("file", "mine.pt2")]  # notes.txt is no model


def test_cli_lists_in_json_and_table_and_empty_caches_still_exit_0(env, tmp_path):
    run = run_cli("models", "--format", "json", env={"TORCH_HOME": str(env / "torch"), "HF_HUB_CACHE": str(env / "hf")})
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["kind"] == "models" and [e["spec"] for e in body["entries"]][:2] == ["default", "efficientnet_b0"]
    empty = run_cli("models", "nothing*", env={"TORCH_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path)})
    assert empty.returncode == 0 and "0 model(s) load offline matching 'nothing*'" in empty.stdout
    assert "models" in run_cli("--help").stdout
