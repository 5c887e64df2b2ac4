"""fool reads photos through the one data decoder (16-bit scaling, bomb guard, regular files only), names
its outputs uniquely, keeps them out of the inputs' folders and data sets, and refuses NaN/Inf logits."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
import tinymodels  # noqa: E402
from image_makers import bomb_png, gray16_png  # noqa: E402

from nnprobe.attacks.photo import fool  # noqa: E402
from nnprobe.attacks.photo_files import _stems, read_rgb  # noqa: E402
from nnprobe.data.decode import decode_rgb  # noqa: E402
from nnprobe.errors import InputError, NnprobeError, UsageError  # noqa: E402


def run(paths, out, model=None, **kw):
    kw.setdefault("device", "cpu")
    return fool([str(p) for p in paths], model=model or tinymodels.tiny_classifier(), out_dir=str(out), **kw)


def test_16bit_png_reads_the_same_in_fool_and_eval(tmp_path):
    path = gray16_png(tmp_path / "in" / "g16.png")
    assert np.array_equal(np.asarray(read_rgb(str(path))), np.asarray(decode_rgb(str(path))[0]))
    (item,) = run([path], tmp_path / "out", attack="fgsm", eps=2 / 255).items
    written = np.asarray(Image.open(item.adversarial_image).convert("RGB"), dtype=np.int64)
    assert np.abs(written - 200).max() <= 2  # attacked around grey 200, not PIL's clipped 255


@pytest.mark.parametrize("side", [10000, 20000])
def test_bomb_is_refused_before_any_work(tmp_path, side):
    path = bomb_png(tmp_path / "in" / "bomb.png", side)
    with pytest.raises(InputError, match="too large to decode safely"):
        run([path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fifo_and_device_are_refused(tmp_path):
    (tmp_path / "in").mkdir()
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    os.symlink("/dev/zero", tmp_path / "in" / "zero.jpg")
    for name, message in [("pipe.jpg", "is a FIFO"), ("zero.jpg", "is a device")]:
        with pytest.raises(InputError, match=message):
            run([tmp_path / "in" / name], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_colliding_stems_get_folder_names_then_counters():
    assert _stems(["a/cat.jpg", "b/cat.jpg", "cat-2.jpg"]) == ["a-cat", "b-cat", "cat-2"]
    assert _stems(["b/cat.jpg", "a/cat.jpg"]) == ["b-cat", "a-cat"]  # a name depends on its own path only
    assert _stems(["x/a/cat.jpg", "y/a/cat.jpg", "a-cat.png"]) == ["a-cat-2", "a-cat-3", "a-cat"]
    assert _stems(["d/Cat.png", "e/cat.png"]) == ["d-Cat", "e-cat"]  # case-insensitive file systems
    assert _stems(["d/x.png", "d/x.png"]) == ["d-x", "d-x-2"]


def test_inputs_with_one_stem_all_get_written(tmp_path):
    paths = [tinymodels.save_photo(tmp_path / "a" / "cat.png", 1), tinymodels.save_photo(tmp_path / "b" / "cat.png", 2),
             tinymodels.save_photo(tmp_path / "cat-2.png", 3)]
    result = run(paths, tmp_path / "out", panels=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-cat.adv.png", "b-cat.adv.png",
                                                                  "cat-2.adv.png"]
    assert len({item.adversarial_image for item in result.items}) == 3


def test_out_may_not_sit_among_inputs_or_in_a_data_set(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "val" / "n01440764" / "fish.png", 1)
    for out, message in [(tmp_path / "val" / "n01440764", "is the folder of the input"),
                         (tmp_path / "val", "lies inside the data set"),
                         (tmp_path / "val" / "fooled", "lies inside the data set"),
                         (tmp_path / "val" / "n01440764" / "fooled", "lies inside the data set")]:
        with pytest.raises(UsageError, match=message):
            run([photo], out)
    assert sorted(p.name for p in (tmp_path / "val").rglob("*")) == ["fish.png", "n01440764"]
    plain = tinymodels.save_photo(tmp_path / "photos" / "p.png", 2)  # not a data set: a subfolder is fine
    (item,) = run([plain], tmp_path / "photos" / "nnprobe-fool").items
    assert Path(item.adversarial_image).parent == tmp_path / "photos" / "nnprobe-fool"


def test_nan_logits_stop_before_anything_is_written(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", 1)
    with pytest.raises(NnprobeError, match=r"NaN or infinite logits for 1 of 1 photos \(first: "):
        run([photo], tmp_path / "out", model=tinymodels.nan_classifier())
    assert not (tmp_path / "out").exists()


def test_inf_on_some_photos_is_counted(tmp_path):
    dark = tinymodels.save_photo(tmp_path / "in" / "dark.png", 1)
    bright = tmp_path / "in" / "bright.png"
    Image.new("RGB", (24, 20), (250, 250, 250)).save(bright)
    with pytest.raises(NnprobeError, match=f"1 of 2 photos \\(first: {bright}\\)"):
        run([dark, bright], tmp_path / "out", model=tinymodels.inf_on_bright_classifier())
    (item,) = run([dark], tmp_path / "out", model=tinymodels.inf_on_bright_classifier(), eps=2 / 255).items


class BrightensToInf(torch.nn.Module):
    """Class 0 for dark images, class 1 for bright ones; +Inf logits above mean 0.5. Leaving class 0
    means brightening, so the attack itself reaches the Inf region from a finite start."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        logits = torch.cat([1 - m, m], dim=1) * 10
        return torch.where(m > 0.5, torch.full_like(logits, float("inf")), logits)


def test_inf_on_the_adversarial_image_is_never_a_verdict(tmp_path):
    from nnprobe.models.classifier import Classifier

    pre = tinymodels.linear_classifier().preprocessing
    model = Classifier(BrightensToInf(), tinymodels.info("brightens", pre, 2), ["dark", "bright"]).eval()
    grey = tmp_path / "in" / "grey.png"
    grey.parent.mkdir()
    Image.new("RGB", (16, 16), (120, 120, 120)).save(grey)  # mean 0.47: finite, class 0
    with pytest.raises(NnprobeError, match=r"for 1 of 1 adversarial images \(of .*grey.png at eps 16/255\)"):
        run([grey], tmp_path / "out", model=model, attack="fgsm", eps=16 / 255, space="model")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    (item,) = run([grey], tmp_path / "out", model=model, attack="fgsm", eps=4 / 255, space="model").items
    assert item.success is False  # 0.486: still class 0, finite all along


def test_autocast_overflow_is_named(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", 1)
    with pytest.raises(NnprobeError, match="--precision bf16 runs under autocast, which can overflow to Inf"):
        run([photo], tmp_path / "out", model=tinymodels.half_overflow_classifier(), precision="bf16")
    assert run([photo], tmp_path / "out", model=tinymodels.half_overflow_classifier()).items


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_impossible_seed_is_a_usage_error(tmp_path, seed):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", 1)
    with pytest.raises(UsageError, match="--seed"):
        run([photo], tmp_path / "out", seed=seed)
