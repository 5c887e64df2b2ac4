"""Console rendering of a RobustResult: one row per budget, each number labelled for what it is."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.eval_rows import empty_slice_note, robust_interval_note, span
from nnprobe.report.gates import print_gates
from nnprobe.results import format_eps

if TYPE_CHECKING:  # nnprobe.attacks imports torch; the report layer never does
    from nnprobe.attacks.results import RobustResult


def _pct(value: float) -> str:
    return "—" if value != value else f"{100 * value:.2f}%"


def _cost(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _component(c: dict) -> str:
    if not c.get("ran", True):
        return f"{c['attack']} left out"
    budget = f"{c['queries']} queries" if "queries" in c else f"{c.get('steps')} steps"
    targets = f" x up to {c['target_classes']} targets" if "target_classes" in c else ""
    return f"{c['attack']} {budget}{targets}"


def _spans(result: RobustResult) -> str:
    """': eps: lo – hi, ...' after the interval note; nothing when an empty slice has none."""
    if empty_slice_note(result.data, result.points[0].total if result.points else 0):
        return ""
    return ": " + ", ".join(f"{format_eps(p.eps)}: {span(iv)}" for p, iv in zip(result.points, result.top1_intervals()))


def render(result: RobustResult, console: Console) -> None:
    s = result.settings
    detail = f"{s.steps} steps, " if s.steps > 1 else ""
    if getattr(s, "components", ()):  # autoattack: what ran, in order, with each budget
        detail = " -> ".join(_component(c) for c in s.components) + ", "
    start = ", random start" if s.random_start else ""
    table = Table(title=escape(f"nnprobe robust — {result.model.spec}: {s.attack} ({s.norm}, {detail}"
                               f"untargeted{start})"), title_justify="left", show_edge=False)
    for name, justify in [("eps", "right"), ("robust top-1", "right"), ("count", "right"), ("robust top-5", "right"),
                          ("attack success\n(on initially correct)", "right"), ("mean L∞ of δ", "right"),
                          ("mean L2 of δ", "right"), ("cost / image\n(passes)", "right")]:
        table.add_column(name, justify=justify)
    fp32 = any(p.fp32_correct_top1 is not None for p in result.points)
    if fp32:
        table.add_column("top-1 judged in fp32", justify="right")
    for p in result.points:
        row = [format_eps(p.eps), _pct(p.top1), f"{p.correct_top1}/{p.total}", _pct(p.top5),
               f"{_pct(p.attack_success_rate)} ({p.fooled}/{p.clean_correct})",
               "—" if p.mean_linf != p.mean_linf else f"{p.mean_linf * 255:.2f}/255",
               "—" if p.mean_l2 != p.mean_l2 else f"{p.mean_l2:.4f}", _cost(p.cost_per_image)]
        if fp32:
            row.append(f"{p.fp32_correct_top1}/{p.total}" if p.fp32_correct_top1 is not None else "—")
        table.add_row(*row)
    console.print(table)
    data = result.data
    console.print(escape(
        "robust top-k: accuracy on the attack's images (the attack targets top-1); a sample counts as fooled "
        "as soon as any iterate fools it; norms averaged over the initially correct samples.\n"
        f"{robust_interval_note(result)}{_spans(result)}\n"
        f"data: {data.get('path')} [{data.get('layout')}], {len(data.get('skipped', []))} skipped; "
        f"early stop {'on' if s.early_stop else 'off'}; {binarization_setting(s)}cost: passes through the model "
        "per initially correct "
        "image, a forward 1 and a backward 2\n"
        f"run: {result.run.device} {result.run.precision}, world size {result.run.world_size}, "
        f"{result.run.seconds:.2f} s, seed {result.run.seed}"))
    if result.median_min_eps is not None:
        console.print(f"median smallest fooling budget on this grid: {format_eps(result.median_min_eps)}")
    if getattr(result, "min_norm", None) is not None:
        print_min_norm(result, console)
    if result.plot:
        console.print(escape(f"plot: {result.plot}"))
    for skip in data.get("skipped", [])[:20]:
        console.print(escape(f"  skipped {skip['path']}: {skip['reason']}"))
    if result.comparison is not None:
        from nnprobe.report import render_section

        render_section(result.comparison, console)
    print_gates(result.gates, console)
    print_findings(getattr(result, "findings", ()), console)
    line = binarization_summary((getattr(result, "sanity", None) or {}).get("model", {}))
    if line is not None:
        console.print(escape(line))


def print_min_norm(result, console: Console) -> None:
    """`--min-norm`: the distances' quantiles, and the robust top-1 they imply at the run's budgets beside the
    attack's (the whole curve when the norms differ; JSON and --plot carry it all)."""
    from nnprobe.report.min_norm_text import curve_rows, summary

    first, *rest = summary(result.min_norm)
    console.print(escape(first))
    for line in rest:
        console.print(escape("  " + line))
    headers, rows = curve_rows(result)
    table = Table(title=escape(f"robust top-1 implied by the {result.min_norm.attack} distances"),
                  title_justify="left", show_edge=False)
    for name in headers:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_findings(findings, console: Console) -> None:
    """The sanity checks (gradient masking and friends): each warning with its evidence and advice; nothing
    when none fired (the JSON's `findings` is then empty)."""
    if not findings:
        console.print("sanity checks: no warning (zero or non-finite gradients, noise beating the attack, "
                      "accuracy rising with eps, black box beating white box, probabilities for logits, "
                      "random forward)")
        return
    console.print(f"sanity checks: {len(findings)} warning{'s' if len(findings) > 1 else ''}")
    for f in findings:
        evidence = ", ".join(f"{k}={v}" for k, v in f.evidence.items())
        console.print(escape(f"  [{f.severity}] {f.id}: {f.message}\n    evidence: {evidence}\n    hint: {f.hint}"))


def binarization_setting(settings) -> str:
    """`--binarization-test`'s inner points per sample for the table's settings line ('' when it did not run)."""
    inner = getattr(settings, "binarization_inner_points", None)
    return "" if inner is None else f"binarization test with {inner} inner points per sample; "


def binarization_summary(m: dict) -> str | None:
    """`--binarization-test` (`nnprobe.attacks.binarization`): one line for a run that asked for it (None
    otherwise) from the sanity counts: what it tested and what it cost."""
    if not m.get("binarization_asked"):
        return None
    asked, checked, failed = m["binarization_asked"], m["binarization_checked"], m["binarization_failed"]
    return (f"binarization test (Zimmermann et al. 2022): the attack found the planted adversarial for "
            f"{checked - failed} of {checked} samples ({asked - checked} of the {asked} asked could not be set up; "
            f"one of 8 random points on the ball's surface already was for {m.get('binarization_random', 0)}); "
            f"cost {m['binarization_cost']} passes")
