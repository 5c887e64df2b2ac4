"""Options shared by several commands, defined once so they read the same everywhere."""
from __future__ import annotations

import os
from collections.abc import Callable

import click

from nnprobe.io import STDOUT
from nnprobe.report import FORMATS


# Bounds that turn an impossible number into click's one-line usage error (exit 2) before torch loads.
SEED = click.IntRange(0, 2**63 - 1)
COUNT = click.IntRange(min=1)
PIXELS = click.IntRange(1, 16384)
CLASSES = click.IntRange(1, 10_000_000)


# Names of this process's stdout: while a command runs, fd 1 is lent to stderr (cli/stdout.py), so a report
# "written to /dev/stdout" must go to the reserved report stream instead, as `-o -` does.
STDOUT_NAMES = (STDOUT, "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def given_once(ctx, param, values) -> str | None:
    """A gate repeated with two values is refused: keeping either would silently drop the other (the
    stricter one, as often as not). The same value twice is harmless."""
    values = tuple(values or ())
    if len(set(values)) > 1:
        raise click.BadParameter(f"given {len(values)} times ({' and '.join(values)}); give a gate once, so that "
                                 "none is silently dropped.")
    return values[0] if values else None


# What a gate option takes to be refused when repeated (click keeps the last value of a plain option).
ONCE = dict(multiple=True, callback=given_once)


def _stdout_alias(ctx, param, value: str | None) -> str | None:
    return STDOUT if value in STDOUT_NAMES else value


def report_options(func: Callable) -> Callable:
    func = click.option("-o", "--output", metavar="PATH", default=None, callback=_stdout_alias,
                        help="Write the report to this file (atomically, never onto an input) instead of "
                             "stdout; - is stdout.")(func)
    func = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Report format: table for people; json, junit, markdown or github (annotations) "
                             "for CI. When not given and $GITHUB_STEP_SUMMARY is set, the markdown summary is "
                             "also appended there.")(func)
    return func


def per_sample_options(func: Callable) -> Callable:
    """--save-predictions: each image's answer, for `nnprobe compare` (docs/compare.md has the format)."""
    return click.option("--save-predictions", "save_predictions", metavar="PATH", default=None,
                        help="Write each image's result here (JSON Lines, gzip if PATH ends in .gz; written "
                             "atomically); the report records its path and sha256 for nnprobe compare.")(func)


def comparison_gate_options(func: Callable) -> Callable:
    """The gates of `nnprobe compare`, also on eval and robust with --baseline (docs/compare.md)."""
    for option in reversed([
        click.option("--max-drop-top1", default=None, metavar="X", **ONCE,
                     help="Gate: exit 1 when top-1 drops more than X below the baseline (0.3pt = 0.3 points; "
                          "0.003 = a fraction). robust: at every eps."),
        click.option("--max-drop-top5", default=None, metavar="X", **ONCE, help="Gate: the same for top-5."),
        click.option("--max-class-drop", default=None, metavar="X", **ONCE,
                     help="Gate: the largest per-class top-1 drop allowed."),
        click.option("--alpha", default=None, metavar="A",
                     help="A drop gate fails only when the drop is also significant: exact McNemar p < A (needs "
                          "per-sample results on both sides)."),
        click.option("--allow-different-data", is_flag=True,
                     help="Compare the aggregates even when the two runs used different images or eps sweeps."),
    ]):
        func = option(func)
    return func


def baseline_options(func: Callable) -> Callable:
    """--baseline FILE and the comparison's gates: eval and robust compare themselves in the same command."""
    func = comparison_gate_options(func)
    return click.option("--baseline", type=click.Path(), default=None, metavar="RESULT.json",
                        help="Compare with this earlier result (--format json; its --save-predictions file is "
                             "found beside it) and report the deltas, flips and McNemar p.")(func)


def comparison_keywords(baseline, max_drop_top1, max_drop_top5, max_class_drop, alpha,
                        allow_different_data) -> dict:
    """The public API's comparison keywords, the thresholds' spelling checked before torch loads."""
    from nnprobe.comparison.options import Options

    gates = dict(max_drop_top1=max_drop_top1, max_drop_top5=max_drop_top5, max_class_drop=max_class_drop,
                 alpha=alpha, allow_different_data=allow_different_data)
    Options.parse(**gates)
    if baseline is None:
        given = [name for name, value in gates.items() if value not in (None, False)]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} compares with a baseline: give --baseline FILE.")
        return {}
    return dict(baseline=baseline, **gates)


def _part(ctx, param, value: str | None):
    from nnprobe.parts import parse_part

    try:
        return parse_part(value)
    except Exception as exc:  # UsageError: click's one-line usage error, before torch loads
        # click says "Invalid value for '--shard': "; the sentence goes on from the value itself
        raise click.BadParameter(str(exc).removeprefix("--shard "), param_hint="'--shard'") from None


def shard_option(func: Callable) -> Callable:
    """--shard K/N: one slice of the data set, for a scheduler's array job; `nnprobe merge` adds them up."""
    return click.option("--shard", "shard", metavar="K/N|auto", default=None, callback=_part,
                        help="Evaluate only the K-th of N disjoint slices (K = 1..N) and write a partial result "
                             "for `nnprobe merge`; `auto` takes K/N from a Slurm array, a Kubernetes indexed Job, "
                             "AWS Batch or Google Cloud Batch (auto/N where only the index is given). "
                             "{shard} in -o and --save-predictions becomes K-of-N.")(func)


def quiet_option(func: Callable) -> Callable:
    """--quiet/-q: no progress on stderr; left in ctx.meta for `working()`, the command never sees it."""
    import functools

    @functools.wraps(func)
    def run(*args, quiet: bool = False, **kwargs):
        click.get_current_context().meta["nnprobe.quiet"] = quiet
        return func(*args, **kwargs)

    return click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (errors, notes and failed gates "
                        "are still said).")(run)


def scale_options(func: Callable) -> Callable:
    """--shard, --nproc N and --quiet for the commands that go over a data set: --nproc starts the local
    workers (nnprobe.launch) and returns their exit code; {shard} in -o and --save-predictions becomes K-of-N.
    The command sees only `shard`."""
    import functools

    @functools.wraps(func)
    def run(*args, nproc: int | None = None, **kwargs):
        if nproc is not None and nproc > 1:
            from nnprobe.cli.preflight import launched

            code = launched(nproc)
            if code is not None:
                return code
        from nnprobe.parts import part_name

        for key in ("output", "save_predictions"):
            if kwargs.get(key):
                kwargs[key] = part_name(kwargs[key], kwargs.get("shard"))
        return func(*args, **kwargs)

    run = click.option("--nproc", type=click.IntRange(1, 1024), default=None, metavar="N",
                       help="Run N local worker processes (torch's elastic launcher, as torchrun does); the exit "
                            "code, errors and report stay nnprobe's, and the counts equal one process's.")(run)
    return shard_option(quiet_option(run))


def checked_device(ctx, param, value: str) -> str:
    """--device's spelling, before torch loads (whether that device exists is known only after)."""
    from nnprobe.device import device_spec

    return device_spec(value)


def device_options(func: Callable) -> Callable:
    func = click.option("--threads", type=COUNT, default=None,
                        help="CPU threads for tensor work (default: the CPUs this process may use, by affinity "
                             "and cgroup quota, that are idle now, less the data-loader workers).")(func)
    func = click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
                        show_default=True, help="Compute precision (autocast for bf16/fp16).")(func)
    func = click.option("--device", default="auto", show_default=True, callback=checked_device,
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")(func)
    return func


def model_options(func: Callable) -> Callable:
    """--model and friends: every source of classifier a user may have."""
    options = [
        click.option("--model", "model", default=None, metavar="SPEC",
                     help="torchvision name (resnet50), timm:NAME, a .pt/.ts/.pt2/.pth/.safetensors file, "
                          "or path/file.py:function / package.module:function. Default: the embedded "
                          "EfficientNet-Lite0."),
        click.option("--weights", default=None, metavar="ENUM|DEFAULT|PATH",
                     help="torchvision weights enum (IMAGENET1K_V2), DEFAULT, or a checkpoint file."),
        click.option("--arch", default=None, metavar="NAME",
                     help="Architecture for a state-dict checkpoint (torchvision name or timm:NAME)."),
        click.option("--trust-pickle", is_flag=True,
                     help="Allow full unpickling of checkpoints. Unpickling runs code: only for files you trust."),
        click.option("--num-classes", "model_num_classes", type=CLASSES, default=None,
                     help="Number of classes for --arch when the checkpoint is not 1000-way."),
        click.option("--resize", type=PIXELS, default=None, help="Resize the short side to this (pixels)."),
        click.option("--crop", type=PIXELS, default=None, help="Centre-crop to this size (pixels)."),
        click.option("--interpolation", type=click.Choice(["bilinear", "bicubic", "nearest"]), default=None),
        click.option("--mean", default=None, metavar="R,G,B", help="Normalisation mean (0..1 scale)."),
        click.option("--std", default=None, metavar="R,G,B", help="Normalisation std (0..1 scale)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_triple(text: str | None, name: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise click.BadParameter(f"expected three comma-separated numbers, got {text!r}", param_hint=name)
    return values  # type: ignore[return-value]


def data_options(verb: str) -> Callable[[Callable], Callable]:
    """DATA / --data and the label-layout options, the same for every command that reads an image set."""

    def decorate(func: Callable) -> Callable:
        options = [
            click.argument("data_arg", metavar="[DATA]", required=False, type=click.Path()),
            click.option("--data", "data_opt", type=click.Path(), default=None,
                         help="Labelled image folder, any ImageNet layout (default: the bundled sample photos)."),
            click.option("--labels", "labels_file", type=click.Path(), default=None,
                         help="Labels for a flat folder: LOC_val_solution.csv, file,label CSV, or the devkit "
                              "ground truth."),
            click.option("--devkit", type=click.Path(), default=None,
                         help="ImageNet devkit folder (meta.mat + ground truth)."),
            click.option("--class-map", type=click.Path(), default=None,
                         help="Folder name -> class index (CSV or JSON)."),
            click.option("--limit", type=COUNT, default=None, help=f"{verb} N images, evenly spaced (deterministic)."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def resolve_data(data_arg: str | None, data_opt: str | None) -> str:
    """The data folder from DATA or --data (not both), else the bundled samples when they are here."""
    from nnprobe.api import bundled_samples  # torch-free module
    from nnprobe.errors import UsageError

    if data_arg and data_opt and data_arg != data_opt:
        raise UsageError("Give the data folder once: as DATA or as --data, not both.")
    data = data_arg or data_opt
    if data:
        if not os.path.isdir(data):
            raise UsageError(f"Data folder {data} does not exist or is not a folder.")
        return data
    if not os.path.isdir(bundled_samples()):
        raise UsageError("No data folder given and the bundled samples are not here (they ship in the source "
                         "tree): pass --data DIR.")
    return bundled_samples()


def data_keywords(labels_file, devkit, class_map, limit) -> dict:
    """The public API's data keywords from `data_options`."""
    return dict(labels_file=labels_file, devkit=devkit, class_map=class_map, limit=limit)


def model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation, mean,
                   std) -> dict:
    """The public API's model keywords from `model_options` (same names as the flags)."""
    return dict(weights=weights, arch=arch, trust_pickle=trust_pickle, num_classes=model_num_classes, resize=resize,
                crop=crop, interpolation=interpolation, mean=parse_triple(mean, "--mean"),
                std=parse_triple(std, "--std"))


def _confidence(ctx, param, value):
    from nnprobe.intervals import check_confidence

    try:
        return check_confidence(value)
    except Exception as exc:  # UsageError: click's one-line usage error, before torch loads
        raise click.BadParameter(str(exc), param_hint="--confidence") from None


def confidence_option(func):
    """--confidence: the level of every interval (eval's counts and calibration, compare's deltas)."""
    return click.option("--confidence", type=float, default=0.95, show_default=True, callback=_confidence,
                        help="Level of every interval: exact Clopper-Pearson on counts, bootstrap on means, "
                             "Newcombe on deltas.")(func)
