"""`nnprobe compare BASE CAND`: build options -> guard inputs and outputs -> api.compare_with -> report -> exit.

Exit 0 when every gate passes, 1 when one fails, 2 for bad input (different data, a per-sample file that
does not match its recorded sha256, two results of different kinds). Imports no torch.
"""
from __future__ import annotations

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb, notes
from nnprobe.options.verbs import COMPARE


@click.command("compare", short_help="Compare a candidate result with a baseline: deltas, flips, McNemar, gates.")
@command_options(COMPARE)
def command(**options) -> int:
    """Compare CANDIDATE with BASELINE: two results of one kind written with --format json by eval, robust
    or diagnose, or two training runs (run folders or log files): then it is exactly `nnprobe diagnose
    CANDIDATE --baseline BASELINE` (the same report, findings new and gone, values at the same epoch or step, and
    exit code).

    With the per-sample files of both runs (--save-predictions) the comparison is image by image: the
    images that flipped, the classes that lost most, and an exact McNemar test of "the candidate is worse".

    Exit codes: 0 every gate passed, 1 a gate failed, 2 bad input or option.
    """
    options = guard_verb("compare", options)

    from nnprobe import api

    result = api.compare_with(options)
    if hasattr(result, "runs"):  # a Diagnosis: two runs are `diagnose CANDIDATE --baseline BASELINE`, said as it
        from nnprobe.cli.diagnose import counted, gated

        counted(result, options["report"])
        return gated(result, options["report"])
    code = finish(result, options["report"], passed=result.passed)
    notes(result.notes)
    return code
