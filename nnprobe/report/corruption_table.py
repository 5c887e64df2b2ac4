"""Console rendering of a CorruptionResult: one row per corruption, one column per severity, and the means."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.eval_rows import empty_slice_note, span
from nnprobe.report.gates import print_gates

if TYPE_CHECKING:  # nnprobe.imagenet_c imports torch; the report layer never does
    from nnprobe.imagenet_c.results import CorruptionResult


def _pct(value: float) -> str:
    return "—" if value != value else f"{100 * value:.2f}%"


def _jpeg_note(quality) -> str:
    return "" if quality is None else f"; each corrupted image saved and decoded as JPEG quality {quality}"


def _score(value: float) -> str:
    return f"{100 * value:.1f}"


def spanned(interval, fmt=None) -> str:
    """` (lo – hi)` of a bootstrap interval, empty when there is none (one spelling for every format)."""
    shown = span(interval, fmt) if fmt is not None else span(interval)
    return f" ({shown})" if shown else ""


def interval_note(result) -> str:
    """The level and method of the intervals on the means, or why there are none."""
    b = result.bootstrap
    empty = empty_slice_note(result.data, result.clean.total)
    if empty:
        return empty
    if b is None:
        return "no intervals: the merged slices carry no per-image verdicts (written by an older nnprobe)"
    return f"intervals: {100 * result.confidence_level:g}%, {b.mean_corruption_top1.method}"


def mean_words(result) -> str:
    """'mean corruption top-1 X (lo – hi)'."""
    b = result.bootstrap
    return f"mean corruption top-1 {_pct(result.mean_corruption_top1)}{spanned(b and b.mean_corruption_top1)}"


def _mce_line(result) -> str:
    """ImageNet-C's mCE and relative mCE (AlexNet = 100) with their intervals, or why they are not given."""
    if "ImageNet-C" not in result.settings.benchmarks:
        return "mCE: ImageNet-C's 15 only (no AlexNet errors are published for ImageNet-C-bar)\n"
    if result.corruption_error is None:
        return "mCE: not given (AlexNet's errors normalise ImageNet's 1000 classes only)\n"
    if result.mce is None:
        return "mCE: needs all 15 corruptions (corruption errors per corruption in the JSON)\n"
    jpeg = result.settings.jpeg_roundtrip
    how = f"JPEG q{jpeg} round trip" if jpeg else "in memory, no JPEG round trip"
    b = result.bootstrap
    return (f"mCE {_score(result.mce)}{spanned(b and b.mce, _score)}, relative mCE "
            f"{_score(result.relative_mce)}{spanned(b and b.relative_mce, _score)} (AlexNet = 100; {how})\n")


def _perturbation_table(result: CorruptionResult, console: Console) -> None:
    """ImageNet-P: flip probability and top-5 distance per perturbation sequence, and their means."""
    table = Table(title="ImageNet-P sequences (31 frames, translate 41; made on the device): flips along each",
                  title_justify="left", show_edge=False)
    from nnprobe.report.perturbation_text import frames_note, perturbation_summary, ratio_cells, ratio_columns

    for name, right in (("perturbation", False), ("flip probability", True), ("flips / compared frames", True),
                        ("top-5 distance", True), *((column, True) for column in ratio_columns(result))):
        table.add_column(name, justify="right" if right else "left")
    for p in result.perturbations:
        table.add_row(p.perturbation, _pct(p.flip_probability), f"{p.flips}/{p.comparisons}",
                      f"{p.top5_distance:.3f} ({p.top5_distance_sum}/{p.comparisons})",
                      *ratio_cells(result, p.perturbation))
    console.print(table)
    console.print(escape(perturbation_summary(result)))
    for line in frames_note(result):
        console.print(escape(line))


def render(result: CorruptionResult, console: Console) -> None:
    s = result.settings
    table = Table(title=escape(f"nnprobe robust --corruptions — {result.model.spec}: top-1 per corruption and "
                               f"severity"), title_justify="left", show_edge=False)
    table.add_column("corruption")
    table.add_column("family")
    for severity in s.severities:
        table.add_column(f"severity {severity}", justify="right")
    table.add_column("mean", justify="right")
    means = result.per_corruption
    for name in s.corruptions:
        row = [name, next(p.family for p in result.points if p.corruption == name)]
        row += [_pct(result.top1(name, severity)) for severity in s.severities]
        table.add_row(*row, _pct(means[name]))
    console.print(table)
    clean = result.clean
    data = result.data
    console.print(escape(
        f"clean top-1 {_pct(clean.top1)} ({clean.correct_top1}/{clean.total}); {mean_words(result)}; relative "
        f"drop {_pct(result.relative_drop)}\n"
        f"{_mce_line(result)}{interval_note(result)}\n"
        f"{' and '.join(s.benchmarks)} corruptions computed on the device at the model's input size, parameters of "
        f"{s.reference}, "
        f"seed {s.seed}{_jpeg_note(s.jpeg_roundtrip)}\n"
        f"data: {data.get('path')} [{data.get('layout')}], {len(data.get('skipped', []))} skipped\n"
        f"run: {result.run.device} {result.run.precision}, world size {result.run.world_size}, "
        f"{result.run.seconds:.2f} s"))
    if result.perturbations:
        _perturbation_table(result, console)
    if result.plot:
        console.print(escape(f"plot: {result.plot}"))
    for skip in data.get("skipped", [])[:20]:
        console.print(escape(f"  skipped {skip['path']}: {skip['reason']}"))
    print_gates(result.gates, console)
