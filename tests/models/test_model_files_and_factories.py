"""Saved programs (TorchScript, torch.export), Python factories, and the dispatch's error sentences."""
from __future__ import annotations

import warnings

import pytest
import torch
from model_helpers import TinyNet, write_bytes

from nnprobe.errors import InputError, ModelLoadError, NnprobeError, UsageError
from nnprobe.models import load_classifier


def _same_logits(classifier, net, size=48):
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), net((x - classifier.mean) / classifier.std))


@pytest.mark.parametrize("suffix", [".pt", ".ts"])
def test_torchscript(tmp_path, tiny_net, suffix):
    path = tmp_path / f"net{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(tiny_net), str(path))
    classifier = load_classifier(str(path))
    assert classifier.info.source == "torchscript" and classifier.num_classes == 10
    assert classifier.class_names == [str(i) for i in range(10)]
    _same_logits(classifier, tiny_net)


def test_torchscript_with_1000_classes_gets_imagenet_names(tmp_path):
    path = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(TinyNet(1000).eval()), str(path))
    classifier = load_classifier(str(path))
    assert classifier.class_names[281] == "tabby" and classifier.wnids[281] == "n02123045"


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_export_program(tmp_path, tiny_net, dynamic):
    """Exported modules refuse .eval(): loading a .pt2 used to crash with NotImplementedError."""
    x = torch.rand(2, 3, 48, 48)
    shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic else None
    program = torch.export.export(tiny_net, (x,), dynamic_shapes=shapes)
    path = tmp_path / "net.pt2"
    torch.export.save(program, str(path))
    classifier = load_classifier(str(path))
    assert classifier.info.source == "export" and classifier.num_classes == 10
    assert not classifier.training
    classifier.train()  # a mode change must not reach the exported module
    classifier.eval()
    _same_logits(classifier, tiny_net)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ts", ".ckpt", ".pt2", ".safetensors"])
def test_corrupt_files_are_one_sentence_errors(tmp_path, suffix, capfd):
    path = write_bytes(tmp_path / f"junk{suffix}", seed=len(suffix))
    with pytest.raises(ModelLoadError) as info:
        load_classifier(str(path), arch="resnet18")
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "trust-pickle" not in message
    assert "Traceback" not in capfd.readouterr().err


def test_missing_model_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_classifier(str(tmp_path / "gone.pt"))


def test_unknown_spec():
    with pytest.raises(ModelLoadError, match="not a file, a torchvision model name, timm:NAME"):
        load_classifier("resnet_fifty")


def test_weights_with_a_file_model_is_a_usage_error(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(UsageError, match="--arch"):
        load_classifier(str(path), weights=str(path))


# --- factories -----------------------------------------------------------------------------------------

FACTORY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, k=6):
        super().__init__()
        self.fc = nn.Linear(3, k)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    return Tiny()


def broken():
    raise RuntimeError("no GPU here")


def not_a_module():
    return {"weights": 1}

NOT_CALLABLE = 3
'''


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(FACTORY)
    return path


def test_factory_from_file(factory_file):
    classifier = load_classifier(f"{factory_file}:make")
    assert classifier.info.source == "factory" and classifier.info.architecture == "Tiny"
    assert classifier.num_classes == 6 and classifier.class_names == list("012345")
    assert not classifier.training


def test_factory_from_module(factory_file, monkeypatch):
    monkeypatch.syspath_prepend(str(factory_file.parent))
    classifier = load_classifier("my_models:make")
    assert classifier.num_classes == 6


@pytest.mark.parametrize("func, match", [
    ("broken", r"broken\(\) failed: RuntimeError: no GPU here"),
    ("not_a_module", "returned dict, not a torch.nn.Module"),
    ("missing", "has no function missing"),
    ("NOT_CALLABLE", "has no function NOT_CALLABLE"),
])
def test_factory_failures(factory_file, func, match):
    with pytest.raises(ModelLoadError, match=match) as info:
        load_classifier(f"{factory_file}:{func}")
    assert "\n" not in str(info.value)


def test_factory_file_missing_or_failing_import(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        load_classifier(f"{tmp_path / 'nope.py'}:make")
    bad = tmp_path / "bad_factory.py"
    bad.write_text("raise RuntimeError('import-time failure')\n")
    with pytest.raises(ModelLoadError, match="import-time failure"):
        load_classifier(f"{bad}:make")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="import-time failure"):  # was a raw RuntimeError traceback
        load_classifier("bad_factory:make")
    with pytest.raises(ModelLoadError, match="Cannot import"):
        load_classifier("no_such_package_xyz.models:make")


def test_every_failure_is_an_nnprobe_error(tmp_path):
    """The CLI maps NnprobeError to exit 2; anything else would be a traceback."""
    specs = ["nonsense", "timm:nonsense", "torchvision:nonsense", f"{tmp_path}/x.pth", "a.b:c"]
    for spec in specs:
        with pytest.raises(NnprobeError):
            load_classifier(spec, arch="resnet18")


class _Cifar(torch.nn.Module):
    """Only runs on 32x32 inputs (flatten + Linear), like many CIFAR scripts."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_fixed_size_model_needs_num_classes(tmp_path):
    """Counting classes runs a 224x224 image: a 32x32-only network used to raise a raw RuntimeError."""
    path = tmp_path / "cifar.pth"
    torch.save(_Cifar().eval(), path)
    with pytest.raises(ModelLoadError, match="224x224 test image failed .*pass --num-classes") as info:
        load_classifier(str(path), trust_pickle=True)
    assert "\n" not in str(info.value)
    classifier = load_classifier(str(path), trust_pickle=True, num_classes=10, resize=36, crop=32)
    assert classifier.num_classes == 10 and classifier.preprocessing.crop_size == 32
    with torch.no_grad():
        assert classifier(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_model_whose_output_is_not_logits(tmp_path):
    path = tmp_path / "fcn.pth"
    torch.save(torch.nn.Conv2d(3, 5, 1), path)
    with pytest.raises(ModelLoadError, match="not a \\(batch, classes\\) tensor"):
        load_classifier(str(path), trust_pickle=True)


def test_a_folder_is_not_a_model_file(tmp_path):
    folder = tmp_path / "run.ckpt"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        load_classifier(str(folder))
