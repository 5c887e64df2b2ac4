"""eval's own settings: how the images are fed and scored."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option

DECODERS = ("workers", "device")
VARIANTS = ("imagenet-a", "imagenet-r", "objectnet", "v2", "sketch", "real", "val")  # nnprobe.variants.protocols


@dataclass(frozen=True)
class EvalSettings(Options):
    restrict_to_present: bool = option("--restrict-to-present", "Argmax over the classes present in the data only "
                                       "(ImageNet-A/R style subsets).", default=False, parse=p.flag, is_flag=True)
    variant: str | None = option("--variant", "Which ImageNet test set DATA is, for its published protocol (A/R: "
                                 "argmax over their 200 classes, ObjectNet: its 113 classes and border crop, V2: "
                                 "folders 0..999; the all-classes argmax is reported beside). Default: detected "
                                 "from the class folders, said in the report.", parse=p.choice(*VARIANTS),
                                 choices=VARIANTS)
    strict: bool = option("--strict", "Fail on the first undecodable or non-image file instead of skipping.",
                          default=False, parse=p.flag, is_flag=True)
    compile: bool = option("--compile", "torch.compile the model first.", default=False, parse=p.flag, is_flag=True)
    decode: str = option("--decode", "Where JPEGs are decoded and resized: CPU workers (PIL, exact torchvision "
                         "match) or the device (nvJPEG on CUDA; close to PIL, feeds a fast GPU).", default="workers",
                         parse=p.choice(*DECODERS), choices=DECODERS, show_default=True)
    real_labels: str | None = option("--real-labels", "ImageNet-ReaL labels (the published real.json) for "
                                     "ILSVRC2012_val_* images: adds ReaL top-1.", parse=p.path, metavar="REAL.JSON",
                                     path=PathKind.INPUT, input_kind="labels",
                                     what="ReaL labels file")
    setup_checks: bool = option("--setup-checks", "Test the usual setup mistakes (label order, normalisation, "
                                "0-255, BGR, training mode) when top-1 is near chance or the answers concentrate "
                                "(--no-setup-checks: do not).", default=True, parse=p.flag, is_flag=True,
                                secondary="--no-setup-checks", show_default=True)
