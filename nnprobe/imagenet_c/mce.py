"""ImageNet-C's official corruption error and ImageNet-P's flip rate (Hendrycks & Dietterich, ICLR 2019): a
model's errors, flip probabilities and top-5 distances normalised by AlexNet's.

    CE_c = Σ_s E_{s,c} / Σ_s E^AlexNet_{s,c}                      mCE = mean of CE_c over the 15 corruptions
    relative CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^AlexNet_{s,c} − E^AlexNet_clean)   relative mCE = their mean

AlexNet's top-1 errors per corruption and severity are the published ones (the paper's evaluation; the
same table ships in timm's `imagenetc_alexnet_error_rates_list`; their means per corruption are the
constants every mCE script uses, gaussian_noise 0.886428 ...). AlexNet's clean error is 0.4345 as used by
published relative-mCE code (the paper's Table 1 rounds it to 43.5). Both sums run over the severities
actually measured, so a run of severities 1-5 gives the paper's numbers and a subset gives the same ratio
over that subset; mCE needs all 15 corruptions (otherwise it is None). The normalisation only means
something for ImageNet's 1000 classes; other label sets get None.

    FR_p = FP_p / FP^AlexNet_p    T5D_p = uT5D_p / uT5D^AlexNet_p    mFR, mT5D = their means (10 test perturbations)

AlexNet's flip probability FP and unstandardised top-5 distance uT5D per ImageNet-P perturbation are printed
in the paper's draft, Appendix E "Full perturbation robustness results" (new_draft.pdf in
github.com/hendrycks/robustness at commit de7653a17d488af96ac22724efd015eca31222fe, uploaded 2018-09-06 and
removed from the tree by e0377d4; hendrycks/robustness issue #49 points to a spreadsheet instead): FP in percent
to two decimals, uT5D to two decimals, for the 10 test perturbations and the 4 validation ones. The same
appendix's AlexNet ImageNet-C means (Appendix D) equal ALEXNET_ERRORS' means to the printed 0.1% for 14 of
the 15 corruptions, and the 15th (JPEG, 60.65%) is a rounding tie. mFR and mT5D average the 10 test
perturbations of the paper's Tables 3 and 4, and need all 10. Torch-free.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

ALEXNET_CLEAN_ERROR = 0.4345
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.9487, 0.9872, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.5843, 0.70048, 0.82108, 0.8975, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.9187, 0.94952),
    "frost": (0.6139, 0.79734, 0.8879, 0.89942, 0.9343),
    "fog": (0.67474, 0.7605, 0.84378, 0.8726, 0.945),
    "brightness": (0.4514, 0.48502, 0.54048, 0.62166, 0.7244),
    "contrast": (0.64548, 0.7615, 0.88874, 0.9776, 0.9927),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.5462, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}
IMAGENET_CLASSES = 1000

ALEXNET_FLIP_PROBABILITY: dict[str, float] = {
    "gaussian_noise": 0.2365, "shot_noise": 0.3006, "motion_blur": 0.0930, "zoom_blur": 0.0594, "snow": 0.1193,
    "brightness": 0.0489, "translate": 0.1101, "rotate": 0.1310, "tilt": 0.0705, "scale": 0.2353,
    "speckle_noise": 0.1865, "gaussian_blur": 0.0278, "spatter": 0.0505, "shear": 0.1066,
}
ALEXNET_TOP5_DISTANCE: dict[str, float] = {
    "gaussian_noise": 4.77, "shot_noise": 5.76, "motion_blur": 1.93, "zoom_blur": 1.34, "snow": 2.42,
    "brightness": 1.19, "translate": 2.63, "rotate": 2.95, "tilt": 1.75, "scale": 4.48,
    "speckle_noise": 3.89, "gaussian_blur": 0.70, "spatter": 1.26, "shear": 2.48,
}
IMAGENET_P_TEST = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness", "translate",
                   "rotate", "tilt", "scale")  # mFR's and mT5D's; speckle, gaussian blur, spatter, shear: validation


def corruption_errors(errors: Mapping[str, Mapping[int, float]], clean_error: float, *,
                      relative: bool = False) -> dict[str, float]:
    """CE_c (or relative CE_c) per ImageNet-C corruption in `errors` ({corruption: {severity: top-1 error}})."""
    out = {}
    for name, by_severity in errors.items():
        if name not in ALEXNET_ERRORS or not by_severity:
            continue
        alexnet = ALEXNET_ERRORS[name]
        ours = sum(e - (clean_error if relative else 0.0) for e in by_severity.values())
        theirs = sum(alexnet[s - 1] - (ALEXNET_CLEAN_ERROR if relative else 0.0) for s in by_severity)
        out[name] = ours / theirs
    return out


def mean_over_all(values: Mapping[str, float], names: Sequence[str] = tuple(ALEXNET_ERRORS)) -> float | None:
    """The mean over all `names` (ImageNet-C's 15 corruptions unless given), or None when any is missing."""
    if any(n not in values for n in names):
        return None
    return sum(values[n] for n in names) / len(names)


def over_alexnet(measured: Mapping[str, float], alexnet: Mapping[str, float]) -> dict[str, float]:
    """Each ImageNet-P perturbation's FP (or uT5D) over AlexNet's: FR_p (or T5D_p)."""
    return {name: value / alexnet[name] for name, value in measured.items() if name in alexnet}
