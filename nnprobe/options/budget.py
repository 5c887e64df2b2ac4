"""Perturbation budgets as people write them: `2/255`, `0.0078`, `0,1/255,2/255`, and gates `2/255=0.30`.

Torch-free, outside the attacks package, so the CLI checks `--eps` and friends before torch loads (a typo
costs milliseconds, not the seconds of importing torch).

Epsilons are in [0, 1] pixel units (normalisation lives inside the classifier), so `k/255` means k
grey levels of an 8-bit image. Bad text is a `UsageError` with one sentence, never a traceback.
"""
from __future__ import annotations

import math
import re

from nnprobe.errors import UsageError

# No budget of any norm is larger: the L2 distance between two images of the largest crop (--crop 16384, three
# channels in [0, 1]) is sqrt(3)*16384 = 28378. A budget above it means nothing and would overflow float32 work.
MAX_BUDGET = 30000.0

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_EPS_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_NUMBER}))?\s*$")


def parse_eps(text: str, *, name: str = "--eps", max_value: float | None = 1.0) -> float:
    """One budget: `k/255`, `k/N` or a decimal, non-negative and at most `max_value` (L∞ ≤ 1)."""
    match = _EPS_RE.match(str(text))
    if not match and _EPS_RE.match(str(text).strip().lstrip("-")):
        raise UsageError(f"{name} {text!r} is negative: a budget is a size, 0 or more (such as 2/255).")
    if not match:
        raise UsageError(f"{name} {text!r} is not a number or a fraction such as 2/255 or 0.01.")
    value = float(match.group(1))
    if match.group(2) is not None:
        denominator = float(match.group(2))
        if denominator == 0:
            raise UsageError(f"{name} {text!r} divides by zero.")
        value /= denominator
    if not math.isfinite(value):
        raise UsageError(f"{name} {text!r} is not a finite number.")
    if value > MAX_BUDGET:
        raise UsageError(f"{name} {text!r} is {value:g}, above {MAX_BUDGET:g}, the largest distance between two "
                         "images of any norm and crop; write a budget such as 2/255 (L∞) or 0.5 (L2).")
    if max_value is not None and value > max_value:
        raise UsageError(f"{name} {text!r} is {value:g}, above {max_value:g}; pixels are in [0, 1], "
                         f"so write a budget such as 2/255.")
    return value


def parse_eps_list(text: str, *, name: str = "--eps", max_value: float | None = 1.0) -> tuple[float, ...]:
    """A comma-separated list of budgets, in the order given, duplicates removed."""
    parts = [p for p in str(text).split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise UsageError(f"{name} {text!r} has an empty entry; write budgets such as 1/255,2/255.")
    values: list[float] = []
    for part in parts:
        value = parse_eps(part, name=name, max_value=max_value)
        if value not in values:
            values.append(value)
    return tuple(values)


def parse_gate(text: str, *, name: str = "--min-robust-top1") -> tuple[float, float]:
    """`EPS=FRACTION` (e.g. `2/255=0.30`): the robust top-1 at EPS must be at least FRACTION."""
    if isinstance(text, tuple) and len(text) == 2:
        text = f"{text[0]!r}={text[1]!r}"
    if "=" not in str(text):
        raise UsageError(f"{name} {text!r} must read EPS=FRACTION, for example 2/255=0.30.")
    eps_text, _, fraction_text = str(text).partition("=")
    eps = parse_eps(eps_text, name=name, max_value=None)
    try:
        fraction = float(fraction_text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: {fraction_text!r} is not a fraction between 0 and 1.") from None
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"{name} {text!r}: the accuracy {fraction_text} must be a fraction between 0 and 1.")
    return eps, fraction


def same_eps(a: float, b: float) -> bool:
    """Budgets parsed from different spellings (`2/255`, `0.00784313725`) are the same budget."""
    return abs(a - b) <= 1e-9 + 1e-6 * max(abs(a), abs(b))
