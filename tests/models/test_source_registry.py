"""The model-source registry: every registered source is tested by parametrizing over it (a source
without a case here fails `test_every_source_has_a_case`), specs go to the source the priorities say,
duplicates raise, and the registry is complete in a fresh interpreter without importing torch."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from model_helpers import TinyNet

import nnprobe.models
from nnprobe.errors import ExitCode, ModelLoadError, WeightsUnavailableError
from nnprobe.models import MODEL_SOURCES, load_classifier, model_sources, register_source, source_for
from nnprobe.models.registry import _SOURCES

EXPECTED_IDS = ["file", "torchvision", "torchvision-name", "timm", "factory", "default", "onnx", "export"]  # registered
EXPECTED_ORDER = ["default", "torchvision", "timm", "factory", "onnx", "export", "file", "torchvision-name"]  # tried


def _torchscript(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(TinyNet(10).eval()), str(path))
    return str(path)


def _exported(path):
    torch.export.save(torch.export.export(TinyNet(10).eval(), (torch.rand(2, 3, 32, 32),)), str(path))
    return str(path)


def _onnx(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyNet(10).eval(), (torch.rand(2, 3, 32, 32),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "b"}})
    return str(path)


def _factory_file(path):
    path.write_text("from model_helpers import TinyNet\n\n\ndef make():\n    return TinyNet(10)\n")
    return f"{path}:make"


# id -> (make the spec in tmp_path, load_classifier kwargs, expected info.source, expected class count)
LOADS = {
    "default": (lambda tmp: "default", {}, "default", 1000),
    "torchvision": (lambda tmp: "torchvision:squeezenet1_1", {"weights": "none", "num_classes": 3}, "torchvision", 3),
    "torchvision-name": (lambda tmp: "squeezenet1_1", {"weights": "none", "num_classes": 3}, "torchvision", 3),
    "timm": (lambda tmp: "timm:test_vit", {"weights": "none", "num_classes": 4}, "timm", 4),
    "factory": (lambda tmp: _factory_file(tmp / "tiny_factory.py"), {}, "factory", 10),
    "export": (lambda tmp: _exported(tmp / "net.pt2"), {}, "export", 10),
    "onnx": (lambda tmp: _onnx(tmp / "net.onnx"), {}, "onnx", 10),
    "file": (lambda tmp: _torchscript(tmp / "net.ts"), {}, "torchscript", 10),
}
# Sources that need downloaded weights: their pretrained spec fails offline with the exit-2 error.
OFFLINE = {"torchvision": "torchvision:squeezenet1_1", "torchvision-name": "squeezenet1_1", "timm": "timm:test_vit"}


@pytest.fixture
def scratch_registry():
    """Sources registered by a test are gone afterwards."""
    saved = dict(_SOURCES)
    yield
    _SOURCES.clear()
    _SOURCES.update(saved)


def test_every_source_has_a_case():
    assert list(MODEL_SOURCES) == EXPECTED_IDS
    with pytest.raises(TypeError):  # read-only: sources come in through register_source
        MODEL_SOURCES["mine"] = MODEL_SOURCES["timm"]
    assert set(LOADS) == set(MODEL_SOURCES)
    assert [source.id for source in model_sources()] == EXPECTED_ORDER


@pytest.mark.parametrize("source_id", list(MODEL_SOURCES))
def test_each_source_loads_a_tiny_offline_model(source_id, tmp_path, torch_home, monkeypatch):
    monkeypatch.setenv("NNPROBE_OFFLINE", "1")
    make, kwargs, source, classes = LOADS[source_id]
    spec = make(tmp_path)
    assert source_for(spec).id == source_id
    classifier = load_classifier(spec, **kwargs)
    assert classifier.info.source == source and classifier.num_classes == classes
    assert not classifier.training
    with torch.no_grad():
        assert classifier(torch.rand(2, 3, 32, 32)).shape == (2, classes)


@pytest.mark.parametrize("source_id", sorted(OFFLINE))
def test_hub_sources_fail_offline_with_exit_2(source_id, tmp_path, torch_home, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # nothing cached, whatever ~ holds
    monkeypatch.setenv("NNPROBE_OFFLINE", "1")
    spec = OFFLINE[source_id]
    assert source_for(spec).id == source_id
    with pytest.raises(WeightsUnavailableError) as info:
        load_classifier(spec)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert "\n" not in message and spec.rpartition(":")[2] in message
    assert "offline" in message.lower()


@pytest.mark.parametrize("source", [s for s in model_sources() if s.suffixes], ids=lambda s: s.id)
def test_each_suffix_is_claimed_by_its_source(source):
    for suffix in source.suffixes:
        for spec in (f"model{suffix}", f"dir/MODEL{suffix.upper()}"):
            assert source_for(spec) is source, spec


@pytest.mark.parametrize("source", [s for s in model_sources() if s.prefix], ids=lambda s: s.id)
def test_each_prefix_is_claimed_by_its_source(source):
    spec = f"{source.prefix}some_name"
    assert source_for(spec) is source
    assert source.name_in(spec) == "some_name"


@pytest.mark.parametrize("spec, source_id", [
    ("", "default"), ("default", "default"), ("default:efficientnet_lite0", "default"),
    ("timm:pkg.mod:fn", "timm"),  # a prefix wins over the factory shape
    ("torchvision:resnet18", "torchvision"),
    ("file.py:make", "factory"), ("package.module:make", "factory"), ("factory.pt:make", "factory"),
    ("net.pt2", "export"), ("NET.PT2", "export"),
    ("C:net.pt", "file"),  # a drive letter, not a module
    ("weights.safetensors", "file"), ("resnet18", "torchvision-name"),
])
def test_priority_decides_between_sources(spec, source_id):
    assert source_for(spec).id == source_id


def test_an_existing_file_wins_over_a_torchvision_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert source_for("resnet18").id == "torchvision-name"
    _torchscript(tmp_path / "resnet18")
    assert source_for("resnet18").id == "file"
    assert load_classifier("resnet18").info.source == "torchscript"


def test_unknown_spec_names_what_is_accepted():
    with pytest.raises(ModelLoadError) as info:
        load_classifier("resnet_fifty")
    assert str(info.value) == ("--model 'resnet_fifty' is not a file, a torchvision model name, timm:NAME, or "
                               "file.py:function / package.module:function.")


def test_a_new_source_is_used_and_listed(scratch_registry, tmp_path):
    calls = []

    @register_source("tiny", prefix="tiny:", priority=5, accepts="tiny:K")
    def _tiny(name, request):
        calls.append((name, request.num_classes))
        from nnprobe.models.classifier import from_network

        return from_network(TinyNet(int(name)), spec=f"tiny:{name}", source="tiny", weights=None,
                            architecture="TinyNet", preprocessing=nnprobe.models.IMAGENET_PREPROCESSING,
                            num_classes=None)

    assert source_for("tiny:pkg:fn").id == "tiny"  # not taken for a factory
    classifier = load_classifier("tiny:6", num_classes=None)
    assert classifier.num_classes == 6 and classifier.info.source == "tiny" and calls == [("6", None)]
    with pytest.raises(ModelLoadError, match=r"package\.module:function, or tiny:K\.$"):
        load_classifier("nothing_claims_this")


def test_duplicate_or_ruleless_source_raises(scratch_registry):
    before = dict(MODEL_SOURCES)
    with pytest.raises(ValueError, match="'timm' is registered twice"):
        register_source("timm", prefix="timm2:")(lambda name, request: None)
    with pytest.raises(ValueError, match="needs a prefix, suffixes or a test"):
        register_source("nothing")
    assert dict(MODEL_SOURCES) == before


def test_registry_is_complete_in_a_fresh_interpreter_without_torch():
    code = ("import sys, nnprobe.models as m; print(','.join(m.MODEL_SOURCES)); "
            "print(','.join(s.id for s in m.model_sources())); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [",".join(EXPECTED_IDS), ",".join(EXPECTED_ORDER), "False"]
