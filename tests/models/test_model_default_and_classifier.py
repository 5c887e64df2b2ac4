"""The embedded default equals its reference architecture; the Classifier normalises inside; class names;
preprocessing overrides; the differentiable tensor path agrees with the PIL data-loader path."""
from __future__ import annotations

import pytest
import torch
from model_helpers import SAMPLES, TinyNet, sample_photos

from nnprobe.errors import ModelLoadError, UsageError
from nnprobe.models import load_classifier
from nnprobe.models.classifier import from_network, imagenet_or_numbered
from nnprobe.models.default import PREPROCESSING, checkpoint_path, map_state_dict
from nnprobe.models.imagenet import imagenet_names, imagenet_wnids, wnid_to_index
from nnprobe.models.preprocessing import pil_resize_crop, tensor_resize_crop, with_overrides
from nnprobe.results import Preprocessing


@pytest.fixture(scope="module")
def default_model():
    return load_classifier()


def test_default_equals_reference_efficientnet_lite(default_model):
    """Logits of nnprobe's default (timm tf_efficientnet_lite0 + mapped keys) equal those of the package
    the weights were made for, loaded with the same checkpoint (weights_only=True)."""
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(checkpoint_path(), map_location="cpu", weights_only=True))
    reference.eval()
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        ours = default_model(pixels)
        theirs = reference((pixels - 0.5) / 0.5)
        ours_raw = default_model.net(pixels * 4 - 2)
        theirs_raw = reference(pixels * 4 - 2)
    assert ours.shape == (2, 1000)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_raw, theirs_raw, atol=1e-5, rtol=0)
    assert ours.std() > 0.5  # real weights, not a constant


def test_default_metadata(default_model):
    info = default_model.info
    assert (info.source, info.architecture, info.num_classes) == ("default", "timm:tf_efficientnet_lite0", 1000)
    assert default_model.preprocessing == PREPROCESSING
    assert (PREPROCESSING.resize_size, PREPROCESSING.crop_size, PREPROCESSING.interpolation) == (256, 224, "bicubic")
    assert default_model.class_names[281] == "tabby" and default_model.wnids[281] == "n02123045"
    assert not default_model.training


def test_default_refuses_weights_arch_and_other_class_counts():
    with pytest.raises(UsageError, match="embedded default"):
        load_classifier(weights="x.pth")
    with pytest.raises(UsageError, match="embedded default"):
        load_classifier("default", arch="resnet18")
    with pytest.raises(UsageError, match="1000"):
        load_classifier(None, num_classes=10)


def test_map_state_dict_refuses_shape_and_count_mismatch():
    source = {"a": torch.zeros(3, 4), "b": torch.zeros(5)}
    assert list(map_state_dict(source, ["x", "y"], [(3, 4), (5,)])) == ["x", "y"]
    with pytest.raises(ModelLoadError, match=r"tensor b has shape \(5,\), timm's y expects \(6,\)"):
        map_state_dict(source, ["x", "y"], [(3, 4), (6,)])
    with pytest.raises(ModelLoadError, match="has 2 tensors, timm expects 3"):
        map_state_dict(source, ["x", "y", "z"], [(3, 4), (5,), (1,)])


def test_imagenet_names_and_wnids():
    wnids, names = imagenet_wnids(), imagenet_names()
    assert len(wnids) == len(names) == 1000 and len(set(wnids)) == 1000
    assert list(wnids) == sorted(wnids)  # index = position in the sorted wnid list
    assert (wnids[0], names[0]) == ("n01440764", "tench")
    assert (wnids[281], names[281]) == ("n02123045", "tabby")
    assert wnids[999] == "n15075141"
    assert wnid_to_index()["n02123045"] == 281
    # torchvision's de-duplicated names (map by wnid, never by name)
    assert names[134] != names[517] and names[638] != names[639]


def test_class_names_by_head_size():
    names, wnids = imagenet_or_numbered(1000)
    assert names[281] == "tabby" and wnids[281] == "n02123045"
    assert imagenet_or_numbered(3) == (["0", "1", "2"], None)
    classifier = from_network(TinyNet(5), spec="x", source="factory", weights=None, architecture=None,
                              preprocessing=Preprocessing())
    assert classifier.num_classes == 5 and classifier.class_names == ["0", "1", "2", "3", "4"]
    assert classifier.label(4) == "4" and classifier.label(7) == "7"


def test_forward_normalises_inside(tiny_net):
    pre = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))
    classifier = from_network(tiny_net, spec="x", source="factory", weights=None, architecture=None,
                              preprocessing=pre)
    x = torch.rand(3, 3, 40, 40)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), tiny_net((x - mean) / std))
        assert not torch.allclose(classifier(x), tiny_net(x), atol=1e-3)  # normalisation does happen
    x.requires_grad_(True)
    classifier(x).sum().backward()  # gradients reach the pixels (attacks need this)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_overrides_win_and_say_so(tmp_path, tiny_net):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_net, path)
    classifier = load_classifier(str(path), trust_pickle=True, resize=300, crop=288, interpolation="bicubic",
                                 mean=[0.5, 0.5, 0.5], std=(0.2, 0.2, 0.2), class_names=list("abcdefghij"))
    pre = classifier.preprocessing
    assert (pre.resize_size, pre.crop_size, pre.interpolation) == (300, 288, "bicubic")
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.2, 0.2, 0.2)
    assert pre.source.endswith("+ flags (crop_size, interpolation, mean, resize_size, std)")
    assert classifier.class_names[3] == "d"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), tiny_net((x - 0.5) / 0.2))
    untouched = load_classifier(str(path), trust_pickle=True)
    assert "flags" not in untouched.preprocessing.source


@pytest.mark.parametrize("kwargs, match", [
    (dict(resize=0), "--resize"), (dict(crop=-1), "--crop"), (dict(interpolation="lanczos"), "lanczos"),
    (dict(std=(0.2, 0.0, 0.2)), "--std"), (dict(mean=(0.5, 0.5)), "three values"),
    (dict(std=(0.2,) * 4), "three values"), (dict(class_names=["a", "b"]), "2 class names"),
])
def test_bad_overrides_are_usage_errors(tmp_path, tiny_net, kwargs, match):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_net, path)
    with pytest.raises(UsageError, match=match):
        load_classifier(str(path), trust_pickle=True, **kwargs)


def test_with_overrides_returns_base_when_nothing_changes():
    base = Preprocessing()
    assert with_overrides(base) is base


# --- tensor (attack path) vs PIL (data-loader path) -----------------------------------------------------

def _photo(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _to_tensor(image):
    import torchvision.transforms.functional as F

    return F.to_tensor(image).unsqueeze(0)


# Measured (torch 2.14.1, torchvision 0.29.1, CPU), resize 256 -> crop 224, antialias, samples/imagenet:
#                 mean |tensor - PIL|           max            same path without antialias (mean)
#   bilinear   0.25 .. 0.30 / 255        0.98 .. 1.00 / 255       0.83 .. 1.86 / 255
#   bicubic    0.26 .. 0.31 / 255        1.06 .. 5.91 / 255       0.99 .. 2.53 / 255
# PIL rounds to 8 bits after resizing; the tensor path stays in float. Default model: same top-1 on all
# four photos (tiger cat, missile, tripod, espresso); largest softmax difference 0.039.
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("photo", sample_photos(), ids=lambda p: p.name)
def test_tensor_resize_crop_matches_pil(photo, interpolation):
    pre = Preprocessing(resize_size=256, crop_size=224, interpolation=interpolation, antialias=True)
    image = _photo(photo)
    via_pil = _to_tensor(pil_resize_crop(image, pre))
    via_tensor = tensor_resize_crop(_to_tensor(image), pre)
    assert via_pil.shape == via_tensor.shape == (1, 3, 224, 224)
    diff = (via_pil - via_tensor).abs()
    assert diff.mean().item() < 0.5 / 255, diff.mean().item() * 255
    assert diff.max().item() < 8 / 255, diff.max().item() * 255
    assert via_tensor.min() >= 0 and via_tensor.max() <= 1
    # without antialias the tensor path is measurably further from PIL: the check above can fail
    no_aa = tensor_resize_crop(_to_tensor(image), Preprocessing(resize_size=256, crop_size=224,
                                                                interpolation=interpolation, antialias=False))
    assert (via_pil - no_aa).abs().mean() > diff.mean()


def test_tensor_path_is_differentiable():
    x = torch.rand(1, 3, 300, 260, requires_grad=True)
    out = tensor_resize_crop(x, Preprocessing(resize_size=256, crop_size=224, interpolation="bicubic"))
    out.sum().backward()
    assert out.shape == (1, 3, 224, 224) and x.grad.abs().sum() > 0


def test_default_model_top1_same_on_both_paths(default_model):
    photos = sample_photos()
    assert len(photos) >= 4
    pre = default_model.preprocessing
    images = [_photo(p) for p in photos]
    with torch.no_grad():
        pil_logits = torch.cat([default_model(_to_tensor(pil_resize_crop(im, pre))) for im in images])
        tensor_logits = torch.cat([default_model.forward_image(_to_tensor(im)) for im in images])
    assert torch.equal(pil_logits.argmax(1), tensor_logits.argmax(1))
    # the cat photo is filed under its wnid; the default model must get it right on both paths
    cat = [i for i, p in enumerate(photos) if p.parent.name == "n02123045"]
    assert cat and default_model.wnids[int(pil_logits[cat[0]].argmax())] in {"n02123045", "n02123159",
                                                                            "n02124075"}
    assert SAMPLES.is_dir()
