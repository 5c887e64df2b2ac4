"""The public API: the CLI's verbs, one call each: evaluate, fool, robust, corruptions, diagnose, follow,
compare, merge. Each takes explicit keywords named as the option fields (nnprobe.options) and sends every
value through the same parser as the CLI, so `min_top1="0.5"` or `eps="2/255"` mean what they mean on the
command line, and a mistake is one UsageError sentence; an unknown keyword names the nearest valid one.

`model` is a `--model` spec string (None: the embedded default), a loaded `Classifier`, or a plain
`nn.Module` (its preprocessing from `resize`, `crop`, `interpolation`, `mean`, `std`, else ImageNet's);
`data` is a folder (any layout `nnprobe eval` reads) or a `LabelledImages` from `find_images`; `device` a
string or a `torch.device`. Each call returns a result dataclass; none prints, exits, or leaves
process-wide state changed. Each CLI command is: build options -> guard -> one `*_with` call -> report ->
exit code; the `*_with` functions take the parsed options (a dict of option groups, as `options.verbs.build`
makes them).

Importing this module imports no torch; each call does.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.errors import UsageError
from nnprobe.api.keywords import device as _device, eval_keywords, loader as _loader  # noqa: F401
from nnprobe.api.evaluating import evaluate_with  # noqa: F401 (the CLI's eval callback calls it here)
from nnprobe.api.evaluating import refuse_sliced_baseline as _refuse_sliced_baseline, with_baseline as _with_baseline
from nnprobe.api.loading import bundled_samples, find_images, load_classifier  # noqa: F401 (public)
from nnprobe.api.loading import model_and_data as _model_and_data
from nnprobe.api.process import (detectable_drop, in_local_worker, is_main_rank, is_run, local_workers,  # noqa: F401
                                 looks_like_log, part_names, process_setup, rank_end, result_files, run_logs)
from nnprobe.options import verbs
from nnprobe.options.base import Options, nearest

if TYPE_CHECKING:
    from nnprobe.attacks.results import FoolResult, RobustResult
    from nnprobe.comparison import Comparison
    from nnprobe.imagenet_c.results import CorruptionResult
    from nnprobe.diagnosis.follow import FollowResult
    from nnprobe.diagnosis.results import Diagnosis
    from nnprobe.model_runs import ModelCatalog, ModelRuns
    from nnprobe.results import EvalResult

Progress = Callable[[int, int], None]


Groups = dict[str, Options]
ROBUST_EPS = "0,1/255,2/255,4/255"


def _keywords(func: Callable) -> Callable:
    """An unknown keyword is a UsageError naming the nearest valid one (Python's TypeError names neither the
    verb's options nor a suggestion); the signature, hints and docstring stay the function's own."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any):
        names = list(signature.parameters)
        for name in kwargs:
            if name not in signature.parameters:
                raise UsageError(f"{func.__name__}() has no keyword {name!r}{nearest(name, names)}")
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise UsageError(f"{func.__name__}(): {exc}.") from None
        return func(*args, **kwargs)

    return checked


def _given(values: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in skip and k != "progress"}


@_keywords
def evaluate(model: Any = None, data: Any = None, *, models: str | os.PathLike | None = None,
             weights: str | None = None, arch: str | None = None, trust_pickle: bool = False, num_classes: int | str | None = None, resize: int | str | None = None,
             crop: int | str | None = None, interpolation: str | None = None,
             mean: Sequence[float] | str | None = None, std: Sequence[float] | str | None = None,
             labels_file: str | os.PathLike | None = None, devkit: str | os.PathLike | None = None,
             class_map: str | os.PathLike | None = None, limit: int | str | None = None,
             restrict_to_present: bool = False, variant: str | None = None, strict: bool = False,
             compile: bool = False, decode: str = "workers",
             real_labels: str | os.PathLike | None = None, setup_checks: bool = True,
             min_top1: float | str | None = None, min_top5: float | str | None = None,
             max_ece: float | str | None = None, min_class_top1: float | str | None = None,
             confidence: float | str = 0.95, bootstrap_resamples: int | str = 1000, seed: int | str = 0,
             reference_model: Any = None, max_flips: int | str | None = None,
             max_logit_diff: float | str | None = None, save_predictions: str | os.PathLike | None = None,
             baseline: Any = None,
             max_drop_top1: float | str | None = None, max_drop_top5: float | str | None = None,
             max_class_drop: float | str | None = None, alpha: float | str | None = None,
             allow_different_data: bool = False, shard: str | None = None, batch_size: int | str = 64,
             workers: int | str | None = None, device: Any = "auto", precision: str = "fp32",
             progress: Progress | None = None) -> "EvalResult | ModelRuns":
    """Top-1/top-5 accuracy, exactly (integer counts), as `nnprobe eval`.

    `model` one spec (or Classifier), or a list of them, or a timm wildcard ("timm:convnext_*": the cached
    weights); `models` a file of specs, one per line: several models give a ModelRuns (one EvalResult each,
    the same images decoded once, each model's gates; `baseline` compared with each, `save_predictions` FILE
    one file per model, FILE.MODEL.SUFFIX).

    The model's keywords (weights ... std) as `load_classifier`; the data's (labels_file, devkit, class_map,
    limit) as `find_images`; `variant` (imagenet-a, imagenet-r, objectnet, v2, sketch, real, val; None: detected
    from the class folders) applies that test set's published protocol; gates min_top1, min_top5, max_ece,
    min_class_top1 (fractions, or text such as
    "0.75" / "75%"); `confidence` the level of every interval, with `bootstrap_resamples` seeded by `seed`;
    `reference_model` (a spec or Classifier) runs on the same batches and is compared image by image, with
    the gates max_flips (default 0) and max_logit_diff; `save_predictions` writes each image's answer; `shard` ("K/N") one slice for `merge`;
    `baseline` (a result JSON path, dict or result) compares with an earlier run, as `nnprobe compare`, with
    the drop gates max_drop_top1 ("0.3pt" or 0.003), max_drop_top5, max_class_drop and `alpha`;
    `progress(done, total)` is called as batches finish."""
    return evaluate_with(verbs.build(verbs.EVAL, _given(locals())), progress)


@_keywords
def list_models(pattern: str | None = None) -> "ModelCatalog":
    """The models that load without a download, as `nnprobe models [PATTERN]`: the embedded default,
    torchvision weights in the torch hub cache, timm weights in the Hugging Face cache, and local model files
    `pattern` matches (a shell pattern that also filters the names), each with the preprocessing it would use
    (resize, crop, interpolation, mean, std) from the weights' metadata. Nothing is downloaded or loaded."""
    options = verbs.build(verbs.MODELS_ONLY, _given(locals()))
    from nnprobe.api.many import list_models_with

    return list_models_with(options)


def robust_with(o: Groups, progress: Progress | None = None) -> "RobustResult | CorruptionResult":
    """`robust` from parsed options; with corruptions, the corruption sweep (`corruptions_with`)."""
    from nnprobe.attacks.robustness import robust as run
    from nnprobe.intervals import RESAMPLES

    c, a = o["corruption"], o["attack"]
    if c.corruptions is not None or c.min_corruption_top1 is not None or c.jpeg_roundtrip or c.perturbations:
        if c.corruptions is None:
            raise UsageError(("--jpeg-roundtrip re-encodes corrupted images" if c.jpeg_roundtrip else
                              "--perturbations runs in the corruption sweep" if c.perturbations else
                              "--min-corruption-top1 gates a corruption sweep") + ": give --corruptions too.")
        if a.attack is not None or a.eps is not None or o["gates"].min_robust_top1 or a.adaptive or \
                a.autoattack_version is not None or a.min_norm is not None or a.binarization_test or \
                a.binarization_inner_points is not None or \
                a.surrogate is not None or o["per_sample"].save_predictions is not None or \
                o["baseline"].baseline is not None:
            raise UsageError("--corruptions runs the corruption sweep, not an attack: drop --attack, --eps, "
                             "--min-robust-top1, --min-norm, --binarization-test, --save-predictions and --baseline, or run "
                             "them separately.")
        return corruptions_with(dict(o, seed=a), progress)
    if o["intervals"].bootstrap_resamples != RESAMPLES:
        raise UsageError("--bootstrap-resamples sets the corruption sweep's intervals: give --corruptions too (an "
                         "attack's robust top-1 intervals are exact Clopper-Pearson, with nothing to resample).")
    _refuse_sliced_baseline(o)
    classifier, images = _model_and_data(o["model"], o["data"])
    eps = a.eps if a.eps is not None else verbs.RobustAttackOptions.parse(eps=ROBUST_EPS).eps
    surrogate = load_classifier(a.surrogate) if isinstance(a.surrogate, (str, os.PathLike)) else a.surrogate
    result = run(classifier, images, attack=a.attack_id(), eps=eps, steps=a.steps, step_size=a.step_size,
                 random_start=a.random_start, seed=a.seed, early_stop=a.early_stop, **_loader(o), **_device(o),
                 min_robust_top1=o["gates"].min_robust_top1 or {}, save_predictions=o["per_sample"].save_predictions,
                 shard=o["shard"].shard, progress=progress, adaptive=a.adaptive, surrogate=surrogate,
                 min_norm=a.min_norm, min_norm_steps=a.min_norm_steps, binarization_test=a.binarization_test,
                 binarization_inner_points=a.binarization_inner_points)
    result = dataclasses.replace(result, confidence_level=o["intervals"].confidence)
    return _with_baseline(result, o["baseline"])


@_keywords
def robust(model: Any = None, data: Any = None, *, weights: str | None = None, arch: str | None = None,
           trust_pickle: bool = False, num_classes: int | str | None = None, resize: int | str | None = None,
           crop: int | str | None = None, interpolation: str | None = None,
           mean: Sequence[float] | str | None = None, std: Sequence[float] | str | None = None,
           labels_file: str | os.PathLike | None = None, devkit: str | os.PathLike | None = None,
           class_map: str | os.PathLike | None = None, limit: int | str | None = None, attack: str | None = None,
           eps: str | float | Sequence[float] | None = None, steps: int | str | None = None,
           step_size: str | float | None = None, random_start: bool | None = None, seed: int | str = 0,
           early_stop: bool = True, autoattack_version: str | None = None, adaptive: bool = False,
           surrogate: Any = None, min_norm: str | None = None, min_norm_steps: int | str | None = None,
           binarization_test: bool = False, binarization_inner_points: int | str | None = None,
           min_robust_top1: Mapping[float, float] | Sequence[str] | str | None = None,
           confidence: float | str = 0.95, bootstrap_resamples: int | str = 1000,
           corruptions: str | Sequence[str] | None = None, severity: str | int | Sequence[int] | None = None,
           jpeg_roundtrip: bool = False, perturbations: str | Sequence[str] | None = None,
           x264_roundtrip: bool = False, perturbation_baseline: Any = None,
           min_corruption_top1: float | str | None = None, save_predictions: str | os.PathLike | None = None,
           baseline: Any = None, max_drop_top1: float | str | None = None, max_drop_top5: float | str | None = None,
           max_class_drop: float | str | None = None, alpha: float | str | None = None,
           allow_different_data: bool = False, shard: str | None = None, batch_size: int | str = 32,
           workers: int | str | None = None, device: Any = "auto", precision: str = "fp32",
           progress: Progress | None = None) -> "RobustResult | CorruptionResult":
    """Robust top-1/top-5 per perturbation budget, as `nnprobe robust` (`data` may also be an iterable of
    (pixels, labels) batches at the model's input size).

    The model's and the data's keywords as `evaluate`; attack (default pgd), eps ("0,1/255,2/255,4/255",
    a number or a list), steps, step_size, random_start, seed, early_stop; min_robust_top1 ({eps: fraction}
    or "2/255=0.30" items); `confidence` the level of each robust top-1 interval (exact Clopper-Pearson); adaptive runs the sanity checks' follow-up attacks (Square, EoT, and a transfer
    attack from `surrogate`, a spec or Classifier); min_norm ("fmn-linf", "fmn-l2", "fmn-l1", "fmn-l0") with
    min_norm_steps adds every sample's smallest fooling distance (`result.min_norm`); binarization_test runs
    Zimmermann et al.'s binarization test on the sanity checks' samples (binarization_inner_points: its inner
    points per sample, default 999); save_predictions, shard, and baseline with the drop gates
    as `evaluate`. With
    `corruptions` (and `severity`, `min_corruption_top1`, `bootstrap_resamples`): the ImageNet-C sweep instead,
    as `corruptions`."""
    return robust_with(verbs.build(verbs.ROBUST, _given(locals())), progress)


def corruptions_with(o: Groups, progress: Progress | None = None) -> "CorruptionResult":
    """`corruptions` from parsed options."""
    from nnprobe.imagenet_c.sweep import corruption_sweep
    from nnprobe.imagenet_c.relative import preflight, with_perturbation_baseline
    c = o["corruption"]
    classifier, images = _model_and_data(o["model"], o["data"])
    preflight(c.perturbation_baseline, c.perturbations, o["seed"].seed, images, c.x264_roundtrip)  # before the sweep
    result = corruption_sweep(classifier, images, corruptions=c.corruptions or "all", severities=c.severity,
                              seed=o["seed"].seed, **_loader(o), **_device(o),
                              min_corruption_top1=c.min_corruption_top1, shard=o["shard"].shard, progress=progress,
                              jpeg_roundtrip=c.jpeg_roundtrip, perturbations=c.perturbations,
                              x264_roundtrip=c.x264_roundtrip,
                              confidence=o["intervals"].confidence,
                              bootstrap_resamples=o["intervals"].bootstrap_resamples)
    return with_perturbation_baseline(result, c.perturbation_baseline)


@_keywords
def corruptions(model: Any = None, data: Any = None, *, weights: str | None = None, arch: str | None = None,
                trust_pickle: bool = False, num_classes: int | str | None = None, resize: int | str | None = None,
                crop: int | str | None = None, interpolation: str | None = None,
                mean: Sequence[float] | str | None = None, std: Sequence[float] | str | None = None,
                labels_file: str | os.PathLike | None = None, devkit: str | os.PathLike | None = None,
                class_map: str | os.PathLike | None = None, limit: int | str | None = None,
                corruptions: str | Sequence[str] = "all", severity: str | int | Sequence[int] = "1-5",
                jpeg_roundtrip: bool = False, perturbations: str | Sequence[str] | None = None,
                x264_roundtrip: bool = False, perturbation_baseline: Any = None,
                min_corruption_top1: float | str | None = None, seed: int | str = 0,
                confidence: float | str = 0.95, bootstrap_resamples: int | str = 1000, shard: str | None = None,
                batch_size: int | str = 32, workers: int | str | None = None, device: Any = "auto",
                precision: str = "fp32", progress: Progress | None = None) -> "CorruptionResult":
    """Top-1/top-5 under the ImageNet-C common corruptions, as `nnprobe robust --corruptions`: `corruptions`
    is "all", a family (noise, blur, weather, digital, c-bar) or names; `severity` "1-5", "3" or "1,3,5"; the
    gate `min_corruption_top1` judges the mean corruption top-1; `jpeg_roundtrip` saves each corrupted image
    as JPEG (quality 85) and decodes it, as the published files were made; `perturbations` ("all" or names)
    adds ImageNet-P's flip probability and top-5 distance (`x264_roundtrip`: each sequence encoded and decoded
    as the published videos were, with the ffmpeg of nnprobe[video]), and `perturbation_baseline` (a reference model's
    result: a path, dict or result) divides them by its, for mFR and mT5D against that model; the mean
    corruption top-1, mCE and relative mCE carry percentile bootstrap intervals at `confidence` over the images
    (`bootstrap_resamples` resamples seeded by `seed`). The model's and data's keywords as `evaluate`."""
    return corruptions_with(verbs.build(verbs.CORRUPTIONS, _given(locals())), progress)


def fool_with(o: Groups, progress: Progress | None = None) -> "FoolResult":
    """`fool` from parsed options."""
    from nnprobe.attacks.photo import fool as run
    from nnprobe.models.preprocessing import pil_resize_crop
    from nnprobe.report.images import write_panels

    a = o["attack"]
    classifier = load_classifier(o["model"].model, **o["model"].loader_keywords())
    result = run(list(o["inputs"].images), model=classifier, attack=a.attack or ("pgd" if a.min_eps else "fgsm"),
                 eps=None if a.min_eps else a.eps, steps=a.steps, step_size=a.step_size,
                 random_start=a.random_start, target=a.target, seed=a.seed, space=a.space, out_dir=a.out_dir,
                 **_device(o), panels=a.panels, fail_if_fooled=a.fail_if_fooled, progress=progress,
                 min_eps=a.min_eps, max_eps=a.max_eps, min_eps_search=a.min_eps_search)
    write_panels(result, resize_crop=lambda photo: pil_resize_crop(photo, classifier.preprocessing))
    return result


@_keywords
def fool(images: str | os.PathLike | Iterable[str | os.PathLike], model: Any = None, *, weights: str | None = None,
         arch: str | None = None, trust_pickle: bool = False, num_classes: int | str | None = None,
         resize: int | str | None = None, crop: int | str | None = None, interpolation: str | None = None,
         mean: Sequence[float] | str | None = None, std: Sequence[float] | str | None = None,
         attack: str | None = None, eps: str | float | Sequence[float] | None = None, steps: int | str | None = None,
         step_size: str | float | None = None, random_start: bool | None = None, seed: int | str = 0,
         min_eps: bool = False, max_eps: str | float | None = None, min_eps_search: str = "fmn",
         target: str | int | None = None,
         space: str = "image", out_dir: str | os.PathLike = "nnprobe-fool", panels: bool = True,
         fail_if_fooled: bool = False, device: Any = "auto", precision: str = "fp32",
         progress: Progress | None = None) -> "FoolResult":
    """Adversarial PNGs of photos that flip the model's answer, judged after writing, as `nnprobe fool`.

    attack (default fgsm; pgd with min_eps), eps (default 2/255; several give one item per image and eps),
    steps, step_size, random_start, seed, target (a class index, name or wnid), space ("image" or "model"),
    out_dir, panels (side-by-side PNGs drawn by the report layer), fail_if_fooled (a gate); min_eps searches
    each photo's smallest fooling budget instead of eps, up to max_eps. The model's keywords as `evaluate`."""
    return fool_with(verbs.build(verbs.FOOL, _given(locals())), progress)


def diagnose_with(o: Groups) -> "Diagnosis":
    """`diagnose` from parsed options."""
    from nnprobe.diagnosis.summary import diagnose_many

    d, probe = o["diagnose"], o["probe"]
    options = dict(num_classes=d.num_classes, metric_overrides=d.metric, verify_crc=not d.no_crc, timeout=d.timeout)
    result = diagnose_many(list(d.run), fail_on=d.fail_on, **options)
    if d.baseline is not None:
        from nnprobe.comparison.diagnose_compare import with_baseline

        result = with_baseline(result, os.fspath(d.baseline), **options)
    if probe.model is None:
        return result
    from nnprobe.diagnosis.prediction_probe import prediction_findings
    from nnprobe.evaluation import evaluate as run_eval
    from nnprobe.options.data import DataOptions
    from nnprobe.options.model import ModelOptions

    model = ModelOptions.parse(model=probe.model, weights=probe.weights, arch=probe.arch,
                               trust_pickle=probe.trust_pickle)
    classifier, images = _model_and_data(model, DataOptions.parse(data=probe.data, limit=probe.limit))
    shown = probe.model if isinstance(probe.model, str) else classifier.info.spec
    findings = prediction_findings(run_eval(classifier, images, device=probe.device),
                                   run=f"model {shown} on {probe.data}")
    return result.with_findings(findings)


@_keywords
def diagnose(run: str | os.PathLike | Sequence[str | os.PathLike], *, num_classes: int | str | None = None,
             metric: Mapping[str, str] | Iterable[str] | None = None, fail_on: str = "error", no_crc: bool = False,
             baseline: str | os.PathLike | None = None, model: Any = None, weights: str | None = None,
             arch: str | None = None, trust_pickle: bool = False, data: Any = None, limit: int | str | None = None,
             device: Any = "auto", timeout: float | str = 20.0) -> "Diagnosis":
    """Judge a training run from its logs, as `nnprobe diagnose`; with `model` and `data`, also measure how
    the model's answers spread over classes on the images (a constant predictor is an error).

    `run`: a path, or a list of paths (each diagnosed, one Diagnosis). `metric`: ROLE=NAME items or a
    {role: name} mapping. `baseline`: a run folder or diagnose JSON to compare the logs' verdict with
    (attached as `.comparison`; a new error finding fails). `timeout`: seconds a request to a remote store
    may take to connect or answer. To watch a live run, see `follow`."""
    return diagnose_with(verbs.build(verbs.DIAGNOSE_ONLY, _given(locals())))


def follow_with(o: Groups, progress: Callable[[str], None] | None = None) -> "FollowResult":
    """`follow` from parsed options."""
    from nnprobe.diagnosis.follow import follow as run

    d, f = o["diagnose"], o["follow"]
    if len(d.run) != 1:
        raise UsageError(f"--follow watches one run; got {len(d.run)} paths.")
    return run(d.run[0], poll=f.poll, idle=f.idle, wait=f.wait, num_classes=d.num_classes, metric_overrides=d.metric,
               fail_on=d.fail_on, verify_crc=not d.no_crc, kill_pid=f.kill_pid, progress=progress)


@_keywords
def follow(run: str | os.PathLike, *, poll: float | str = 2.0, idle: float | str = 300.0, wait: float | str = 300.0,
           kill_pid: int | str | None = None, num_classes: int | str | None = None,
           metric: Mapping[str, str] | Iterable[str] | None = None, fail_on: str = "error", no_crc: bool = False,
           progress: Callable[[str], None] | None = None) -> "FollowResult":
    """Watch a live training run, as `nnprobe diagnose --follow`: read what the logs append every `poll`
    seconds until a finding reaches `fail_on` (status "error"; with `kill_pid`, SIGTERM goes to exactly that
    process), the format's end marker, or `idle` seconds without new data (status "ended"); `wait` is how
    long to wait for the run and its first log to appear. `progress` gets a line now and then."""
    return follow_with(verbs.build(verbs.FOLLOW, _given(locals())), progress)


def compare_with(o: Groups) -> "Comparison | Diagnosis":
    """`compare` from parsed options: two results, or two training runs (`diagnose CANDIDATE --baseline
    BASELINE`, the one code path: the Diagnosis of the candidate with its comparison attached)."""
    from nnprobe.comparison import compare as run
    from nnprobe import remote
    from nnprobe.io import check_input

    baseline, candidate = o["inputs"].baseline, o["inputs"].candidate
    runs = [is_run(side) for side in (baseline, candidate)]
    if all(runs):
        if o["gates"].given():
            raise UsageError("the drop gates, alpha and --allow-different-data apply to eval and robust results; "
                             "two training runs compared gate on new error findings.")
        return diagnose_with(verbs.build(verbs.DIAGNOSE_ONLY, {"run": [candidate], "baseline": baseline}))
    if any(runs):
        shown = [os.fspath(s) if isinstance(s, (str, os.PathLike)) else type(s).__name__ for s in (baseline, candidate)]
        raise UsageError(f"cannot compare a training run ({shown[runs.index(True)]}) with a result "
                         f"({shown[runs.index(False)]}): give two run folders or logs, or two results written "
                         "with --format json.")
    for source in (baseline, candidate):
        if isinstance(source, (str, os.PathLike)):
            if remote.is_remote(os.fspath(source)):
                raise UsageError(f"{os.fspath(source)} is a file in a remote store that no log reader takes for a "
                                 "training log, and compare reads result JSONs from local files: copy it first.")
            check_input(source, "Result", "result")
    return run(baseline, candidate, **o["gates"].keywords(), confidence=o["intervals"].confidence)


@_keywords
def compare(baseline: Any, candidate: Any, *, max_drop_top1: float | str | None = None,
            max_drop_top5: float | str | None = None, max_class_drop: float | str | None = None,
            alpha: float | str | None = None, allow_different_data: bool = False,
            confidence: float | str = 0.95) -> "Comparison | Diagnosis":
    """A candidate result against a baseline of the same kind, as `nnprobe compare` (docs/compare.md).

    `baseline`/`candidate`: result JSON paths, dicts of that shape, or result objects; two training runs (run
    folders or log files) are `diagnose(candidate, baseline=baseline)`: the candidate's Diagnosis with the
    comparison as `.comparison` (findings new and gone, values at the same epoch or step, from where the validation
    loss stays above the baseline's). Drop thresholds are
    fractions (0.003) or points ("0.3pt"); with `alpha`, a drop fails only when McNemar's p < alpha too;
    `confidence`: the level of the interval on each delta."""
    return compare_with(verbs.build(verbs.COMPARE, _given(locals())))


def merge_with(o: Groups):
    """`merge` from parsed options."""
    from nnprobe.io import check_input
    from nnprobe.merging import merge as run

    parts = [p for part in o["inputs"].parts
             for p in (part_names([part]) if isinstance(part, str) else [part])]
    for part in parts:
        if isinstance(part, str) and "://" not in part:
            check_input(part, "Result", "result")
    g = o["gates"]
    return run(parts, min_top1=g.min_top1, min_top5=g.min_top5, max_ece=g.max_ece,
               min_class_top1=g.min_class_top1, min_robust_top1=g.min_robust_top1 or {},
               min_corruption_top1=g.min_corruption_top1, save_predictions=o["per_sample"].save_predictions,
               allow_version_mismatch=g.allow_version_mismatch,
               perturbation_baseline=o["inputs"].perturbation_baseline)


@_keywords
def merge(parts: Iterable[str | os.PathLike | Mapping[str, Any]], *, min_top1: float | str | None = None,
          min_top5: float | str | None = None, max_ece: float | str | None = None,
          min_class_top1: float | str | None = None,
          min_robust_top1: Mapping[float, float] | Sequence[str] | str | None = None,
          min_corruption_top1: float | str | None = None, save_predictions: str | os.PathLike | None = None,
          allow_version_mismatch: bool = False,
          perturbation_baseline: Any = None) -> "EvalResult | RobustResult | CorruptionResult":
    """The whole data set's EvalResult, RobustResult or CorruptionResult from its `shard="K/N"` slices
    (result JSON paths or their dicts), exactly, as `nnprobe merge`; refuses gaps, overlaps and slices of
    other runs. A part may also be a glob ("parts/part-*.json") or a bucket URL (s3://...; the remote
    extra). Gates as `evaluate` (eval parts), `robust` (robust parts) and `corruptions`; `save_predictions`
    merges the slices' per-sample files into one; `allow_version_mismatch` merges slices written by other
    nnprobe, torch or torchvision versions; `perturbation_baseline` (a path, dict or result, as `corruptions`)
    divides a corruption sweep's merged flip rates by a reference model's."""
    return merge_with(verbs.build(verbs.MERGE, _given(locals())))
