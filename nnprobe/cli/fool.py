"""`nnprobe fool`: build options -> guard inputs and outputs -> api.fool_with -> report -> exit code.

Exit codes: 0 the measurement ran (fooled or not: "not fooled" is a result, not an error); 1 only with
--fail-if-fooled when any written image fools the model; 2 unreadable image, bad --eps, unknown
--target, an output that would overwrite an input; 3 internal error.
"""
from __future__ import annotations

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb, working
from nnprobe.options.attack import ATTACKS  # noqa: F401  (the registry's ids, spelled torch-free)
from nnprobe.options.verbs import FOOL


@click.command("fool")
@command_options(FOOL, verb="Fool")
def command(**options) -> int:
    """Fool a classifier on photos: adversarial PNGs that flip its answer, judged after writing.

    Default: the embedded EfficientNet-Lite0, FGSM at eps 2/255, output into ./nnprobe-fool/.
    Each adversarial PNG is rounded to 8 bits inside the budget, written losslessly, re-read and
    re-classified; the report says whether it still fools (and if rounding undid the attack).

    Exit codes: 0 done (fooled or not), 1 with --fail-if-fooled when an image fools the model,
    2 bad input or option, 3 internal error.
    """
    options = guard_verb("fool", options)

    from nnprobe import api

    with working("fooling", options, workers=0) as (work, options):
        result = api.fool_with(options, progress=work.progress)
    code = finish(result, options["report"], passed=result.passed)
    undone = [item for item in result.items if item.rounding_undid]
    if undone:
        click.echo(f"note: rounding to 8 bits undid the attack on {len(undone)} image(s); try a larger --eps or "
                   "more --steps.", err=True)
    return code
