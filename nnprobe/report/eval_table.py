"""Console rendering of an EvalResult."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.gates import print_gates
from nnprobe.results import EvalResult


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def render(result: EvalResult, console: Console) -> None:
    model = result.model
    table = Table(title=f"nnprobe eval — {model.spec}", title_justify="left", show_edge=False)
    table.add_column("metric")
    table.add_column("measured", justify="right")
    table.add_column("count", justify="right")
    table.add_column("published", justify="right")
    table.add_row("top-1", _pct(result.top1), f"{result.correct_top1}/{result.total}", _pct(model.published_top1))
    table.add_row("top-5", _pct(result.top5), f"{result.correct_top5}/{result.total}", _pct(model.published_top5))
    table.add_row("mean loss", f"{result.mean_loss:.4f}", "", "")
    console.print(table)
    pre = model.preprocessing
    console.print(escape(
        f"model: {model.source} {model.architecture or ''} weights={model.weights}  classes={model.num_classes}\n"
        f"preprocessing: resize {pre.resize_size} -> crop {pre.crop_size}, {pre.interpolation}"
        f"{' antialias' if pre.antialias else ''}, mean {pre.mean}, std {pre.std} ({pre.source})\n"
        f"data: {result.data['path']} [{result.data['layout']}], logits: {result.data['logits']}; "
        f"{result.converted} converted to RGB, {len(result.skipped)} skipped\n"
        f"predictions: {result.predictions.distinct_classes} distinct classes, most frequent "
        f"{result.predictions.most_predicted_name} ({100 * result.predictions.most_predicted_share:.1f}%)\n"
        f"run: {result.run.device} {result.run.precision}, world size {result.run.world_size}, "
        f"{result.run.seconds:.2f} s, {result.images_per_second:.1f} images/s"
    ))
    for skip in result.skipped[:20]:
        console.print(escape(f"  skipped {skip.path}: {skip.reason}"))
    if len(result.skipped) > 20:
        console.print(f"  ... and {len(result.skipped) - 20} more (see --format json)")
    print_gates(result.gates, console)
