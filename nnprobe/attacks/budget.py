"""Budgets checked for an attack's norm. The text parsing lives in the torch-free `nnprobe.options.budget`
(the CLI uses it before torch loads); its names stay importable here."""
from __future__ import annotations

import math

from nnprobe.options.budget import MAX_BUDGET, parse_eps, parse_eps_list, parse_gate, same_eps  # noqa: F401
from nnprobe.errors import UsageError
from nnprobe.results import format_eps  # noqa: F401


def budgets_for(eps, attack: str) -> tuple[float, ...]:
    """Budgets from text (`"0,1/255"`), a number or a sequence, checked for the attack's norm
    (L∞ budgets are pixel fractions in [0, 1]; L2 budgets may exceed 1)."""
    from nnprobe.attacks.base import get_attack

    limit = get_attack(attack).ball.max_eps
    if isinstance(eps, str):
        return parse_eps_list(eps, max_value=limit)
    values = tuple(float(e) for e in ([eps] if isinstance(eps, (int, float)) else eps))
    if not values:
        raise UsageError("Give at least one --eps.")
    for e in values:
        if not e >= 0 or not math.isfinite(e) or e > (MAX_BUDGET if limit is None else limit):
            above = MAX_BUDGET if limit is None else limit
            raise UsageError(f"--eps {e:g} is not a budget from 0 to {above:g} (above {above:g} means nothing for "
                             f"{attack}); pixels are in [0, 1], so write a budget such as 2/255.")
    return values
