"""The spelling of --corruptions and --severity (the ImageNet-C and ImageNet-C-bar names, families, sets and
severities), torch-free.

Families as in Hendrycks & Dietterich 2019 (and `imagecorruptions.get_corruption_names`): noise, blur,
weather (snow, frost, fog, brightness), digital (contrast, elastic, pixelate, JPEG). ImageNet-C-bar's 10
(Mintun et al. 2021, facebookresearch/augmentation-corruption) are one family, `c-bar`, of their own
benchmark; `all` stays ImageNet-C's 15 (what mCE averages), `c-bar` selects the 10, `all,c-bar` both.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nnprobe.errors import UsageError
from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    random: bool  # draws from the per-sample generators (the others are deterministic)
    benchmark: str = "ImageNet-C"


_TABLE = (("gaussian_noise", "noise", True), ("shot_noise", "noise", True), ("impulse_noise", "noise", True),
          ("defocus_blur", "blur", False), ("glass_blur", "blur", True), ("motion_blur", "blur", True),
          ("zoom_blur", "blur", False), ("snow", "weather", True), ("frost", "weather", True),
          ("fog", "weather", True), ("brightness", "weather", False), ("contrast", "digital", False),
          ("elastic_transform", "digital", True), ("pixelate", "digital", False),
          ("jpeg_compression", "digital", False))
C_BAR = ("blue_noise_sample", "brownish_noise", "caustic_refraction", "checkerboard_cutout", "cocentric_sine_waves",
         "inverse_sparkles", "perlin_noise", "plasma_noise", "single_frequency_greyscale", "sparkles")
CORRUPTIONS: dict[str, Corruption] = {name: Corruption(name, family, random) for name, family, random in _TABLE}
IMAGENET_C = tuple(CORRUPTIONS)
CORRUPTIONS.update({name: Corruption(name, "c-bar", True, "ImageNet-C-bar") for name in C_BAR})
FAMILIES = ("noise", "blur", "weather", "digital", "c-bar")
BENCHMARKS = {"ImageNet-C": "imagecorruptions 1.1.2 (Hendrycks & Dietterich 2019 parameters)",
              "ImageNet-C-bar": "augmentation-corruption imagenet_c_bar (Mintun et al. 2021, published levels)"}
ALIASES = {"gaussian": "gaussian_noise", "shot": "shot_noise", "impulse": "impulse_noise", "defocus": "defocus_blur",
           "glass": "glass_blur", "motion": "motion_blur", "zoom": "zoom_blur", "elastic": "elastic_transform",
           "jpeg": "jpeg_compression"}
SEVERITIES = (1, 2, 3, 4, 5)


def parse_corruptions(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`all` (ImageNet-C's 15), a family (`c-bar`: ImageNet-C-bar's 10), or names (comma-separated, short
    aliases allowed) -> names in ImageNet-C order, then ImageNet-C-bar's."""
    words = [w.strip().lower() for w in (spec.split(",") if isinstance(spec, str) else spec) if w.strip()]
    chosen: set[str] = set()
    for word in words:
        if word == "all":
            chosen.update(IMAGENET_C)
        elif word in FAMILIES:
            chosen.update(n for n, c in CORRUPTIONS.items() if c.family == word)
        elif ALIASES.get(word, word) in CORRUPTIONS:
            chosen.add(ALIASES.get(word, word))
        else:
            raise UsageError(f"--corruptions {word!r} is not all, a family ({', '.join(FAMILIES)}) or one of "
                             f"{', '.join(CORRUPTIONS)}.")
    if not chosen:
        raise UsageError("--corruptions names no corruption: give all, a family or names.")
    return tuple(n for n in CORRUPTIONS if n in chosen)


PERTURBATIONS = ("gaussian_noise", "shot_noise", "speckle_noise", "brightness", "gaussian_blur", "zoom_blur",
                 "motion_blur", "snow", "translate", "rotate", "tilt", "scale", "shear", "spatter")
# ImageNet-P's, as generated on the device (nnprobe/imagenet_c/perturb.py, geometric.py); new ones go at the end
# (a name's index is part of its sequences' seeds)
NOISES = ("gaussian_noise", "shot_noise", "speckle_noise")  # compared with frame 0 (test.py's noise_perturbation);
# the published videos encoded them with x264's film-grain tuning (imagenet_c/x264.py)


def perturbation_baseline_option(help: str) -> object:
    """`--perturbation-baseline RESULT.json`, declared once for the corruption sweep and for merge."""
    return option("--perturbation-baseline", help, parse=None, metavar="RESULT.json", path=PathKind.INPUT,
                  input_kind="result", what="Perturbation baseline")


def parse_perturbations(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`all` or ImageNet-P names (comma-separated) -> names in PERTURBATIONS order."""
    words = [w.strip().lower() for w in (spec.split(",") if isinstance(spec, str) else spec) if w.strip()]
    chosen: set[str] = set()
    for word in words:
        if word != "all" and word not in PERTURBATIONS:
            raise UsageError(f"--perturbations {word!r} is not all or one of {', '.join(PERTURBATIONS)}.")
        chosen.update(PERTURBATIONS if word == "all" else (word,))
    if not chosen:
        raise UsageError("--perturbations names no perturbation: give all or names.")
    return tuple(n for n in PERTURBATIONS if n in chosen)


def parse_severities(spec: str | int | Sequence[int]) -> tuple[int, ...]:
    """`1-5`, `3`, `1,3,5` (or ints) -> sorted severities in 1..5."""
    wrong = f"--severity {str(spec)[:40]!r} must name severities between 1 and 5."
    if isinstance(spec, int) and not isinstance(spec, bool):
        values = [spec]
    elif isinstance(spec, str):
        values = []
        try:
            for part in (item.strip() for item in spec.split(",") if item.strip()):
                lo, _, hi = part.partition("-")
                if len(lo) > 6 or len(hi) > 6:
                    raise UsageError(wrong)
                first, last = int(lo), int(hi or lo)
                if not (1 <= first <= 5 and 1 <= last <= 5):  # bounds before the range is built
                    raise UsageError(wrong)
                values.extend(range(first, last + 1))
        except ValueError:
            raise UsageError(f"--severity {spec[:40]!r} is not a range like 1-5 or a list like 1,3,5.") from None
    else:
        try:
            values = [int(v) for v in spec]
        except (TypeError, ValueError):
            raise UsageError(wrong) from None
    if not values or any(v not in SEVERITIES for v in values):
        raise UsageError(wrong)
    return tuple(sorted(set(values)))




def _corruptions(value, flag: str) -> tuple[str, ...]:
    return parse_corruptions(value)


def _perturbations(value, flag: str) -> tuple[str, ...]:
    return parse_perturbations(value)


def _severities(value, flag: str) -> tuple[int, ...]:
    return parse_severities(value)


@dataclass(frozen=True)
class CorruptionOptions(Options):
    corruptions: tuple[str, ...] | None = option(
        "--corruptions", "ImageNet-C common corruptions instead of an attack: all, noise, blur, weather, digital, "
        "c-bar (ImageNet-C-bar's 10) or names (docs/corruptions.md).", parse=_corruptions,
        metavar="all|FAMILY|c-bar|NAME[,NAME...]")
    severity: tuple[int, ...] = option("--severity", "Corruption severities (with --corruptions).",
                                       default=SEVERITIES, parse=_severities, metavar="1-5|S[,S...]",
                                       text_default="1-5", show_default=True)
    jpeg_roundtrip: bool = option("--jpeg-roundtrip", "With --corruptions: save each corrupted image as JPEG at quality "
                                  "85 and decode it, as the published ImageNet-C files were made, so numbers compare "
                                  "with theirs.", default=False, parse=p.flag, is_flag=True)
    perturbations: tuple[str, ...] | None = option(
        "--perturbations", "With the corruption sweep, ImageNet-P's perturbation sequences in the same pass: all or "
        "names; reports each one's flip probability and top-5 distance, and on 1000 classes mFR and mT5D against "
        "AlexNet (docs/corruptions.md).",
        parse=_perturbations, metavar="all|NAME[,NAME...]")
    x264_roundtrip: bool = option("--x264-roundtrip", "With --perturbations: encode each image's sequence as the "
                                  "published ImageNet-P videos were (libx264, preset veryslow, crf 20; the noises "
                                  "tune grain) and score the decoded frames; needs nnprobe[video].", default=False,
                                  parse=p.flag, is_flag=True)
    perturbation_baseline: object = perturbation_baseline_option(
        "With --perturbations: each flip probability and top-5 distance divided by this earlier corruptions "
        "result's (a reference model's --format json run on the same images, seed and perturbations); their means "
        "are mFR and mT5D against that model (beside the paper's, against AlexNet). With --shard the slices carry "
        "it to nnprobe merge.")
    min_corruption_top1: float | None = option("--min-corruption-top1", "Gate: exit 1 when the mean corruption "
                                               "top-1 is below F (with --corruptions).", parse=p.fraction,
                                               metavar="F", once=True)

    def check(self) -> None:
        if self.x264_roundtrip:
            from nnprobe.options.video import check_request

            check_request(self.perturbations)
