"""The embedded default model (EfficientNet-Lite0) is fooled on a bundled photo at eps 2/255, at the
photo's own resolution, and the written PNG still fools it when re-read from disk."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAT = os.path.join(ROOT, "samples", "imagenet", "n02123045", "cat.jpg")


def test_default_model_is_fooled_on_the_cat_at_2_of_255(tmp_path):
    from nnprobe.attacks import fool

    result = fool([CAT], attack="fgsm", eps=2 / 255, out_dir=tmp_path, device="cpu", panels=False)
    (item,) = result.items
    assert result.model.spec == "default:efficientnet_lite0"
    assert item.original[0].label == "tiger cat"
    adversarial = Image.open(item.adversarial_image)
    original = Image.open(CAT).convert("RGB")
    assert adversarial.size == original.size == (451, 300)
    delta = np.asarray(adversarial, dtype=np.int64) - np.asarray(original, dtype=np.int64)
    assert np.abs(delta).max() == 2
    assert item.success and item.adversarial[0].index != 282
    assert item.fools_eval_pipeline  # also when read the way `nnprobe eval` reads files
