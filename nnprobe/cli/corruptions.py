"""`nnprobe corruptions`: accuracy under the ImageNet-C common corruptions (the same as `nnprobe robust
--corruptions`): build options -> guard -> api.corruptions_with -> report -> exit code."""
from __future__ import annotations

import dataclasses

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb, launched, notes, working
from nnprobe.options.verbs import CORRUPTIONS_CLI


@click.command("corruptions", short_help="Top-1/top-5 under the ImageNet-C common corruptions, per severity.")
@command_options(CORRUPTIONS_CLI, verb="Corrupt")
def command(**options) -> int:
    """Top-1/top-5 of a classifier on a labelled data set under each common corruption (noise, blur,
    weather, digital) at each severity, plus clean, in one pass (docs/corruptions.md)."""
    code = launched(options, "corruptions")
    if code is not None:
        return code
    options = guard_verb("corruptions", options)

    from nnprobe import api

    with working("corrupting", options) as (work, options):
        result = api.corruptions_with(options, progress=work.progress)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    if options["plot"].plot:
        from nnprobe.report.corruption_plot import write_corruption_plot

        write_corruption_plot(result, options["plot"].plot)
        result = dataclasses.replace(result, plot=options["plot"].plot)
    code = finish(result, options["report"], passed=result.passed)
    notes(result.data.get("notes", []))
    return code
