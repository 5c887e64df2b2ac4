"""Which classifier, and how its input is prepared: --model, --weights, --arch and the preprocessing."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, argument, option

PIXELS = p.integer(1, 16384)
CLASSES = p.integer(1, 10_000_000)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def spec(value, flag: str):
    """A model spec: a name, a path, or an object (a Classifier or nn.Module from the Python API)."""
    import os

    if isinstance(value, (str, os.PathLike)):
        return p.path(value, flag)
    return value  # a loaded module; api.load_classifier says what it accepts


@dataclass(frozen=True)
class ModelOptions(Options):
    model: object = option(
        "--model", "torchvision name (resnet50), timm:NAME, a .pt/.ts/.pt2/.pth/.safetensors file, or "
        "path/file.py:function / package.module:function. Default: the embedded EfficientNet-Lite0.",
        parse=spec, metavar="SPEC", path=PathKind.INPUT, input_kind="model", maybe_name=True)
    weights: str | None = option("--weights", "torchvision weights enum (IMAGENET1K_V2), DEFAULT, or a checkpoint "
                                 "file.", parse=p.path, metavar="ENUM|DEFAULT|PATH", path=PathKind.INPUT,
                                 input_kind="model", maybe_name=True)
    arch: str | None = option("--arch", "Architecture for a state-dict checkpoint (torchvision name or timm:NAME).",
                              parse=p.text, metavar="NAME")
    trust_pickle: bool = option("--trust-pickle", "Allow full unpickling of checkpoints. Unpickling runs code: "
                                "only for files you trust.", default=False, parse=p.flag, is_flag=True)
    num_classes: int | None = option("--num-classes", "Number of classes for --arch when the checkpoint is not "
                                     "1000-way.", parse=CLASSES, metavar="INTEGER")
    resize: int | None = option("--resize", "Resize the short side to this (pixels).", parse=PIXELS,
                                metavar="INTEGER")
    crop: int | None = option("--crop", "Centre-crop to this size (pixels).", parse=PIXELS, metavar="INTEGER")
    interpolation: str | None = option("--interpolation", "", parse=p.choice(*INTERPOLATIONS),
                                       choices=INTERPOLATIONS)
    mean: tuple[float, float, float] | None = option("--mean", "Normalisation mean (0..1 scale).", parse=p.triple,
                                                     metavar="R,G,B")
    std: tuple[float, float, float] | None = option("--std", "Normalisation std (0..1 scale).", parse=p.triple,
                                                    metavar="R,G,B")

    def loader_keywords(self) -> dict:
        """What api.load_classifier takes besides the model itself."""
        return {k: v for k, v in self.keywords().items() if k != "model"}


def specs(value, flag: str) -> tuple:
    """eval's --model, given once or more (the Python API: one spec or a list of them)."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return tuple(spec(item, flag) for item in items)


@dataclass(frozen=True)
class EvalModelOptions(ModelOptions):
    """eval takes several models in one run: --model repeated, a timm wildcard, or --models FILE."""

    model: tuple = option(
        "--model", "torchvision name (resnet50), timm:NAME, a .pt/.ts/.pt2/.pth/.safetensors/.onnx file, or "
        "path/file.py:function / package.module:function; repeat it for several models (one row each), or a timm "
        "wildcard ('timm:convnext_*': the cached weights only). Default: the embedded EfficientNet-Lite0.",
        default=(), parse=specs, metavar="SPEC", multiple=True, path=PathKind.INPUT, input_kind="model",
        maybe_name=True)
    models: str | None = option("--models", "A file of model specs, one per line (# starts a comment), evaluated "
                                "after any --model, one row each.", parse=p.path, metavar="FILE",
                                path=PathKind.INPUT, input_kind="model-list", what="Model list")

    def loader_keywords(self) -> dict:
        return {k: v for k, v in self.keywords().items() if k not in ("model", "models")}

    def one(self, model) -> ModelOptions:
        """The options of one of the run's models, as every single-model path takes them."""
        return ModelOptions(model=model, **self.loader_keywords())


@dataclass(frozen=True)
class CatalogOptions(Options):
    """`nnprobe models [PATTERN]`."""

    pattern: str | None = argument("PATTERN", "Shell-style filter on the names ('resnet*', 'timm:convnext_*'); local "
                                 "model files it matches are listed too ('checkpoints/*.pt').", parse=p.text,
                                   required=False)
