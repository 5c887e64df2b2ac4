"""Whether the run's metric names were understood: a loss or accuracy logged under a misspelt name
(`val_los`, `val_acuracy`) plays no role, so the checks that need that role are skipped and the run would
pass on less than it seems. The name is said, with the spelling it was likely meant to have."""
from __future__ import annotations

import dataclasses

from nnprobe.diagnosis.checks.registry import CHECKS, Flag, RunContext, register, run_checks

ID = "metric-unrecognised"
WORDS = {"lightning-csv": "column", "keras-csv": "column", "tensorboard": "tag"}  # how a format names a series


def skipped_for_want_of(ctx: RunContext, role: str, name: str) -> list[str]:
    """The checks skipped on this run that would run with `name` playing `role`: each check run both ways."""
    from nnprobe.diagnosis.roles import map_roles

    played = map_roles({name: ctx.series[name]}, {role: name})[0]  # scaled as a role is (percent accuracy)
    if role not in played:
        return []
    ids = [check_id for check_id in CHECKS if check_id != ID]
    placed = dataclasses.replace(ctx, roles={**ctx.roles, **played}, unplaced={})
    return [before.id for before, after in zip(run_checks(ctx, ids), run_checks(placed, ids))
            if before.status == "skipped" and after.status != "skipped"]


@register(ID, title="Metric names recognised")
def metric_unrecognised(ctx: RunContext):
    """Per role no series plays while a logged name is one slip from a name that would play it
    (roles.unplaced): the series, the likely spelling, and the checks skipped for want of it. A warning when
    checks were skipped (not an error: nothing in the run is known to be wrong, but `--fail-on warning` does
    not pass it unjudged), an info when none was."""
    for role, (name, spelling) in ctx.unplaced.items():
        skipped = skipped_for_want_of(ctx, role, name)
        word = WORDS.get(ctx.series[name].format, "metric")
        because = f"{len(skipped)} check(s) were skipped because of it: {', '.join(skipped)}" if skipped else \
            "no check was skipped because of it"
        yield Flag(
            "warning" if skipped else "info",
            f"{word} '{name}' was not recognised; did you mean '{spelling}'? No series plays {role}, and "
            f"{because}.",
            f"Rename the {word} to '{spelling}' in the training script, or map it: --metric {role}={name}.",
            {"series": name, "meant": spelling, "role": role, "skipped_checks": skipped},
        )
