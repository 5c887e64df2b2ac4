"""`nnprobe robust`: parse options -> load classifier and data -> robust accuracy per eps -> render -> exit.

Exit codes: 0 measured (and every --min-robust-top1 gate met), 1 a gate failed, 2 bad option or data,
3 internal error. Runs under torchrun like eval: disjoint shards, counts summed exactly, rank 0 reports.
"""
from __future__ import annotations

import click

from nnprobe.budget import parse_eps, parse_eps_list, parse_gate
from nnprobe.cli.fool import attack_options
from nnprobe.cli.options import (COUNT, data_keywords, data_options, device_options, model_keywords, model_options,
                                 baseline_options, comparison_keywords, per_sample_options, report_options,
                                 resolve_data, scale_options, ONCE)
from nnprobe.cli.compare import baseline_files
from nnprobe.cli.preflight import finish, guard_data_outputs, model_input_files, working
from nnprobe.report.escaping import one_line


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
@click.option("--corruptions", default=None, metavar="all|FAMILY|NAME[,NAME...]",
              help="ImageNet-C common corruptions instead of an attack: all, noise, blur, weather, digital or "
                   "names (docs/corruptions.md).")
@click.option("--severity", default="1-5", show_default=True, metavar="1-5|S[,S...]",
              help="Corruption severities (with --corruptions).")
@click.option("--jpeg-roundtrip", is_flag=True, default=False,
              help="With --corruptions: save each corrupted image as JPEG at quality 85 and decode it, as the "
                   "published ImageNet-C files were made, so numbers compare with theirs.")
@click.option("--min-corruption-top1", default=None, metavar="F", **ONCE,
              help="Gate: exit 1 when the mean corruption top-1 is below F (with --corruptions).")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True,
              help="Stop attacking a sample once fooled (same numbers, less work).")
@click.option("--autoattack-version", type=click.Choice(("standard", "plus", "rand")), default=None,
              help="With --attack autoattack[-l2]: the reference's version (standard: APGD-CE, APGD-T, FAB-T, "
                   "Square; plus: 5 restarts, APGD-DLR, FAB, Square, APGD-T, FAB-T; rand: APGD-CE and APGD-DLR "
                   "with EoT over 20 draws).")
@click.option("--adaptive/--no-adaptive", default=False, show_default=True,
              help="Run the follow-ups the sanity checks name on each budget's survivors: Square (5000 queries), "
                   "APGD-CE with EoT over 20 draws on log-probabilities, and a transfer attack from --surrogate; "
                   "robust accuracy is the worst case over all attacks.")
@click.option("--surrogate", default=None, metavar="MODEL",
              help="With --adaptive: a model spec to craft transfer attacks on (judged on --model), e.g. the "
                   "undefended network behind a non-differentiable defense.")
@click.option("--batch-size", type=COUNT, default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loader worker processes (default: available CPUs - 1, max 8).")
@per_sample_options
@baseline_options
@scale_options
@device_options
@report_options
def command(data_arg, data_opt, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation,
            mean, std, labels_file, devkit, class_map, limit, attack, steps, step_size, random_start, seed, eps,
            gates, plot, corruptions, severity, jpeg_roundtrip, min_corruption_top1, early_stop, autoattack_version,
            adaptive, surrogate,
            batch_size, workers,
            save_predictions, baseline, max_drop_top1, max_drop_top5, max_class_drop, alpha, allow_different_data,
            shard, device, precision, threads, fmt, output) -> int:
    """Robust top-1/top-5 of a classifier over a labelled data set as the perturbation budget grows.

    The attack (default PGD, L∞, 10 steps, random start) moves each image away from its true label;
    a sample counts as fooled as soon as any iterate fools it.
    """
    import dataclasses

    data = resolve_data(data_arg, data_opt)
    guard_data_outputs({"-o": output, "--plot": plot, "--save-predictions": save_predictions}, data=data,
                       model=model, weights=weights, labels_file=labels_file, devkit=devkit, class_map=class_map,
                       inputs=baseline_files(baseline) + (model_input_files(surrogate) if surrogate else []))
    compared = comparison_keywords(baseline, max_drop_top1, max_drop_top5, max_class_drop, alpha,
                                   allow_different_data)
    if corruptions is not None or min_corruption_top1 is not None or jpeg_roundtrip:
        return _corruption_command(data, model, weights, arch, trust_pickle, model_num_classes, resize, crop,
                                   interpolation, mean, std, labels_file, devkit, class_map, limit, seed, plot,
                                   corruptions, severity, (min_corruption_top1, jpeg_roundtrip), batch_size, workers,
                                   shard, device,
                                   precision, threads, fmt, output, attack_given=attack is not None or
                                   bool(gates) or save_predictions is not None or bool(baseline) or adaptive
                                   or surrogate is not None)
    attack = autoattack_id(attack or "pgd", autoattack_version)
    parse_eps_list(eps, max_value=None)  # the spelling, before torch loads; the norm's limit is checked later
    step = parse_eps(step_size, name="--step-size", max_value=None) if step_size is not None else None
    thresholds = dict(parse_gate(g) for g in gates)

    from nnprobe import api

    with working("attacking", threads, workers) as work:
        result = api.robust(
            model, data, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                          interpolation, mean, std),
            **data_keywords(labels_file, devkit, class_map, limit), attack=attack, eps=eps,
            steps=steps, step_size=step, random_start=random_start, seed=seed, early_stop=early_stop,
            batch_size=batch_size, workers=work.workers, precision=precision, device=device,
            min_robust_top1=thresholds, save_predictions=save_predictions, shard=shard,
            progress=work.progress, adaptive=adaptive, surrogate=surrogate, **compared)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    if plot:
        from nnprobe.report.plots import write_accuracy_plot

        write_accuracy_plot(result, plot)
        result = dataclasses.replace(result, plot=plot)
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.data.get("notes", []):
        click.echo(one_line(f"note: {note}"), err=True)
    return code


def autoattack_id(attack: str, version: str | None) -> str:
    """`--attack autoattack[-l2] --autoattack-version V`: the registered id of that version."""
    from nnprobe.errors import UsageError

    if version is None or version == "standard" and attack in ("autoattack", "autoattack-l2"):
        return attack
    if attack not in ("autoattack", "autoattack-l2"):
        raise UsageError(f"--autoattack-version needs --attack autoattack or autoattack-l2, not {attack}.")
    return attack.replace("autoattack", f"autoattack-{version}")


def _corruption_command(data, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation,
                        mean, std, labels_file, devkit, class_map, limit, seed, plot, corruptions, severity,
                        gate_and_jpeg, batch_size, workers, shard, device, precision, threads, fmt, output, *,
                        attack_given: bool) -> int:
    """`robust --corruptions`: the ImageNet-C sweep (nnprobe.corruptions.sweep), reported and gated."""
    import dataclasses

    from nnprobe.cli.eval import fraction
    from nnprobe.corruptions import parse_corruptions, parse_severities
    from nnprobe.errors import UsageError

    min_corruption_top1, jpeg_roundtrip = gate_and_jpeg
    eps_given = click.get_current_context().get_parameter_source("eps") != click.core.ParameterSource.DEFAULT
    if corruptions is None:
        raise UsageError(("--jpeg-roundtrip re-encodes corrupted images" if jpeg_roundtrip else
                          "--min-corruption-top1 gates a corruption sweep") + ": give --corruptions too.")
    if attack_given or eps_given:
        raise UsageError("--corruptions runs the corruption sweep, not an attack: drop --attack, --eps, "
                         "--min-robust-top1, --save-predictions and --baseline, or run them separately.")
    parse_corruptions(corruptions), parse_severities(severity)  # the spelling, before torch loads
    threshold = fraction(min_corruption_top1, "--min-corruption-top1")

    from nnprobe import api

    with working("corrupting", threads, workers) as work:
        result = api.robust(
            model, data, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                          interpolation, mean, std),
            **data_keywords(labels_file, devkit, class_map, limit), corruptions=corruptions, severity=severity,
            seed=seed, batch_size=batch_size, workers=work.workers, precision=precision, device=device,
            min_corruption_top1=threshold, shard=shard, progress=work.progress, jpeg_roundtrip=jpeg_roundtrip)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    if plot:
        from nnprobe.report.corruption_plot import write_corruption_plot

        write_corruption_plot(result, plot)
        result = dataclasses.replace(result, plot=plot)
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.data.get("notes", []):
        click.echo(one_line(f"note: {note}"), err=True)
    return code
