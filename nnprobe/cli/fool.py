"""`nnprobe fool`: parse options -> load classifier -> fool the photos -> render -> exit code.

Exit codes: 0 the measurement ran (fooled or not: "not fooled" is a result, not an error); 1 only with
--fail-if-fooled when any written image fools the model; 2 unreadable image, bad --eps, unknown
--target, an output that would overwrite an input; 3 internal error.
"""
from __future__ import annotations

import click
from click.core import ParameterSource

from nnprobe.cli.options import (COUNT, SEED, device_options, model_keywords, model_options, quiet_option,
                                 report_options)
from nnprobe.budget import parse_eps, parse_eps_list
from nnprobe.errors import UsageError
from nnprobe.cli.preflight import existing_files, finish, guard_outputs, model_input_files, working

# The registry's ids, spelled here so that `nnprobe fool --help` does not import torch (a test keeps
# this list equal to the registry).
ATTACKS = ("fgsm", "bim", "pgd", "pgd-l2", "mifgsm", "apgd-ce", "apgd-ce-l2", "apgd-dlr", "apgd-dlr-l2", "apgd-t",
           "apgd-t-l2", "fab", "fab-l2", "fab-t", "fab-t-l2", "square", "square-l2", "autoattack", "autoattack-l2",
           "autoattack-plus", "autoattack-plus-l2", "autoattack-rand", "autoattack-rand-l2")


def attack_options(func):
    """--attack, --eps, --steps, --step-size, --random-start, --seed: shared by fool and robust."""
    options = [
        click.option("--attack", type=click.Choice(ATTACKS), default=None,
                     help="fgsm (one step), bim (I-FGSM), pgd (L∞, random start), pgd-l2, mifgsm (momentum), "
                          "apgd-ce / apgd-dlr / apgd-t (Auto-PGD, cross-entropy / DLR / targeted DLR; -l2 variants), "
                          "fab / fab-t (minimum-norm boundary attack), square / square-l2 (score-based, no gradients), "
                          "autoattack / autoattack-l2 (APGD-CE -> APGD-T -> FAB-T -> Square, worst case per sample; "
                          "-plus and -rand: the reference's other versions, also --autoattack-version)."),
        click.option("--steps", type=COUNT, default=None,
                     help="Iterations of bim/pgd/pgd-l2/mifgsm (default 10); apgd-*: default 100; square: queries "
                          "(default 5000); autoattack: APGD's (default 100)."),
        click.option("--step-size", default=None, metavar="ALPHA",
                     help="Step per iteration, e.g. 0.5/255 (default 2.5·eps/steps; mifgsm eps/steps)."),
        click.option("--random-start/--no-random-start", default=None,
                     help="pgd/pgd-l2 start at a random point in the ball (default on)."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed of the random start: the same seed gives the same images."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("fool")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@model_options
@attack_options
@click.option("--eps", default="2/255", show_default=True, metavar="EPS[,EPS...]",
              help="Budget in pixel units: 2/255, 0.01, or a list 1/255,2/255,4/255 (one item per image and eps; "
                   "FGSM computes one gradient for all).")
@click.option("--min-eps", is_flag=True,
              help="Per photo, search for the smallest budget (1/255 grid) whose 8-bit PNG fools the model: "
                   "doubling then bisection with an iterative attack (default pgd); excludes --eps.")
@click.option("--max-eps", default=None, metavar="EPS",
              help="Cap of the --min-eps search (default 64/255 for L∞, 2048/255 for L2).")
@click.option("--target", default=None, metavar="INDEX|NAME",
              help="Targeted: make the model answer this class (index, name such as 'toaster', or wnid).")
@click.option("--space", type=click.Choice(["image", "model"]), default="image", show_default=True,
              help="image: attack the photo at its own size through the differentiable resize/crop; "
                   "model: attack the cropped model input.")
@click.option("--out", "out_dir", default="nnprobe-fool", show_default=True, metavar="DIR",
              help="Folder for <stem>.adv.png and <stem>.panel.png (never an input's path).")
@click.option("--no-panel", is_flag=True, help="Write only the adversarial PNGs, no side-by-side panels.")
@click.option("--fail-if-fooled", is_flag=True,
              help="Gate: exit 1 when any written image fools the model (for robustness CI).")
@device_options
@quiet_option
@report_options
def command(images, model, weights, arch, trust_pickle, model_num_classes, resize, crop, interpolation, mean, std,
            attack, steps, step_size, random_start, seed, eps, min_eps, max_eps, target, space, out_dir, no_panel,
            fail_if_fooled, device, precision, threads, fmt, output) -> int:
    """Fool a classifier on photos: adversarial PNGs that flip its answer, judged after writing.

    Default: the embedded EfficientNet-Lite0, FGSM at eps 2/255, output into ./nnprobe-fool/.
    Each adversarial PNG is rounded to 8 bits inside the budget, written losslessly, re-read and
    re-classified; the report says whether it still fools (and if rounding undid the attack).

    Exit codes: 0 done (fooled or not), 1 with --fail-if-fooled when an image fools the model,
    2 bad input or option, 3 internal error.
    """
    images = existing_files(images)
    guard_outputs({"-o": output}, files=[*images, *model_input_files(model, weights)])
    attack = attack or ("pgd" if min_eps else "fgsm")
    if min_eps and click.get_current_context().get_parameter_source("eps") != ParameterSource.DEFAULT:
        raise UsageError("--eps and --min-eps exclude each other: the search picks the budgets (cap them with "
                         "--max-eps).")
    eps = None if min_eps else eps
    if eps is not None:
        parse_eps_list(eps, max_value=None)  # the spelling, before torch loads; the norm's limit is checked later
    if max_eps is not None:
        max_eps = parse_eps(max_eps, name="--max-eps", max_value=None)
    alpha = parse_eps(step_size, name="--step-size", max_value=None) if step_size is not None else None

    from nnprobe import api

    with working("fooling", threads, 0) as work:
        result = api.fool(
            images, model, **model_keywords(weights, arch, trust_pickle, model_num_classes, resize, crop,
                                            interpolation, mean, std),
            attack=attack, eps=eps, steps=steps, step_size=alpha, random_start=random_start, target=target,
            seed=seed, space=space, out_dir=out_dir, precision=precision, device=device, panels=not no_panel,
            fail_if_fooled=fail_if_fooled, progress=work.progress, min_eps=min_eps, max_eps=max_eps)
    code = finish(result, fmt, output, passed=result.passed)
    undone = [item for item in result.items if item.rounding_undid]
    if undone:
        click.echo(f"note: rounding to 8 bits undid the attack on {len(undone)} image(s); try a larger --eps or "
                   "more --steps.", err=True)
    return code
