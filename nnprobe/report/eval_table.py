"""Console rendering of an EvalResult."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnprobe.report.eval_rows import HEADERS, interval_note, metric_rows, parity_lines, variant_line
from nnprobe.report.gates import print_gates
from nnprobe.results import EvalResult


def render(result: EvalResult, console: Console) -> None:
    model = result.model
    table = Table(title=f"nnprobe eval — {model.spec}", title_justify="left", show_edge=False)
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "metric" else "right")
    for row in metric_rows(result):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(escape(interval_note(result)))
    if result.variant is not None:
        console.print(escape(variant_line(result)))
    for line in parity_lines(result):
        console.print(escape(line))
    pre = model.preprocessing
    console.print(escape(
        f"model: {model.source} {model.architecture or ''} weights={model.weights}  classes={model.num_classes}\n"
        f"preprocessing: resize {pre.resize_size} -> crop {pre.crop_size}, {pre.interpolation}"
        f"{' antialias' if pre.antialias else ''}, mean {pre.mean}, std {pre.std} ({pre.source})\n"
        f"data: {result.data['path']} [{result.data['layout']}], logits: {result.data['logits']}; "
        f"{result.converted} converted to RGB, {len(result.skipped)} skipped"
        f"{_merged(result.data)}\n"
        f"predictions: {result.predictions.distinct_classes} distinct classes, most frequent "
        f"{result.predictions.most_predicted_name} ({100 * result.predictions.most_predicted_share:.1f}%)\n"
        f"run: {result.run.device} {result.run.precision}, world size {result.run.world_size}, "
        f"{result.run.seconds:.2f} s, {result.images_per_second:.1f} images/s"
    ))
    for skip in result.skipped[:20]:
        console.print(escape(f"  skipped {skip.path}: {skip.reason}"))
    if len(result.skipped) > 20:
        console.print(f"  ... and {len(result.skipped) - 20} more (see --format json)")
    _errors(result, console)
    for finding in result.setup_findings:
        console.print(escape(f"{finding.severity}: {finding.message}"), style="bold red" if finding.severity == "error"
                      else "yellow")
        console.print(escape(f"  fix: {finding.fix}"))
        csv_lines = str(finding.evidence.get("class_map_csv", "")).splitlines()
        for line in csv_lines[:5]:
            console.print(escape(f"    {line}"))
        if len(csv_lines) > 5:
            console.print(f"    ... {len(csv_lines) - 5} more lines (the whole --class-map file is in --format json)")
    if result.comparison is not None:
        from nnprobe.report import render_section

        render_section(result.comparison, console)
    print_gates(result.gates, console)


def _errors(result: EvalResult, console: Console) -> None:
    """Where the errors are: the worst classes and the most confused pairs (one line each)."""
    from nnprobe.calibration import worst_classes

    worst = worst_classes(result.per_class, 5)
    if worst and len([pc for pc in result.per_class if pc.total]) > 1:
        console.print(escape("worst classes: " + ", ".join(
            f"{pc.name} {pc.correct_top1}/{pc.total}" for pc in worst)))
    if result.confused_pairs:
        console.print(escape("most confused: " + ", ".join(
            f"{p.true_name} -> {p.predicted_name} x{p.count}" for p in result.confused_pairs[:5])))


def _merged(data: dict) -> str:
    """Which slice a `--shard` result is, or how many `nnprobe merge` added up."""
    if "shard" in data:
        shard = data["shard"]
        return f"; slice {shard['index']}/{shard['count']} ({shard['images']} images, a partial result)"
    return f"; merged from {data['merged_from']} slices" if "merged_from" in data else ""
