"""`nnprobe eval`: parse options -> load classifier and images -> evaluate -> render -> exit code."""
from __future__ import annotations


import click

from nnprobe.cli.options import (COUNT, data_keywords, data_options, device_options, model_keywords, model_options,
                                 report_options, resolve_data)
from nnprobe.cli.preflight import finish, guard_data_outputs, working


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
@click.option("--min-top1", default=None, metavar="F", help="Gate: exit 1 when top-1 is below F (0.75 or 75%).")
@click.option("--min-top5", default=None, metavar="F", help="Gate: exit 1 when top-5 is below F.")
@device_options
@report_options
def command(data_arg, data_opt, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation,
            mean, std, labels_file, devkit, class_map, limit, restrict_to_present, strict, batch_size, workers,
            compile_, decode, min_top1, min_top5, device, precision, threads, fmt, output) -> int:
    """Top-1/top-5 accuracy of a classifier on a labelled image set, exactly (integer counts).

    Runs under torchrun too: `torchrun --nproc_per_node N -m nnprobe eval ...`; each rank takes a
    disjoint shard and rank 0 writes the report.
    """
    data = resolve_data(data_arg, data_opt)
    gates = (fraction(min_top1, "--min-top1"), fraction(min_top5, "--min-top5"))
    guard_data_outputs({"-o": output}, data=data, model=model, weights=weights, labels_file=labels_file,
                       devkit=devkit, class_map=class_map)

    from nnprobe import api

    with working("evaluating", threads, workers) as work:
        result = api.evaluate(
            model, data, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                          interpolation, mean, std),
            **data_keywords(labels_file, devkit, class_map, limit), device=device,
            precision=precision, batch_size=batch_size, workers=work.workers, strict=strict,
            restrict_to_present=restrict_to_present, compile=compile_, decode=decode, min_top1=gates[0],
            min_top5=gates[1], progress=work.progress)
    if not work.is_main:
        return 0 if result.passed else 1
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.data["notes"]:
        click.echo(f"note: {note}", err=True)
    if result.skipped:
        click.echo(f"note: {len(result.skipped)} file(s) skipped; the report lists each with its reason.", err=True)
    return code
