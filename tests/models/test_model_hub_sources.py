"""torchvision and timm by name: offline failures are fast one-sentence errors, cached files are verified,
preprocessing comes from the weights / pretrained_cfg (nothing downloaded here)."""
from __future__ import annotations

import hashlib
import os
import time
import types

import pytest
import torch
import torchvision

from nnprobe.errors import ModelLoadError, UsageError, WeightsUnavailableError
from nnprobe.models import load_classifier
from nnprobe.models.torchvision_source import (_cached_path, _download_state_dict, preprocessing_of,
                                               resolve_weights)


# --- torchvision ---------------------------------------------------------------------------------------

def test_offline_enum_fails_fast_naming_file_and_cache(torch_home):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        load_classifier("resnet18", weights="IMAGENET1K_V1")
    elapsed = time.monotonic() - start
    message = str(info.value)
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(expected) in message
    assert "\n" not in message
    assert not expected.exists()  # no partial file left behind
    assert elapsed < 15, elapsed


def test_offline_env_fails_without_trying(torch_home, monkeypatch):
    monkeypatch.setenv("NNPROBE_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="NNPROBE_OFFLINE"):
        load_classifier("torchvision:resnet18")  # DEFAULT
    assert time.monotonic() - start < 5


def test_download_prints_nothing_to_stdout(torch_home, capsys):
    with pytest.raises(WeightsUnavailableError):
        load_classifier("resnet18")
    assert capsys.readouterr().out == ""


def test_cached_file_with_wrong_hash_is_refused(torch_home, resnet18_state):
    """A random-init state dict where resnet18-f37072fd.pth belongs: torch hub would load it silently
    (it checks hashes only while downloading); nnprobe refuses it, naming the file."""
    member = resolve_weights("resnet18", "IMAGENET1K_V1")
    path = _cached_path(member)
    assert path == str(torch_home / "hub" / "checkpoints" / os.path.basename(member.url))
    os.makedirs(os.path.dirname(path))
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelLoadError, match="does not match the published sha256 prefix f37072fd") as info:
        load_classifier("resnet18", weights="IMAGENET1K_V1")
    assert path in str(info.value)
    assert os.path.exists(path)  # the user's file is not deleted


def test_cached_file_with_matching_hash_loads_weights_only(torch_home, tmp_path, tiny_net):
    """The success path of the cache, with a stand-in weights entry whose URL carries the file's own hash."""
    staging = tmp_path / "w.pth"
    torch.save(tiny_net.state_dict(), staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    fake = types.SimpleNamespace(url=f"https://example.invalid/models/tiny-{digest}.pth")
    path = _cached_path(fake)
    os.makedirs(os.path.dirname(path))
    os.replace(staging, path)
    state = _download_state_dict(fake)
    assert set(state) == set(tiny_net.state_dict())
    assert all(torch.equal(state[k], v) for k, v in tiny_net.state_dict().items())


def test_cached_pickle_is_not_unpickled(torch_home, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    staging = tmp_path / "w.pth"
    torch.save(Payload(), staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    fake = types.SimpleNamespace(url=f"https://example.invalid/evil-{digest}.pth")
    os.makedirs(os.path.dirname(_cached_path(fake)))
    os.replace(staging, _cached_path(fake))
    from nnprobe.errors import UnsafeCheckpointError

    with pytest.raises(UnsafeCheckpointError):
        _download_state_dict(fake)
    assert not marker.exists()


@pytest.mark.parametrize("name, weights, resize, crop, interpolation", [
    ("resnet50", None, 232, 224, "bilinear"),  # None = DEFAULT = IMAGENET1K_V2
    ("resnet50", "DEFAULT", 232, 224, "bilinear"),
    ("resnet50", "IMAGENET1K_V2", 232, 224, "bilinear"),
    ("resnet50", "ResNet50_Weights.IMAGENET1K_V1", 256, 224, "bilinear"),
    ("resnet18", "IMAGENET1K_V1", 256, 224, "bilinear"),
    ("mobilenet_v3_large", "IMAGENET1K_V2", 232, 224, "bilinear"),
    ("efficientnet_b0", "IMAGENET1K_V1", 256, 224, "bicubic"),
    ("convnext_tiny", "DEFAULT", 236, 224, "bilinear"),
])
def test_torchvision_preprocessing_travels_with_the_weights(name, weights, resize, crop, interpolation):
    member = resolve_weights(name, weights)
    pre = preprocessing_of(member)
    assert pre.source == f"torchvision {member}.transforms()"
    assert (pre.resize_size, pre.crop_size, pre.interpolation, pre.antialias) == (resize, crop, interpolation, True)
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406)) and pre.std == pytest.approx((0.229, 0.224, 0.225))


def test_resolve_weights_none_and_unknown():
    assert resolve_weights("resnet18", "none") is None
    assert resolve_weights("resnet18", "NONE") is None
    with pytest.raises(UsageError, match="IMAGENET1K_V1"):
        resolve_weights("resnet18", "IMAGENET1K_V9")


def test_random_init_torchvision_model_keeps_default_preprocessing():
    classifier = load_classifier("torchvision:resnet18", weights="none", num_classes=7)
    assert classifier.num_classes == 7 and classifier.class_names == list("0123456")
    assert classifier.info.weights is None
    assert classifier.preprocessing.resize_size == 256
    assert not classifier.training


def test_enum_with_other_num_classes_is_refused():
    with pytest.raises(UsageError, match="1000 classes"):
        load_classifier("resnet18", weights="IMAGENET1K_V1", num_classes=10)


def test_unknown_torchvision_name():
    with pytest.raises(ModelLoadError, match="not a torchvision classification model"):
        load_classifier("torchvision:resnet51")


# --- timm ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, resize, crop, interpolation, mean, std", [
    ("resnet18", 235, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # crop_pct 0.95
    ("tf_efficientnet_lite0", 256, 224, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # crop_pct 0.875
])
def test_timm_preprocessing_from_pretrained_cfg(name, resize, crop, interpolation, mean, std):
    classifier = load_classifier(f"timm:{name}", weights="none")
    pre = classifier.preprocessing
    assert (pre.resize_size, pre.crop_size, pre.interpolation) == (resize, crop, interpolation)
    assert pre.mean == pytest.approx(mean) and pre.std == pytest.approx(std)
    assert pre.source == f"timm pretrained_cfg of {name}"
    assert classifier.num_classes == 1000 and classifier.wnids[281] == "n02123045"
    assert classifier.info.weights is None and classifier.info.source == "timm"


def test_timm_checkpoint_path_adopts_head(tmp_path):
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=10)
    path = tmp_path / "timm_r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    for classifier in (load_classifier("timm:resnet18", weights=str(path)),
                       load_classifier(str(path), arch="timm:resnet18")):
        assert classifier.num_classes == 10
        assert all(torch.equal(classifier.net.state_dict()[k], v) for k, v in net.state_dict().items())
        assert classifier.preprocessing.resize_size == 235


def test_timm_pretrained_offline_is_fast(monkeypatch, tmp_path, torch_home):
    """Measured without network: ~48 s of huggingface_hub retries before the fix, 0.4 s after."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache, whatever ~ holds
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")  # unreachable even on a networked CI
    offline_before = constants.HF_HUB_OFFLINE
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="resnet18") as info:
        load_classifier("timm:resnet18")
    assert "\n" not in str(info.value) and str(tmp_path / "hf") in str(info.value)
    assert constants.HF_HUB_OFFLINE is offline_before  # the temporary offline switch was restored
    assert time.monotonic() - start < 10  # huggingface_hub alone retried for ~48 s


def test_timm_unknown_name():
    with pytest.raises(ModelLoadError, match="not a timm model name"):
        load_classifier("timm:resnet_does_not_exist")


def _fake_download(content_path):
    def download(url, dst, hash_prefix=None, progress=True):
        assert progress is False
        with open(content_path, "rb") as src, open(dst, "wb") as out:
            out.write(src.read())
    return download


def test_download_path_verifies_and_loads(torch_home, tmp_path, tiny_net, monkeypatch):
    """The online path with the network stubbed: the downloaded file is hash-checked, then read."""
    import torch.hub

    content = tmp_path / "content.pth"
    torch.save(tiny_net.state_dict(), content)
    digest = hashlib.sha256(content.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(content))
    good = types.SimpleNamespace(url=f"https://example.invalid/tiny-{digest}.pth")
    state = _download_state_dict(good)
    assert torch.equal(state["fc.weight"], tiny_net.state_dict()["fc.weight"])
    assert os.path.exists(_cached_path(good))
    corrupt = types.SimpleNamespace(url="https://example.invalid/tiny-00000000.pth")
    with pytest.raises(WeightsUnavailableError, match="corrupted"):
        _download_state_dict(corrupt)
    assert not os.path.exists(_cached_path(corrupt))  # a bad download is not left in the cache
