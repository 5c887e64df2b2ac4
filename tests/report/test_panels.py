"""Panels are drawn by the report layer from a FoolResult once the attack has returned: the original
(as attacked: the photo, or its resized crop in model space) and the adversarial PNG as written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinymodels
from nnprobe import api
from nnprobe.attacks.photo import fool as core_fool
from nnprobe.models.preprocessing import pil_resize_crop
from nnprobe.report.images import write_panels


def tiles(panel_path: str, width: int, height: int) -> list[np.ndarray]:
    """The three image tiles of a panel, cut out at the offsets `report.images.panel` lays them at."""
    canvas = np.asarray(Image.open(panel_path).convert("RGB"))
    gap = max(4, width // 60)
    return [canvas[gap:gap + height, gap + i * (width + gap): gap + i * (width + gap) + width] for i in range(3)]


def rgb(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("space", ["image", "model"])
def test_panel_shows_the_attacked_original_and_the_written_png(tmp_path, space):
    photo = tinymodels.save_photo(tmp_path / "in" / "photo.png", seed=2)
    model = api.load_classifier(tinymodels.tiny_classifier(), resize=20, crop=16)
    result = api.fool([photo], model, attack="fgsm", eps=8 / 255, space=space, out_dir=tmp_path / "out",
                      device="cpu")
    (item,) = result.items
    original = Image.open(photo).convert("RGB")
    if space == "model":
        original = pil_resize_crop(original, model.preprocessing)
    left, middle, right = tiles(item.panel_image, item.width, item.height)
    assert np.array_equal(left, np.asarray(original)) and np.array_equal(right, rgb(item.adversarial_image))
    delta = rgb(item.adversarial_image).astype(int) - np.asarray(original).astype(int)
    assert np.abs(delta).max() == round(item.linf * 255) > 0
    assert np.array_equal(middle == 128, delta == 0)  # mid-grey exactly where the perturbation is zero


def test_the_core_names_panels_but_never_draws_them(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "photo.png", seed=2)
    result = core_fool([photo], model=tinymodels.tiny_classifier(), eps=8 / 255, out_dir=tmp_path / "out",
                       device="cpu", panels=True)
    (item,) = result.items
    assert item.panel_image == str(tmp_path / "out" / "photo.panel.png")
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.adv.png"]
    write_panels(result)
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.adv.png", "photo.panel.png"]
    assert api.fool([photo], tinymodels.tiny_classifier(), eps=8 / 255, out_dir=tmp_path / "o2", device="cpu",
                    panels=False).items[0].panel_image is None
    assert os.listdir(tmp_path / "o2") == ["photo.adv.png"]


def test_a_model_space_panel_needs_the_models_crop(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "photo.png", seed=2)
    result = core_fool([photo], model=tinymodels.tiny_classifier(), eps=8 / 255, space="model",
                       out_dir=tmp_path / "out", device="cpu", panels=True)
    with pytest.raises(ValueError, match="resize_crop"):
        write_panels(result)
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.adv.png"]


def test_a_failed_panel_write_leaves_no_partial_file(tmp_path, monkeypatch):
    photo = tinymodels.save_photo(tmp_path / "in" / "photo.png", seed=2)
    result = core_fool([photo], model=tinymodels.tiny_classifier(), eps=8 / 255, out_dir=tmp_path / "out",
                       device="cpu", panels=True)
    real_replace = os.replace

    def failing(src, dst):
        if str(dst).endswith(".panel.png"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        write_panels(result)
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.adv.png"]  # no panel, no .partial left behind
    assert Path(result.items[0].adversarial_image).stat().st_size > 0
