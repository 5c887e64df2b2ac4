"""How a drop threshold is written (`--max-drop-top1 0.3pt`) and the drop gates built from it.

Syntax, the same for every drop gate: `0.3pt` (or `0.3pp`) is 0.3 percentage points = 0.003; `0.3%` is
read the same way, as percentage points of accuracy, never as 0.3 % *of* the baseline's accuracy (the
`--min-top1 75%` of eval is absolute too); a bare number is a fraction (`0.003`). Thresholds lie in [0, 1].
"""
from __future__ import annotations


from nnprobe.results import Gate

from nnprobe.options.gates import parse_alpha, parse_drop  # noqa: E402,F401  (the syntax lives with the options)


def points(fraction: float) -> str:
    """0.0031 -> '0.31pt' (percentage points, signed for a gain)."""
    return f"{100 * fraction:.2f}pt"


def drop_gate(name: str, threshold: float, drop: float, *, p: float | None = None, alpha: float | None = None,
              what: str = "") -> Gate:
    """A drop gate: fails when the drop exceeds the threshold, and with `alpha` only when McNemar's p (the
    chance of a drop this large from noise alone) is also below alpha."""
    exceeds = drop > threshold + 1e-12
    significant = alpha is None or (p is not None and p < alpha)
    passed = not (exceeds and significant)
    subject = f"{what} " if what else ""
    if abs(drop) < 5e-7:
        sentence = f"{subject}did not change"
    else:
        sentence = f"{subject}{'dropped' if drop > 0 else 'rose'} {points(abs(drop))}"
    verdict = "within" if not exceeds else "over"
    message = f"{sentence}, {verdict} the allowed {points(threshold)}"
    if alpha is not None:
        shown = "n/a" if p is None else f"{p:.3g}"
        tail = "significant" if significant else "not significant"
        message += f"; McNemar p = {shown} ({tail} at alpha {alpha:g})"
    return Gate(name, threshold, drop, passed, message)
