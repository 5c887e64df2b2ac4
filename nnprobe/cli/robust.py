"""`nnprobe robust`: parse options -> load classifier and data -> robust accuracy per eps -> render -> exit.

Exit codes: 0 measured (and every --min-robust-top1 gate met), 1 a gate failed, 2 bad option or data,
3 internal error. Runs under torchrun like eval: disjoint shards, counts summed exactly, rank 0 reports.
"""
from __future__ import annotations

import click

from nnprobe.budget import parse_eps, parse_eps_list, parse_gate
from nnprobe.cli.fool import attack_options
from nnprobe.cli.options import (COUNT, data_keywords, data_options, device_options, model_keywords, model_options,
                                 report_options, resolve_data)
from nnprobe.cli.preflight import finish, guard_data_outputs, working


@click.command("robust")
@data_options("Attack")
@model_options
@attack_options
@click.option("--eps", default="0,1/255,2/255,4/255", show_default=True, metavar="EPS[,EPS...]",
              help="Budgets in pixel units (k/255 or decimals); 0 gives the clean accuracy.")
@click.option("--min-robust-top1", "gates", multiple=True, metavar="EPS=F",
              help="Gate: exit 1 when robust top-1 at EPS is below F, e.g. 2/255=0.30 (repeatable).")
@click.option("--plot", default=None, metavar="PATH",
              help="Write a PNG of accuracy vs eps here (never onto an input).")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True,
              help="Stop attacking a sample once fooled (same numbers, less work).")
@click.option("--batch-size", type=COUNT, default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loader worker processes (default: available CPUs - 1, max 8).")
@device_options
@report_options
def command(data_arg, data_opt, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation,
            mean, std, labels_file, devkit, class_map, limit, attack, steps, step_size, random_start, seed, eps,
            gates, plot, early_stop, batch_size, workers, device, precision, threads, fmt, output) -> int:
    """Robust top-1/top-5 of a classifier over a labelled data set as the perturbation budget grows.

    The attack (default PGD, L∞, 10 steps, random start) moves each image away from its true label;
    a sample counts as fooled as soon as any iterate fools it.
    """
    import dataclasses

    data = resolve_data(data_arg, data_opt)
    guard_data_outputs({"-o": output, "--plot": plot}, data=data, model=model, weights=weights,
                       labels_file=labels_file, devkit=devkit, class_map=class_map)
    attack = attack or "pgd"
    parse_eps_list(eps, max_value=None)  # the spelling, before torch loads; the norm's limit is checked later
    alpha = parse_eps(step_size, name="--step-size", max_value=None) if step_size is not None else None
    thresholds = dict(parse_gate(g) for g in gates)

    from nnprobe import api

    with working("attacking", threads, workers) as work:
        result = api.robust(
            model, data, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                          interpolation, mean, std),
            **data_keywords(labels_file, devkit, class_map, limit), attack=attack, eps=eps,
            steps=steps, step_size=alpha, random_start=random_start, seed=seed, early_stop=early_stop,
            batch_size=batch_size, workers=work.workers, precision=precision, device=device,
            min_robust_top1=thresholds, progress=work.progress)
    if not work.is_main:
        return 0 if result.passed else 1
    if plot:
        from nnprobe.report.plots import write_accuracy_plot

        write_accuracy_plot(result, plot)
        result = dataclasses.replace(result, plot=plot)
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.data.get("notes", []):
        click.echo(f"note: {note}", err=True)
    return code
