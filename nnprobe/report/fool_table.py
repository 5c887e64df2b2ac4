"""Console rendering of a FoolResult: per image, original vs adversarial top-5 and the verdict."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.gates import print_gates
from nnprobe.results import format_eps

if TYPE_CHECKING:  # nnprobe.attacks imports torch; the report layer never does
    from nnprobe.attacks.results import FoolItem, FoolResult


def _verdict(item: FoolItem, targeted: bool) -> str:
    if item.success:
        text = "[bold red]FOOLED[/bold red]" + (" (reached the target)" if targeted else "")
    elif item.rounding_undid:
        text = "[yellow]not fooled: rounding to 8 bits undid the attack[/yellow]"
    else:
        text = "[green]not fooled[/green]"
    return text


def _search_line(item: FoolItem) -> str:
    """`--min-eps`: the answer, then every budget tried in order (+ fooled, - not)."""
    search = item.search
    found = (f"smallest fooling budget {format_eps(search.min_eps)}" if search.min_eps is not None
             else f"not fooled up to the cap {format_eps(search.cap)}")
    tried = " ".join(f"{format_eps(t.eps)}{'+' if t.fooled else '-'}" for t in search.trials)
    return f"  min eps: {found}, by {search.method} (tried: {tried})"


def render(result: FoolResult, console: Console) -> None:
    s = result.settings
    steps = f", {s.steps} steps" if s.steps > 1 else ""
    target = f", target {s.target_index} {s.target_label!r}" if s.targeted else ""
    console.print(escape(f"nnprobe fool — {result.model.spec}: {s.attack} ({s.norm}{steps}{target})"))
    for item in result.items:
        table = Table(title=escape(f"{item.image}  eps {format_eps(item.eps)}  [{item.space} space "
                                   f"{item.width}x{item.height}]"),
                      title_justify="left", show_edge=False)
        table.add_column("#", justify="right")
        table.add_column("original", overflow="fold")
        table.add_column("conf", justify="right")
        table.add_column("adversarial (PNG re-read)", overflow="fold")
        table.add_column("conf", justify="right")
        for rank, (a, b) in enumerate(zip(item.original, item.adversarial), start=1):
            table.add_row(str(rank), escape(f"{a.label} ({a.index})"), f"{a.confidence:.1%}",
                          escape(f"{b.label} ({b.index})"), f"{b.confidence:.1%}")
        console.print(table)
        pipeline = ""
        if item.fools_eval_pipeline is not None:
            pipeline = (", also through the eval pipeline (PIL resize/crop)" if item.fools_eval_pipeline
                        else ", but not through the eval pipeline (PIL resize/crop)")
        console.print(f"  {_verdict(item, s.targeted)}{escape(pipeline)}")
        console.print(escape(f"  L∞ {item.linf_255:.0f}/255, L2 {item.l2:.4f}, {item.steps} step(s), "
                             f"{item.seconds:.2f} s"))
        if item.search is not None:
            console.print(escape(_search_line(item)))
        if item.precision_check:
            c = item.precision_check
            console.print(escape(f"  {c['precision']} vs fp32 on the same PNG: fp32 says {c['fp32_top1'].label} "
                                 f"({c['fp32_top1'].confidence:.1%}), "
                                 f"{'fooled' if c['fp32_success'] else 'not fooled'}; "
                                 f"max probability difference {c['max_probability_difference']:.4f}"))
        files = item.adversarial_image + (f", {item.panel_image}" if item.panel_image else "")
        console.print(escape(f"  wrote {files}"))
    console.print(escape(f"{result.fooled} of {len(result.items)} fooled; "
                         f"{result.run.device} {result.run.precision}, {result.run.seconds:.2f} s"))
    print_gates(result.gates, console)
