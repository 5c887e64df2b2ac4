"""`nnprobe robust`: build options -> guard inputs and outputs -> api.robust_with -> report -> exit code.

Exit codes: 0 measured (and every --min-robust-top1 gate met), 1 a gate failed, 2 bad option or data,
3 internal error. Runs under torchrun like eval: disjoint shards, counts summed exactly, rank 0 reports.
With --corruptions it is the ImageNet-C sweep (the `corruptions` verb of the Python API).
"""
from __future__ import annotations

import dataclasses

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb, launched, notes, working
from nnprobe.options.verbs import ROBUST


@click.command("robust")
@command_options(ROBUST, verb="Attack")
def command(**options) -> int:
    """Robust top-1/top-5 of a classifier over a labelled data set as the perturbation budget grows.

    The attack (default PGD, L∞, 10 steps, random start) moves each image away from its true label;
    a sample counts as fooled as soon as any iterate fools it.
    """
    code = launched(options, "robust")
    if code is not None:
        return code
    options = guard_verb("robust", options)
    sweep = options["corruption"].corruptions is not None

    from nnprobe import api

    with working("corrupting" if sweep else "attacking", options) as (work, options):
        result = api.robust_with(options, progress=work.progress)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    plot = options["plot"].plot
    if plot:
        if sweep:
            from nnprobe.report.corruption_plot import write_corruption_plot as write_plot
        else:
            from nnprobe.report.plots import write_accuracy_plot as write_plot
        write_plot(result, plot)
        result = dataclasses.replace(result, plot=plot)
    code = finish(result, options["report"], passed=result.passed)
    notes(result.data.get("notes", []))
    return code
