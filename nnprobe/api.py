"""The public API: the CLI's verbs, one call each, with the CLI's option names as keywords.

`model` is a `--model` spec string (None: the embedded default), a loaded `Classifier`, or a plain
`nn.Module` (its preprocessing from `resize`, `crop`, `interpolation`, `mean`, `std`, else ImageNet's);
`data` is a folder (any layout `nnprobe eval` reads) or a `LabelledImages` from `find_images`; `device` a
string or a `torch.device`. Each call returns a result dataclass; none prints, exits, or leaves
process-wide state changed. Each CLI command is: parse options -> one of these calls -> report -> exit code.

Importing this module imports no torch; each call does.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.errors import UsageError

if TYPE_CHECKING:
    from nnprobe.data.layouts import LabelledImages
    from nnprobe.diagnosis.results import Diagnosis
    from nnprobe.models.classifier import Classifier
    from nnprobe.results import EvalResult

Progress = Callable[[int, int], None]
_SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundled_samples() -> str:
    """The sample photos of the source tree (`samples/imagenet`), the default data set."""
    return os.path.join(_SOURCE_TREE, "samples", "imagenet")


def load_classifier(model: Any = None, *, weights: str | None = None, arch: str | None = None,
                    trust_pickle: bool = False, num_classes: int | None = None, resize: int | None = None,
                    crop: int | None = None, interpolation: str | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> "Classifier":
    """A `Classifier` (normalisation inside, preprocessing and class names attached) from a spec string,
    a `Classifier` (preprocessing options override its own), or a plain `nn.Module`."""
    from torch import nn

    from nnprobe.models import IMAGENET_PREPROCESSING
    from nnprobe.models import load_classifier as load_spec
    from nnprobe.models.classifier import Classifier, from_network, rebuild
    from nnprobe.models.preprocessing import with_overrides

    overrides = dict(resize=resize, crop=crop, interpolation=interpolation, mean=tuple(mean) if mean else None,
                     std=tuple(std) if std else None)
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_spec(os.fspath(model) if model is not None else None, weights=weights, arch=arch,
                         trust_pickle=trust_pickle, num_classes=num_classes, **overrides)
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a spec string, a Classifier or an nn.Module, not {type(model).__name__}.")
    if weights or arch:
        raise UsageError("weights and arch go with a model spec string; a loaded module carries its weights.")
    if isinstance(model, Classifier):
        pre = with_overrides(model.preprocessing, **overrides)
        return (rebuild(model, preprocessing=pre) if pre is not model.preprocessing else model).eval()
    name = type(model).__name__
    pre = with_overrides(IMAGENET_PREPROCESSING, **overrides)
    return from_network(model, spec=f"module:{name}", source="module", weights=None, architecture=name,
                        preprocessing=pre, num_classes=num_classes).eval()


def find_images(data: str | os.PathLike | None = None, model: Any = None, *, labels_file: str | None = None,
                devkit: str | None = None, class_map: str | None = None,
                limit: int | None = None) -> "LabelledImages":
    """The labelled images under `data` (None: the bundled samples), labels mapped to `model`'s classes
    (a Classifier, or None for ImageNet's 1000): wnid folders keep their 1000-way index, and so on."""
    from nnprobe.data.layouts import find_images as find
    from nnprobe.models.classifier import Classifier, imagenet_or_numbered

    if data is None:
        data = bundled_samples()
        if not os.path.isdir(data):
            raise UsageError("No data folder given and the bundled samples are not here (they ship in the "
                             "source tree): pass a data folder.")
    if isinstance(model, Classifier):
        names, wnids, k = model.class_names, model.wnids, model.num_classes
    elif model is None:
        names, wnids = imagenet_or_numbered(1000)
        k = 1000
    else:
        raise UsageError("find_images maps labels to a loaded Classifier's classes: pass load_classifier(...).")
    return find(os.fspath(data), class_names=names, wnids=wnids, num_classes=k, labels_file=labels_file,
                devkit=devkit, class_map=class_map).limited(limit)


def _model_and_data(model, data, model_options: Mapping[str, Any], data_options: Mapping[str, Any]):
    from nnprobe.data.layouts import LabelledImages

    classifier = load_classifier(model, **model_options)
    if isinstance(data, LabelledImages):
        if any(data_options.get(k) is not None for k in ("labels_file", "devkit", "class_map")):
            raise UsageError("labels_file, devkit and class_map go with a data folder, not with LabelledImages "
                             "(call find_images with them).")
        return classifier, data.limited(data_options.get("limit"))
    return classifier, find_images(data, classifier, **data_options)


_MODEL_OPTIONS = ("weights", "arch", "trust_pickle", "num_classes", "resize", "crop", "interpolation", "mean", "std")
_DATA_OPTIONS = ("labels_file", "devkit", "class_map", "limit")


def _split(options: dict[str, Any]) -> tuple[dict, dict, dict]:
    model_options = {k: options.pop(k) for k in _MODEL_OPTIONS if k in options}
    data_options = {k: options.pop(k, None) for k in _DATA_OPTIONS}
    if "device" in options:
        options["device"] = str(options["device"])
    return model_options, data_options, options


def evaluate(model: Any = None, data: Any = None, **options: Any) -> "EvalResult":
    """Top-1/top-5 accuracy, exactly (integer counts), as `nnprobe eval`.

    Options: the model's (weights, arch, trust_pickle, num_classes, resize, crop, interpolation, mean, std),
    the data's (labels_file, devkit, class_map, limit), and restrict_to_present, strict, batch_size,
    workers, compile, decode, min_top1, min_top5, device, precision, progress."""
    from nnprobe.evaluation import evaluate as run

    model_options, data_options, rest = _split(dict(options))
    classifier, images = _model_and_data(model, data, model_options, data_options)
    return run(classifier, images, **rest)


def robust(model: Any = None, data: Any = None, **options: Any):
    """Robust top-1/top-5 per perturbation budget, as `nnprobe robust` (`data` may also be an iterable of
    (pixels, labels) batches at the model's input size).

    Options: the model's and the data's (as evaluate), and attack, eps, steps, step_size, random_start,
    seed, early_stop, batch_size, workers, min_robust_top1 ({eps: fraction}), device, precision, progress."""
    from nnprobe.attacks.robustness import robust as run
    from nnprobe.data.layouts import LabelledImages

    model_options, data_options, rest = _split(dict(options))
    if data is not None and not isinstance(data, (str, os.PathLike, LabelledImages)):
        return run(load_classifier(model, **model_options), data, **rest)  # already batches
    classifier, images = _model_and_data(model, data, model_options, data_options)
    return run(classifier, images, **rest)


def fool(images: str | os.PathLike | Iterable[str | os.PathLike], model: Any = None, **options: Any):
    """Adversarial PNGs of photos that flip the model's answer, judged after writing, as `nnprobe fool`.

    Options: the model's (as evaluate), and attack, eps, steps, step_size, random_start, target, seed,
    space, out_dir, panels (default on: side-by-side PNGs drawn by the report layer once the attack has
    returned), fail_if_fooled, device, precision, progress."""
    from nnprobe.attacks.photo import fool as run
    from nnprobe.models.preprocessing import pil_resize_crop
    from nnprobe.report.images import write_panels

    model_options, _, rest = _split(dict(options))
    paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    classifier = load_classifier(model, **model_options)
    rest.setdefault("panels", True)
    result = run(paths, model=classifier, **rest)
    write_panels(result, resize_crop=lambda photo: pil_resize_crop(photo, classifier.preprocessing))
    return result


def diagnose(run: str | os.PathLike, *, model: Any = None, data: Any = None, num_classes: int | None = None,
             metric: Mapping[str, str] | Iterable[str] | None = None, fail_on: str = "error", no_crc: bool = False,
             limit: int | None = None, device: Any = "auto", **model_options: Any) -> "Diagnosis":
    """Judge a training run from its logs, as `nnprobe diagnose`; with `model` and `data`, also measure how
    the model's answers spread over classes on the images (a constant predictor is an error)."""
    from nnprobe.diagnosis import diagnose as judge

    if (model is None) != (data is None):
        raise UsageError("model and data go together: the probe runs the model on the labelled images.")
    result = judge(run, num_classes=num_classes, metric_overrides=metric, fail_on=fail_on, verify_crc=not no_crc)
    if model is None:
        return result
    from nnprobe.diagnosis.prediction_probe import prediction_findings
    from nnprobe.evaluation import evaluate as run_eval

    classifier, images = _model_and_data(model, data, model_options, dict(limit=limit))
    shown = model if isinstance(model, str) else classifier.info.spec
    findings = prediction_findings(run_eval(classifier, images, device=str(device)), run=f"model {shown} on {data}")
    return result.with_findings(findings)
