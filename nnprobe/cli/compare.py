"""`nnprobe compare BASE CAND`: parse options -> check outputs -> one api call -> report -> exit code.

Exit 0 when every gate passes, 1 when one fails, 2 for bad input (different data, a per-sample file that
does not match its recorded sha256, two results of different kinds). Imports no torch.
"""
from __future__ import annotations

import os

import click

from nnprobe.cli.options import comparison_gate_options, confidence_option, report_options
from nnprobe.cli.preflight import existing_files, finish, guard_outputs
from nnprobe.report.escaping import one_line


def _per_sample_file(result_path: str) -> str | None:
    """The per-sample file a result JSON records, found as compare finds it, for the output guard; None when
    there is none or it cannot be found (compare then says why)."""
    from nnprobe.comparison.loading import load_side, per_sample_path
    from nnprobe.errors import NnprobeError

    try:
        return per_sample_path(load_side(result_path, "result"))
    except NnprobeError:
        return None


def input_files(*paths: str) -> list[str]:
    """Every file the comparison reads: the two results and their per-sample files, or a run's logs."""
    from nnprobe.diagnosis import log_files

    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files += log_files(path)
        else:
            files += [path, *filter(None, [_per_sample_file(path)])]
    return files


def baseline_files(baseline: str | None) -> list[str]:
    """`--baseline FILE` of eval and robust: the result and its per-sample file (inputs: never overwritten)."""
    if baseline is None:
        return []
    if not os.path.isdir(baseline):  # a FIFO, a device: refused before any work (results and logs alike)
        from nnprobe.io import open_input

        open_input(existing_files([baseline], "Baseline result")[0], "the baseline").close()
    return input_files(*existing_files([baseline], "Baseline result"))


@click.command("compare", short_help="Compare a candidate result with a baseline: deltas, flips, McNemar, gates.")
@click.argument("baseline", type=click.Path(path_type=str))
@click.argument("candidate", type=click.Path(path_type=str))
@comparison_gate_options
@confidence_option
@report_options
def command(baseline: str, candidate: str, max_drop_top1: str | None, max_drop_top5: str | None,
            max_class_drop: str | None, alpha: str | None, allow_different_data: bool, confidence: float, fmt: str,
            output: str | None) -> int:
    """Compare CANDIDATE with BASELINE: two results of one kind written with --format json by eval, robust
    or diagnose (or two training-run folders, diagnosed first).

    With the per-sample files of both runs (--save-predictions) the comparison is image by image: the
    images that flipped, the classes that lost most, and an exact McNemar test of "the candidate is worse".

    Exit codes: 0 every gate passed, 1 a gate failed, 2 bad input or option.
    """
    from nnprobe.comparison.options import Options

    options = dict(max_drop_top1=max_drop_top1, max_drop_top5=max_drop_top5, max_class_drop=max_class_drop,
                   alpha=alpha, allow_different_data=allow_different_data)
    Options.parse(**options)  # a malformed threshold is exit 2 before anything is read
    guard_outputs({"-o": output}, files=input_files(baseline, candidate))

    from nnprobe import api

    result = api.compare(baseline, candidate, confidence=confidence, **options)
    code = finish(result, fmt, output, passed=result.passed)
    for note in result.notes:
        click.echo(one_line(f"note: {note}"), err=True)
    return code
