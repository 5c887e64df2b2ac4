"""Fooling photos: the PNG round trip (rounding keeps the budget, success re-checked from disk), image
vs model space sizes, inputs never overwritten, target resolution."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import tinymodels
from nnprobe.api import fool  # the core names the panels, the report layer draws them
from nnprobe.attacks.photo import resolve_target
from nnprobe.attacks.photo_files import output_names
from nnprobe.errors import InputError, UsageError


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)


@pytest.fixture
def photo(tmp_path):
    return tinymodels.save_photo(tmp_path / "in" / "photo.png", seed=2)


def test_png_round_trip_keeps_budget_and_verdict(photo, tmp_path):
    before = digest(photo)
    model = tinymodels.tiny_classifier()
    result = fool([photo], model=model, attack="pgd", eps=8 / 255, out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    assert digest(photo) == before  # input untouched
    written = pixels(item.adversarial_image)
    assert written.shape == (20, 24, 3)  # image space: the photo's own size
    delta = written - pixels(photo)
    assert np.abs(delta).max() <= 8 and np.abs(delta).max() == round(item.linf * 255)
    assert item.l2 == pytest.approx(np.sqrt((delta.astype(np.float64) ** 2).sum()) / 255)
    x = torch.from_numpy(written).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        reread = model.forward_image(x).softmax(1)[0]
    assert item.adversarial[0].index == int(reread.argmax())
    assert item.adversarial[0].confidence == pytest.approx(float(reread.max()), abs=1e-6)
    assert item.success == (int(reread.argmax()) != item.original[0].index)
    assert item.success and item.success_before_rounding and not item.rounding_undid
    assert len(item.original) == len(item.adversarial) == 4  # top-5 capped at the 4 classes
    panel = Image.open(item.panel_image)
    assert panel.width > 3 * 24 and panel.height > 20


def test_rounding_that_undoes_the_attack_is_reported(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (16, 16), (128, 128, 128)).save(grey)
    result = fool([str(grey)], model=tinymodels.rounding_edge_classifier(), attack="fgsm", eps=0.4 / 255,
                  out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    assert item.success_before_rounding  # the float image fooled it
    assert not item.success and item.rounding_undid  # the 8-bit file does not: δ rounds to 0 levels
    assert np.array_equal(pixels(item.adversarial_image), pixels(grey))
    assert item.linf == 0.0


def test_model_space_attacks_the_crop(photo, tmp_path):
    result = fool([photo], model=tinymodels.tiny_classifier(), attack="fgsm", eps=8 / 255, space="model",
                  out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    assert pixels(item.adversarial_image).shape == (16, 16, 3)
    assert (item.width, item.height, item.space, item.fools_eval_pipeline) == (16, 16, "model", None)


def test_sweep_gives_one_item_per_image_and_eps(photo, tmp_path):
    other = tinymodels.save_photo(tmp_path / "in2" / "photo.png", seed=5)  # same stem, other folder
    result = fool([photo, other], model=tinymodels.tiny_classifier(), eps="2/255,8/255", out_dir=tmp_path / "o",
                  device="cpu")
    names = sorted(p.name for p in (tmp_path / "o").iterdir())  # same stems: told apart by their folders
    assert names == ["in-photo.eps2-255.adv.png", "in-photo.eps2-255.panel.png", "in-photo.eps8-255.adv.png",
                     "in-photo.eps8-255.panel.png", "in2-photo.eps2-255.adv.png", "in2-photo.eps2-255.panel.png",
                     "in2-photo.eps8-255.adv.png", "in2-photo.eps8-255.panel.png"]
    assert [(i.image, round(i.eps * 255)) for i in result.items] == [(photo, 2), (photo, 8), (other, 2), (other, 8)]
    assert all(i.linf <= i.eps + 1e-12 for i in result.items)


def test_never_writes_over_an_input(tmp_path):
    first = tinymodels.save_photo(tmp_path / "a.png", seed=1)
    second = tinymodels.save_photo(tmp_path / "a.adv.png", seed=3)  # where a.png's output would go
    before = digest(second)
    with pytest.raises(UsageError, match="is the folder of the input"):
        fool([first, second], model=tinymodels.tiny_classifier(), out_dir=tmp_path, device="cpu")
    assert digest(second) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.adv.png", "a.png"]
    with pytest.raises(UsageError, match="would overwrite the input"):
        output_names([first, second], str(tmp_path), [2 / 255])
    hard = tmp_path / "out"
    hard.mkdir()
    (hard / "a.adv.png").hardlink_to(second)  # the same inode under the output's name
    with pytest.raises(UsageError, match="would overwrite the input"):
        output_names([first, second], str(hard), [2 / 255])


def test_targeted_photo_reaches_the_named_class(photo, tmp_path):
    model = tinymodels.linear_classifier()
    result = fool([photo], model=model, attack="pgd", eps=0.25, steps=20, target="class2",
                  out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    assert result.settings.target_index == 2 and result.settings.targeted
    assert item.adversarial[0].index == 2 and item.success


def test_unreadable_and_missing_images_are_input_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    for path, message in [(bad, "cannot be decoded"), (tmp_path / "missing.png", "does not exist"),
                          (tmp_path, "folder")]:
        with pytest.raises(InputError, match=message):
            fool([str(path)], model=tinymodels.tiny_classifier(), out_dir=tmp_path / "o", device="cpu")
    assert not (tmp_path / "o").exists()


def test_resolve_target():
    names = [f"class{i}" for i in range(5)] + ["crane", "crane", "Toaster"]
    model = SimpleNamespace(class_names=names, num_classes=len(names), wnids=[f"n{i:08d}" for i in range(8)])
    assert resolve_target(model, "3") == 3
    assert resolve_target(model, 7) == 7
    assert resolve_target(model, "toaster") == 7
    assert resolve_target(model, "n00000004") == 4
    assert resolve_target(model, None) is None
    for text, message in [("8", "not a class index"), ("-1", "not a class index"), ("crane", "several classes"),
                          ("toastr", "Did you mean 'toaster'"), ("zebra", "not a class name")]:
        with pytest.raises(UsageError, match=message):
            resolve_target(model, text)


def test_bf16_items_carry_the_fp32_verdict_on_the_same_png(photo, tmp_path):
    model = tinymodels.tiny_classifier()
    (item,) = fool([photo], model=model, attack="fgsm", eps=16 / 255, precision="bf16", out_dir=tmp_path / "o",
                   device="cpu").items
    check = item.precision_check
    assert check is not None and check["precision"] == "bf16"
    x = torch.from_numpy(pixels(item.adversarial_image)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        fp32 = model.forward_image(x).softmax(1)[0]
    assert check["fp32_top1"].index == int(fp32.argmax())
    assert check["fp32_success"] == (int(fp32.argmax()) != item.original[0].index)
    assert 0 <= check["max_probability_difference"] < 0.2
    (plain,) = fool([photo], model=model, attack="fgsm", eps=16 / 255, out_dir=tmp_path / "p", device="cpu").items
    assert plain.precision_check is None
