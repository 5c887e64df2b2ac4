"""ImageNet-P's flip rate, mFR and mT5D against AlexNet (Hendrycks & Dietterich): each FP and top-5 distance
over AlexNet's, averaged over the 10 test perturbations. AlexNet's values are transcribed here a second time,
from the appendix text as printed (the draft's Appendix E, new_draft.pdf in hendrycks/robustness at de7653a),
and the arithmetic is a plain loop over a real sweep's JSON counts; the reports show what the JSON says."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import tinymodels
from imagenet_shaped import wide_classifier
from nnprobe import api
from nnprobe.imagenet_c.results import PerturbationPoint
from nnprobe.report import render

APPENDIX_FP = ("Gaussian Noise: 23.65%, Shot Noise: 30.06%, Motion Blur: 9.30%, Zoom Blur: 5.94%, Snow: 11.93%, "
               "Brightness: 4.89%, Translate: 11.01%, Rotate: 13.10%, Tilt: 7.05%, Scale: 23.53%, Speckle Noise: "
               "18.65%, Gaussian Blur: 2.78%, Spatter: 5.05%, Shear: 10.66%.")
APPENDIX_T5D = ("Gaussian Noise: 4.77, Shot Noise: 5.76, Motion Blur: 1.93, Zoom Blur: 1.34, Snow: 2.42, Brightness: "
                "1.19, Translate: 2.63, Rotate: 2.95, Tilt: 1.75, Scale: 4.48, Speckle Noise: 3.89, Gaussian Blur: "
                "0.70, Spatter: 1.26, Shear: 2.48.")
TABLE_3_COLUMNS = ("Gaussian Noise", "Shot Noise", "Motion Blur", "Zoom Blur", "Snow", "Brightness", "Translate",
                   "Rotate", "Tilt", "Scale")  # the paper's mFR and mT5D average these ten
TEST = "gaussian_noise,shot_noise,motion_blur,zoom_blur,snow,brightness,translate,rotate,tilt,scale"


def appendix(text: str, percent: bool) -> dict[str, float]:
    """{'gaussian_noise': value} from the appendix sentence ('Gaussian Noise: 23.65%, ...')."""
    pairs = re.findall(r"([A-Z][a-z]+(?: [A-Z][a-z]+)?): (\d+\.\d+)%?", text)
    return {name.lower().replace(" ", "_"): float(value) / (100 if percent else 1) for name, value in pairs}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 1000-logit tiny net's sweep with the ten test perturbations and one validation one (speckle)."""
    root = tmp_path_factory.mktemp("mfr")
    tinymodels.save_class_folders(root / "data", 3, seed=4)
    return api.corruptions(wide_classifier(), str(root / "data"), corruptions="contrast", severity=1, device="cpu",
                           workers=0, batch_size=4, perturbations=TEST + ",speckle_noise")


def test_flip_rates_and_their_means_equal_a_plain_loop_over_the_counts(swept):
    fp, t5d = appendix(APPENDIX_FP, True), appendix(APPENDIX_T5D, False)
    assert len(fp) == len(t5d) == 14
    body = json.loads(json.dumps(swept.to_dict()))
    fr, t5 = {}, {}
    for p in body["perturbations"]:
        name = p["perturbation"]
        fr[name] = p["flips"] / p["comparisons"] / fp[name]
        t5[name] = p["top5_distance_sum"] / p["comparisons"] / t5d[name]
    assert body["flip_rate_vs_alexnet"] == pytest.approx(fr, rel=1e-12)
    assert body["top5_distance_vs_alexnet"] == pytest.approx(t5, rel=1e-12)
    ten = [c.lower().replace(" ", "_") for c in TABLE_3_COLUMNS]
    mfr, mt5d = 0.0, 0.0
    for name in ten:  # speckle noise is a validation perturbation: in the table, not in the mean
        mfr += fr[name] / len(ten)
        mt5d += t5[name] / len(ten)
    assert body["mfr"] == pytest.approx(mfr, rel=1e-12) and body["mt5d"] == pytest.approx(mt5d, rel=1e-12)
    assert "speckle_noise" in fr and sum(p["flips"] for p in body["perturbations"]) > 0  # ratios of something


def test_mfr_needs_all_ten_test_perturbations_and_1000_classes(swept):
    nine = dataclasses.replace(swept, perturbations=tuple(p for p in swept.perturbations if p.perturbation != "tilt"))
    assert nine.mfr is None and nine.mt5d is None and "tilt" not in nine.flip_rate_vs_alexnet
    assert nine.flip_rate_vs_alexnet["scale"] == swept.flip_rate_vs_alexnet["scale"]
    small = dataclasses.replace(swept, model=dataclasses.replace(swept.model, num_classes=4))
    assert small.flip_rate_vs_alexnet is None and small.mfr is None and small.to_dict()["mfr"] is None
    none = dataclasses.replace(swept, perturbations=())
    assert none.flip_rate_vs_alexnet is None and none.to_dict()["flip_rate_vs_alexnet"] is None
    empty = dataclasses.replace(swept, perturbations=tuple(PerturbationPoint(p.perturbation, 0, 0, 0)
                                                           for p in swept.perturbations))
    assert empty.to_dict()["mfr"] is None  # nothing compared (an empty slice): no number


def test_every_report_shows_the_rates_and_why_a_mean_is_missing(swept):
    def unwrapped(result, fmt: str) -> str:  # a table wraps its long lines: compare the words
        return " ".join(render(result, fmt).split())

    fr, t5d = swept.flip_rate_vs_alexnet["translate"], swept.top5_distance_vs_alexnet["translate"]
    cell = f"{100 * fr:.1f} / {100 * t5d:.1f}"
    words = f"mFR {100 * swept.mfr:.1f}, mT5D {100 * swept.mt5d:.1f} (AlexNet = 100"
    for fmt in ("table", "markdown", "html"):
        text = unwrapped(swept, fmt)
        assert "FR / T5D (AlexNet = 100)" in text and cell in text and words in text, fmt
    nine = dataclasses.replace(swept, perturbations=tuple(p for p in swept.perturbations if p.perturbation != "tilt"))
    missing = "no mFR against AlexNet: it averages ImageNet-P's 10 test perturbations, tilt not run here"
    assert missing in unwrapped(nine, "table")
    small = unwrapped(dataclasses.replace(swept, model=dataclasses.replace(swept.model, num_classes=4)), "table")
    assert "AlexNet = 100" not in small and "normalise ImageNet's 1000 classes only" in small
