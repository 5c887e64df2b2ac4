"""`robust --min-norm` in words, for every renderer that shows it (console table, HTML): the distances'
summary sentence, each distance in its norm's units, and the curve rows at the run's budgets."""
from __future__ import annotations

import itertools
from typing import Any

from nnprobe.results import format_eps


def distance(value: float | None, norm: str) -> str:
    if value is None:
        return "not reached"
    if norm == "l0":
        return f"{value:.0f} values"
    return f"{value * 255:.2f}/255" if norm == "linf" else f"{value:.4f}"


def summary(m: Any) -> list[str]:
    """The quantiles sentence, and the not-converged note when any distance was still shrinking."""
    quantiles = ", ".join(f"q{'?' if level is None else round(level * 100)} {distance(v, m.norm)}"
                          for level, v in itertools.zip_longest(m.levels, m.quantiles))
    lines = [f"minimum-norm distances ({m.attack}, {m.steps} steps, {m.gradient_passes} gradient passes): median "
             f"{distance(m.median, m.norm)} over the {m.attacked} initially correct samples, {m.found} fooled; "
             f"{quantiles}"]
    if m.still_improving:
        lines.append(f"{m.still_improving} distances still shrank over the last tenth of the steps (not converged): "
                     "rerun with more --min-norm-steps.")
    return lines


def curve_rows(result: Any) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Headers and rows: the robust top-1 the distances imply at the run's budgets beside the attack's
    count (the whole curve when the norms differ)."""
    m = result.min_norm
    by_eps = {p.eps: p for p in result.points} if m.norm == result.settings.norm else {}
    chosen = [c for c in m.curve if c.eps in by_eps] or list(m.curve)
    headers = ("eps", "robust top-1", "count", *((f"{result.settings.attack} count",) if by_eps else ()))
    rows = []
    for c in chosen:
        share = c.correct_top1 / c.total if c.total else float("nan")
        row = [format_eps(c.eps) if c.eps in by_eps else distance(c.eps, m.norm),
               "—" if share != share else f"{100 * share:.2f}%", f"{c.correct_top1}/{c.total}"]
        if by_eps:
            row.append(f"{by_eps[c.eps].correct_top1}/{by_eps[c.eps].total}" if c.eps in by_eps else "—")
        rows.append(tuple(row))
    return headers, rows
