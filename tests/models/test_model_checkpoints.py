"""Reading checkpoints safely and fitting state dicts: pickles never run without trust_pickle, every
state-dict layout users have (plain, Lightning, DDP, safetensors) loads, mismatches say what is wrong."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
import torchvision
from model_helpers import TinyNet, write_bytes

from nnprobe.errors import InputError, ModelLoadError, NnprobeError, UnsafeCheckpointError, UsageError
from nnprobe.models import load_classifier
from nnprobe.models.checkpoints import extract_state_dict, fit_state_dict, looks_like_pickle, read_checkpoint


class _Payload:
    """Unpickling this creates the marker file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    assert not path.exists()
    return path


@pytest.mark.parametrize("writer", ["pickle.dump", "torch.save", "torch.save-in-dict"])
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt"])
def test_malicious_pickle_never_runs_without_trust(tmp_path, marker, writer, suffix):
    path = tmp_path / f"evil{suffix}"
    payload = _Payload(str(marker))
    if writer == "pickle.dump":
        with open(path, "wb") as stream:
            pickle.dump(payload, stream)
    elif writer == "torch.save":
        torch.save(payload, path)
    else:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": payload}, path)
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        read_checkpoint(str(path))
    with pytest.raises(UnsafeCheckpointError):
        load_classifier(str(path), arch="resnet18")
    assert not marker.exists()


def test_trust_pickle_runs_the_pickle(tmp_path, marker):
    """The opt-in really is the only difference: with it, the same file's code runs."""
    path = tmp_path / "evil.pth"
    torch.save(_Payload(str(marker)), path)
    read_checkpoint(str(path), trust_pickle=True)
    assert marker.exists()


def test_full_pickled_module_needs_trust(tmp_path, tiny_net):
    path = tmp_path / "whole.pth"
    torch.save(tiny_net, path)
    with pytest.raises(UnsafeCheckpointError):
        load_classifier(str(path))
    classifier = load_classifier(str(path), trust_pickle=True)
    assert classifier.info.source == "pickle"
    assert classifier.num_classes == 10
    assert classifier.class_names == [str(i) for i in range(10)]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), tiny_net((x - classifier.mean) / classifier.std))


def test_looks_like_pickle_tells_junk_from_pickles(tmp_path):
    junk = write_bytes(tmp_path / "junk.pth")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    saved = tmp_path / "saved.pth"
    torch.save({"a": torch.zeros(2)}, saved)
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert [looks_like_pickle(str(p)) for p in (junk, raw, saved, legacy)] == [False, True, True, True]


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt", ".bin", ".ts"])
def test_random_bytes_are_not_a_checkpoint_not_an_unsafe_one(tmp_path, suffix):
    """Junk used to be reported as 'pickled Python objects ... pass --trust-pickle': wrong advice."""
    path = write_bytes(tmp_path / f"junk{suffix}")
    for trust in (False, True):
        with pytest.raises(ModelLoadError, match="not a readable PyTorch checkpoint") as info:
            load_classifier(str(path), arch="resnet18", trust_pickle=trust)
        assert not isinstance(info.value, UnsafeCheckpointError)


def test_truncated_zip_checkpoint(tmp_path, resnet18_state):
    path = tmp_path / "cut.pth"
    torch.save(resnet18_state, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        load_classifier(str(path), arch="resnet18")


def test_legacy_format_state_dict_loads(tmp_path, resnet18_state):
    path = tmp_path / "legacy.pth"
    torch.save(resnet18_state, path, _use_new_zipfile_serialization=False)
    assert load_classifier(str(path), arch="resnet18").num_classes == 10


def _reference_logits(state, x):
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    net.load_state_dict(state)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - mean) / std)


@pytest.mark.parametrize("layout", ["plain", "lightning", "ddp", "model_state_dict", "safetensors",
                                    "lightning-ddp"])
def test_state_dict_layouts_load_with_arch_and_adopt_the_head(tmp_path, resnet18_state, layout):
    """A 10-class resnet18 checkpoint loads without --num-classes, in every layout, with its exact weights."""
    if layout == "plain":
        obj = resnet18_state
    elif layout == "lightning":
        obj = {"epoch": 3, "global_step": 120, "state_dict": {f"model.{k}": v for k, v in resnet18_state.items()}}
    elif layout == "ddp":
        obj = {f"module.{k}": v for k, v in resnet18_state.items()}
    elif layout == "model_state_dict":
        obj = {"model_state_dict": resnet18_state, "optimizer": {"lr": 0.1}, "epoch": 5}
    elif layout == "lightning-ddp":
        obj = {"state_dict": {f"model.module.{k}": v for k, v in resnet18_state.items()}}
    else:
        obj = None
    if layout == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(path))
    else:
        path = tmp_path / "w.pth"
        torch.save(obj, path)
    classifier = load_classifier(str(path), arch="resnet18")
    assert classifier.num_classes == 10
    assert classifier.class_names == [str(i) for i in range(10)] and classifier.wnids is None
    assert classifier.info.architecture == "resnet18"
    assert classifier.info.weights == os.path.abspath(path)
    loaded = classifier.net.state_dict()
    assert set(loaded) == set(resnet18_state)
    for key, value in resnet18_state.items():
        assert torch.equal(loaded[key], value), key
    if layout == "plain":  # and the classifier normalises with torchvision's ImageNet mean/std
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(classifier(x), _reference_logits(resnet18_state, x))


def test_torchvision_reference_checkpoint_with_argparse_namespace(tmp_path, resnet18_state, marker):
    """torchvision's references/classification/train.py saves {"model", "optimizer", "lr_scheduler", "epoch",
    "args": argparse.Namespace}: loadable without --trust-pickle; the Namespace is plain data."""
    import argparse

    path = tmp_path / "checkpoint.pth"
    torch.save({"model": resnet18_state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 89,
                "args": argparse.Namespace(model="resnet18", lr=0.5, epochs=90)}, path)
    classifier = load_classifier(str(path), arch="resnet18")
    assert classifier.num_classes == 10
    assert torch.equal(classifier.net.state_dict()["fc.bias"], resnet18_state["fc.bias"])
    # the allowlist does not open the door: a Namespace carrying a payload is still refused
    evil = tmp_path / "evil.pth"
    torch.save({"model": resnet18_state, "args": argparse.Namespace(x=_Payload(str(marker)))}, evil)
    with pytest.raises(UnsafeCheckpointError):
        load_classifier(str(evil), arch="resnet18")
    assert not marker.exists()


def test_weights_path_on_a_model_name_and_torchvision_prefix(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save(resnet18_state, path)
    for spec in ("resnet18", "torchvision:resnet18"):
        classifier = load_classifier(spec, weights=str(path))
        assert classifier.num_classes == 10 and classifier.info.source == "torchvision"
        assert classifier.preprocessing.resize_size == 256 and classifier.preprocessing.crop_size == 224
    assert load_classifier(str(path), arch="torchvision:resnet18").num_classes == 10


def test_explicit_num_classes_that_disagrees_is_refused(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(ModelLoadError, match="of another shape .*fc\\.") as info:
        load_classifier(str(path), arch="resnet18", num_classes=5)
    assert "--num-classes" in str(info.value)


def test_wrong_architecture_is_refused_with_counts(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(ModelLoadError, match=r"does not fit the chosen architecture: \d+ missing \(e\.g\. layer"):
        load_classifier(str(path), arch="resnet34")


def test_unexpected_keys_are_refused(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save({**resnet18_state, "extra.weight": torch.zeros(3)}, path)
    with pytest.raises(ModelLoadError, match=r"1 unexpected \(e\.g\. extra\.weight\)"):
        load_classifier(str(path), arch="resnet18")


def test_state_dict_without_arch_is_a_usage_error(tmp_path, resnet18_state):
    path = tmp_path / "w.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(UsageError, match="--arch"):
        load_classifier(str(path))


def test_checkpoint_without_tensors(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ModelLoadError, match="does not contain a state dict"):
        load_classifier(str(path), arch="resnet18")
    with pytest.raises(ModelLoadError):
        extract_state_dict([torch.zeros(1)], "x.pth")


def test_fit_state_dict_does_not_adopt_when_bodies_differ(resnet18_state):
    """Two different first dims would mean another architecture, not another head."""
    bad = dict(resnet18_state)
    bad["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    with pytest.raises(ModelLoadError, match="2 of another shape|3 of another shape"):
        fit_state_dict(lambda k: torchvision.models.resnet18(num_classes=k or 1000), bad, "x.pth", None)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_checkpoint(str(tmp_path / "nope.pth"))
    with pytest.raises(InputError, match="does not exist"):
        load_classifier(str(tmp_path / "nope.pth"), arch="resnet18")
    with pytest.raises(NnprobeError, match="does not exist"):
        load_classifier("resnet18", weights=str(tmp_path / "nope.pth"))


def test_tiny_state_dict_with_timm_arch_mismatch(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(TinyNet(3).state_dict(), path)
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_classifier(str(path), arch="timm:resnet18")


def _export_with_pickled_weight(tmp_path, payload) -> str:
    """A real .pt2 whose first weight is switched to a pickled payload (`use_pickle: true`), the way
    torch.export.save stores weights it cannot write raw; torch.export.load unpickles those with
    weights_only=False."""
    import json
    import zipfile

    program = torch.export.export(torch.nn.Sequential(torch.nn.Linear(4, 3)), (torch.randn(2, 4),))
    clean = tmp_path / "clean.pt2"
    torch.export.save(program, str(clean))
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data/weights/model_weights_config.json"):
                config = json.loads(data)
                config["config"]["0.weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif info.filename.endswith("data/weights/weight_0"):
                import io

                buffer = io.BytesIO()
                torch.save(payload, buffer)
                data = buffer.getvalue()
            dst.writestr(info, data)
    return str(evil)


def test_export_program_with_a_pickle_never_runs_without_trust(tmp_path, marker):
    path = _export_with_pickled_weight(tmp_path, _Payload(str(marker)))
    load_before = torch.load
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        load_classifier(path)
    assert not marker.exists()
    assert torch.load is load_before  # nothing process-wide is patched any more


def test_export_program_with_pickled_tensor_weight_needs_trust(tmp_path):
    """torch unpickles a `use_pickle` weight with weights_only=False whatever it holds, so even a pickled
    plain tensor is refused by default (torch.export.save pickles only tensor subclasses); trusted, it loads."""
    path = _export_with_pickled_weight(tmp_path, torch.nn.Parameter(torch.ones(3, 4)))
    with pytest.raises(UnsafeCheckpointError, match="'0.weight' as a pickle"):
        load_classifier(path)
    assert load_classifier(path, trust_pickle=True).num_classes == 3
