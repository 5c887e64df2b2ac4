"""`nnprobe eval`: parse options -> load classifier and images -> evaluate -> render -> exit code."""
from __future__ import annotations

import os

import click

from nnprobe.cli.options import (COUNT, baseline_options, comparison_keywords, confidence_option, data_keywords,
                                 data_options, device_options, model_keywords, model_options, per_sample_options,
                                 ONCE, report_options, resolve_data, scale_options)
from nnprobe.cli.compare import baseline_files
from nnprobe.cli.preflight import existing_files, finish, guard_data_outputs, working
from nnprobe.report.escaping import one_line


def fraction(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a number", param_hint=name) from None
    if not 0 <= value <= 1:
        raise click.BadParameter(f"{text!r} is not a fraction in [0, 1] (or a percentage like 75%)",
                                 param_hint=name)
    return value


def plot_paths(folder: str | None) -> dict[str, str]:
    """The files `--plot DIR` writes (DIR/reliability.png, DIR/per_class.png), by the name an output guard
    reports them under."""
    if folder is None:
        return {}
    return {f"--plot {name}": os.path.join(folder, name) for name in ("reliability.png", "per_class.png")}


def guarded_plots(folder: str | None) -> dict[str, str]:
    """What the output guard checks for `--plot DIR`: its two files, or DIR itself while it does not exist
    yet (its parent must be writable, and it may not lie inside the data set; it is made when written)."""
    if folder is None or os.path.isdir(folder):
        return plot_paths(folder)
    return {"--plot": folder}


def eval_gate_options(func):
    """eval's gates, also offered by `nnprobe merge` (a gate judges the whole data set)."""
    for option in reversed([
        click.option("--min-top1", default=None, metavar="F", **ONCE, help="Gate: exit 1 when top-1 is below F (0.75 or 75%)."),
        click.option("--min-top5", default=None, metavar="F", **ONCE, help="Gate: exit 1 when top-5 is below F."),
        click.option("--max-ece", default=None, metavar="F", **ONCE,
                     help="Gate: exit 1 when the expected calibration error (15 bins) is above F."),
        click.option("--min-class-top1", default=None, metavar="F", **ONCE,
                     help="Gate: exit 1 when the worst class's top-1 is below F."),
    ]):
        func = option(func)
    return func


def eval_gates(min_top1, min_top5, max_ece, min_class_top1) -> dict:
    """The gate flags as the public API's keywords, each checked to be a fraction (before torch loads)."""
    return dict(min_top1=fraction(min_top1, "--min-top1"), min_top5=fraction(min_top5, "--min-top5"),
                max_ece=fraction(max_ece, "--max-ece"), min_class_top1=fraction(min_class_top1, "--min-class-top1"))


def _resamples(ctx, param, value):
    from nnprobe.intervals import check_resamples

    try:
        return check_resamples(value)
    except Exception as exc:
        raise click.BadParameter(str(exc), param_hint="--bootstrap-resamples") from None


def interval_options(func):
    """eval's interval and parity flags."""
    for option in reversed([
        click.option("--bootstrap-resamples", type=int, default=1000, show_default=True, callback=_resamples,
                     help="Bootstrap resamples for the calibration intervals (seeded by --seed)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples."),
        click.option("--reference-model", default=None, metavar="SPEC",
                     help="Run this model too on the same batches and report, image by image, the top-1 answers "
                          "and top-5 sets that changed and the largest logit difference (an export against its "
                          "source: .onnx, .pt2, TorchScript, bf16). An .onnx model without preprocessing flags "
                          "takes the reference's."),
        click.option("--max-flips", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Gate with --reference-model: exit 1 when more than N top-1 answers differ (default 0)."),
        click.option("--max-logit-diff", type=click.FloatRange(min=0), default=None, metavar="F",
                     help="Gate with --reference-model: exit 1 when a logit differs by more than F."),
    ]):
        func = option(func)
    return confidence_option(func)


def detectable_drop_note(baseline: str | None, alpha: str | None) -> None:
    """Before a long run with --baseline: the smallest top-1 drop this many images can show (stderr)."""
    if baseline is None or os.path.isdir(baseline):
        return
    from nnprobe.comparison.thresholds import parse_alpha
    from nnprobe.intervals import minimal_detectable_drop, smallest_significant_flips
    from nnprobe.io import read_json

    level = parse_alpha(alpha) or 0.05
    total = read_json(baseline, "the baseline").get("total")
    if isinstance(total, int) and total > 0:
        drop = minimal_detectable_drop(total, level)
        said = (f"{100 * drop:.3g} pt ({smallest_significant_flips(level)} of {total} images going wrong, none right)"
                if drop == drop else "none: too few images for any drop to be significant")
        click.echo(f"note: the baseline has {total} images; the smallest top-1 drop an exact McNemar test at "
                   f"alpha {level:g} can detect is {said}.", err=True)


@click.command("eval")
@data_options("Evaluate")
@model_options
@click.option("--restrict-to-present", is_flag=True,
              help="Argmax over the classes present in the data only (ImageNet-A/R style subsets).")
@click.option("--strict", is_flag=True, help="Fail on the first undecodable or non-image file instead of skipping.")
@click.option("--batch-size", type=COUNT, default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loader worker processes (default: available CPUs - 1, max 8).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model first.")
@click.option("--decode", type=click.Choice(["workers", "device"]), default="workers", show_default=True,
              help="Where JPEGs are decoded and resized: CPU workers (PIL, exact torchvision match) or the "
                   "device (nvJPEG on CUDA; close to PIL, feeds a fast GPU).")
@click.option("--real-labels", type=click.Path(), default=None, metavar="REAL.JSON",
              help="ImageNet-ReaL labels (the published real.json) for ILSVRC2012_val_* images: adds ReaL top-1.")
@click.option("--plot", default=None, metavar="DIR",
              help="Write DIR/reliability.png (the reliability diagram) and DIR/per_class.png (matplotlib).")
@click.option("--no-setup-checks", "no_setup_checks", is_flag=True,
              help="Do not test the usual setup mistakes (label order, normalisation, 0-255, BGR, training "
                   "mode) when top-1 is near chance or the answers concentrate.")
@eval_gate_options
@interval_options
@per_sample_options
@baseline_options
@scale_options
@device_options
@report_options
def command(data_arg, data_opt, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation,
            mean, std, labels_file, devkit, class_map, limit, restrict_to_present, strict, batch_size, workers,
            compile_, decode, real_labels, plot, no_setup_checks, min_top1, min_top5, max_ece, min_class_top1,
            confidence, bootstrap_resamples, seed, reference_model, max_flips, max_logit_diff, save_predictions,
            baseline, max_drop_top1, max_drop_top5, max_class_drop, alpha, allow_different_data,
            shard, device, precision, threads, fmt, output) -> int:
    """Top-1/top-5 accuracy of a classifier on a labelled image set, exactly (integer counts).

    Runs under torchrun too: `torchrun --nproc_per_node N -m nnprobe eval ...`; each rank takes a
    disjoint shard and rank 0 writes the report.
    """
    data = resolve_data(data_arg, data_opt)
    gates = eval_gates(min_top1, min_top5, max_ece, min_class_top1)
    guard_data_outputs({"-o": output, "--save-predictions": save_predictions, **guarded_plots(plot)}, data=data,
                       model=model, weights=weights, labels_file=labels_file, devkit=devkit, class_map=class_map,
                       inputs=[*existing_files([real_labels] if real_labels else [], "ReaL labels file"),
                               *baseline_files(baseline)])
    compared = comparison_keywords(baseline, max_drop_top1, max_drop_top5, max_class_drop, alpha,
                                   allow_different_data)
    if (max_flips is not None or max_logit_diff is not None) and reference_model is None:
        raise click.UsageError("--max-flips and --max-logit-diff judge the model against --reference-model: give it.")
    parity = dict(reference_model=reference_model, max_flips=max_flips, max_logit_diff=max_logit_diff) \
        if reference_model is not None else {}
    detectable_drop_note(baseline, alpha)

    from nnprobe import api

    with working("evaluating", threads, workers) as work:
        result = api.evaluate(
            model, data, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                          interpolation, mean, std),
            **data_keywords(labels_file, devkit, class_map, limit), device=device,
            precision=precision, batch_size=batch_size, workers=work.workers, strict=strict,
            restrict_to_present=restrict_to_present, compile=compile_, decode=decode, real_labels=real_labels,
            save_predictions=save_predictions, shard=shard, setup_checks=not no_setup_checks,
            progress=work.progress, confidence=confidence, bootstrap_resamples=bootstrap_resamples, seed=seed,
            **parity, **gates, **compared)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    if plot:
        from nnprobe.report.eval_plots import write_eval_plots

        write_eval_plots(result, *plot_paths(plot).values())
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.data["notes"]:
        click.echo(one_line(f"note: {note}"), err=True)
    if result.skipped:
        click.echo(f"note: {len(result.skipped)} file(s) skipped; the report lists each with its reason.", err=True)
    return code
