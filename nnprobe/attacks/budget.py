"""Budgets checked for an attack's norm. The text parsing lives in the torch-free `nnprobe.budget` (the CLI
uses it before torch loads); its names stay importable here."""
from __future__ import annotations

from nnprobe.budget import parse_eps, parse_eps_list, parse_gate, same_eps  # noqa: F401
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
        if not e >= 0 or (limit is not None and e > limit):
            raise UsageError(f"--eps {e:g} is outside [0, {limit if limit is not None else 'inf'}] for {attack}.")
    return values
