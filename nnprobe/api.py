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
    from nnprobe.comparison import Comparison
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


_BASELINE_OPTIONS = ("max_drop_top1", "max_drop_top5", "max_class_drop", "alpha", "allow_different_data")


def _split(options: dict[str, Any]) -> tuple[dict, dict, dict]:
    model_options = {k: options.pop(k) for k in _MODEL_OPTIONS if k in options}
    data_options = {k: options.pop(k, None) for k in _DATA_OPTIONS}
    if "device" in options:
        options["device"] = str(options["device"])
    return model_options, data_options, options


def _baseline_options(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`baseline` and the comparison's gates, taken out of a command's options (checked before any work)."""
    baseline = options.pop("baseline", None)
    gates = {k: options.pop(k) for k in _BASELINE_OPTIONS if k in options}
    if baseline is None:
        if any(v not in (None, False) for v in gates.values()):
            raise UsageError(f"{', '.join(k for k, v in gates.items() if v not in (None, False))} compare with a "
                             "baseline: give baseline (--baseline FILE) too.")
        return None, {}
    from nnprobe.comparison.options import Options

    Options.parse(**gates)
    if options.get("shard") is not None:
        raise UsageError("A --shard slice is not the whole data set: compare the merged result (nnprobe merge, "
                         "then nnprobe compare).")
    return baseline, gates


def _with_baseline(result, baseline: Any, gates: dict[str, Any]):
    """The result with its comparison against `baseline` (`--baseline`), whose gates join the result's."""
    if baseline is None:
        return result
    import dataclasses

    from nnprobe.comparison import compare as run

    shown = os.fspath(baseline) if isinstance(baseline, (str, os.PathLike)) else "the baseline"
    comparison = run(baseline, result, names=(shown, "this run"),
                     confidence=getattr(result, "confidence_level", 0.95), **gates)
    return dataclasses.replace(result, comparison=comparison, gates=result.gates + comparison.gates)


def evaluate(model: Any = None, data: Any = None, **options: Any) -> "EvalResult":
    """Top-1/top-5 accuracy, exactly (integer counts), as `nnprobe eval`.

    Options: the model's (weights, arch, trust_pickle, num_classes, resize, crop, interpolation, mean, std),
    the data's (labels_file, devkit, class_map, limit), and restrict_to_present, strict, batch_size,
    workers, compile, decode, save_predictions, shard ("K/N"), real_labels, the gates min_top1, min_top5,
    max_ece, min_class_top1, device, precision, progress; confidence (of every interval), bootstrap_resamples,
    seed; reference_model (a spec or Classifier run on the same batches, compared image by image) with its
    gates max_flips (default 0) and max_logit_diff; and baseline (a result JSON path, dict or result
    to compare with, as `nnprobe compare`) with its gates max_drop_top1, max_drop_top5, max_class_drop,
    alpha, allow_different_data."""
    from nnprobe.evaluation import evaluate as run

    model_options, data_options, rest = _split(dict(options))
    baseline, gates = _baseline_options(rest)
    classifier, images = _model_and_data(model, data, model_options, data_options)
    reference = rest.pop("reference_model", None)
    if reference is not None:
        classifier, rest["reference"] = _with_reference(classifier, reference, model_options)
    return _with_baseline(run(classifier, images, **rest), baseline, gates)


def _with_reference(classifier, reference: Any, model_options: Mapping[str, Any]):
    """The reference model (a spec or Classifier), and the candidate: both see the same pixels, so the
    preprocessing flags apply to a reference spec too; an ONNX export carries no preprocessing, so without
    flags it takes the reference's."""
    import dataclasses

    from nnprobe.models.classifier import Classifier, rebuild

    given = {k: model_options[k] for k in ("resize", "crop", "interpolation", "mean", "std")
             if model_options.get(k) is not None}
    ref = reference if isinstance(reference, Classifier) else load_classifier(reference, **given)
    flags = bool(given)
    if classifier.info.source == "onnx" and not flags:
        pre = dataclasses.replace(ref.preprocessing, source=f"the reference model's ({ref.info.spec})")
        classifier = rebuild(classifier, preprocessing=pre)
    return classifier, ref


def robust(model: Any = None, data: Any = None, **options: Any):
    """Robust top-1/top-5 per perturbation budget, as `nnprobe robust` (`data` may also be an iterable of
    (pixels, labels) batches at the model's input size).

    Options: the model's and the data's (as evaluate), and attack, eps, steps, step_size, random_start,
    seed, early_stop, batch_size, workers, min_robust_top1 ({eps: fraction}), save_predictions, shard, device,
    precision, progress, adaptive (run the sanity checks' follow-up attacks), surrogate (a model spec or
    Classifier for adaptive's transfer attack); and baseline with the comparison's gates (as evaluate). With corruptions ("all", a
    family or names) and severity ("1-5"): the ImageNet-C sweep instead (gate min_corruption_top1)."""
    from nnprobe.attacks.robustness import robust as run
    from nnprobe.data.layouts import LabelledImages

    model_options, data_options, rest = _split(dict(options))
    baseline, gates = _baseline_options(rest)
    corruptions, severity = rest.pop("corruptions", None), rest.pop("severity", None)
    if corruptions is not None:
        from nnprobe.corruptions.sweep import corruption_sweep as run

        rest.update(corruptions=corruptions, severities="1-5" if severity is None else severity)
    if isinstance(rest.get("surrogate"), (str, os.PathLike)):  # robust(adaptive=True, surrogate=SPEC)
        rest["surrogate"] = load_classifier(rest["surrogate"])
    if data is not None and not isinstance(data, (str, os.PathLike, LabelledImages)):
        return _with_baseline(run(load_classifier(model, **model_options), data, **rest), baseline, gates)
    classifier, images = _model_and_data(model, data, model_options, data_options)
    return _with_baseline(run(classifier, images, **rest), baseline, gates)


def fool(images: str | os.PathLike | Iterable[str | os.PathLike], model: Any = None, **options: Any):
    """Adversarial PNGs of photos that flip the model's answer, judged after writing, as `nnprobe fool`.

    Options: the model's (as evaluate), and attack, eps, steps, step_size, random_start, target, seed,
    space, out_dir, panels (default on: side-by-side PNGs drawn by the report layer once the attack has
    returned), fail_if_fooled, device, precision, progress, min_eps (search each photo's smallest fooling
    budget instead of eps) and max_eps (its cap)."""
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
             limit: int | None = None, device: Any = "auto", baseline: str | os.PathLike | None = None,
             timeout: float | None = None, **model_options: Any) -> "Diagnosis":
    """Judge a training run from its logs, as `nnprobe diagnose`; with `model` and `data`, also measure how
    the model's answers spread over classes on the images (a constant predictor is an error).

    `run`: a path, or a list of paths (each diagnosed, one Diagnosis). `baseline`: a run folder or diagnose
    JSON to compare the logs' verdict with (attached as `.comparison`; a new error finding fails).
    `timeout`: seconds a request to a remote store may take to connect or answer (default 20)."""
    from nnprobe.diagnosis.summary import diagnose_many

    if (model is None) != (data is None):
        raise UsageError("model and data go together: the probe runs the model on the labelled images.")
    options = dict(num_classes=num_classes, metric_overrides=metric, verify_crc=not no_crc, timeout=timeout)
    paths = list(run) if isinstance(run, (list, tuple)) else [run]
    result = diagnose_many(paths, fail_on=fail_on, **options)
    if baseline is not None:
        from nnprobe.comparison.diagnose_compare import with_baseline

        result = with_baseline(result, os.fspath(baseline), **options)
    if model is None:
        return result
    from nnprobe.diagnosis.prediction_probe import prediction_findings
    from nnprobe.evaluation import evaluate as run_eval

    classifier, images = _model_and_data(model, data, model_options, dict(limit=limit))
    shown = model if isinstance(model, str) else classifier.info.spec
    findings = prediction_findings(run_eval(classifier, images, device=str(device)), run=f"model {shown} on {data}")
    return result.with_findings(findings)


def compare(baseline: Any, candidate: Any, *, max_drop_top1: Any = None, max_drop_top5: Any = None,
            max_class_drop: Any = None, alpha: Any = None, allow_different_data: bool = False,
            confidence: float = 0.95) -> "Comparison":
    """A candidate result against a baseline of the same kind, as `nnprobe compare` (docs/compare.md).

    `baseline`/`candidate`: result JSON paths, dicts of that shape, or result objects; two run folders are
    diagnosed first (and their logs summarised: best validation accuracy and where). Drop thresholds are
    fractions (0.003) or points ("0.3pt"); with `alpha`, a drop fails only when McNemar's p < alpha too;
    `confidence`: the level of the interval on each delta."""
    from nnprobe.comparison import compare as run
    from nnprobe.comparison.diagnose_compare import run_summaries

    folders = [isinstance(x, (str, os.PathLike)) and os.path.isdir(x) for x in (baseline, candidate)]
    summaries, names = None, None
    if all(folders):
        names = (os.fspath(baseline), os.fspath(candidate))
        summaries = (run_summaries(os.fspath(baseline)), run_summaries(os.fspath(candidate)))
        baseline, candidate = diagnose(baseline), diagnose(candidate)
    elif any(folders):
        shown = baseline if folders[0] else candidate
        raise UsageError(f"{os.fspath(shown)} is a folder: give two result JSON files, or two run folders.")
    return run(baseline, candidate, max_drop_top1=max_drop_top1, max_drop_top5=max_drop_top5,
               max_class_drop=max_class_drop, alpha=alpha, allow_different_data=allow_different_data,
               run_summaries=summaries, names=names, confidence=confidence)


def merge(parts: Iterable[str | os.PathLike | Mapping[str, Any]], **options: Any):
    """The whole data set's EvalResult or RobustResult from its `shard="K/N"` slices (result JSON paths or
    their dicts), exactly, as `nnprobe merge`; refuses gaps, overlaps and slices of other runs.

    Options: the gates (min_top1, min_top5, max_ece, min_class_top1 for eval; min_robust_top1 for robust)
    save_predictions (the slices' per-sample files merged into one) and allow_version_mismatch (merge slices
    written by other nnprobe, torch or torchvision versions)."""
    from nnprobe.merging import merge as run

    return run([os.fspath(p) if isinstance(p, os.PathLike) else p for p in parts], **options)
