"""`nnprobe merge PART...`: add up `--shard K/N` results into the one result a single run would have given.

Exit codes: 0 merged (and every gate met), 1 a gate failed, 2 the parts are not the slices of one run
(gaps, overlaps, other data, model or settings) or a file is unreadable.
"""
from __future__ import annotations

import click

from nnprobe.budget import parse_gate
from nnprobe.cli.eval import eval_gate_options, eval_gates, fraction
from nnprobe.cli.options import ONCE, report_options
from nnprobe.cli.preflight import existing_files, finish, guard_outputs


@click.command("merge", short_help="Add up --shard K/N results exactly (refuses gaps, overlaps, other data).")
@click.argument("parts", nargs=-1, required=True, metavar="PART...")
@eval_gate_options
@click.option("--min-robust-top1", "gates", multiple=True, metavar="EPS=F",
              help="Gate (robust parts): exit 1 when the merged robust top-1 at EPS is below F. Repeatable.")
@click.option("--min-corruption-top1", default=None, metavar="F", **ONCE,
              help="Gate (robust --corruptions parts): exit 1 when the merged mean corruption top-1 is below F.")
@click.option("--save-predictions", default=None, metavar="PATH",
              help="Also merge the slices' per-sample files (each checked against its sha256) into PATH.")
@click.option("--allow-version-mismatch", is_flag=True,
              help="Merge slices written by different nnprobe, torch or torchvision versions (refused by default).")
@report_options
def command(parts, min_top1, min_top5, max_ece, min_class_top1, gates, min_corruption_top1, save_predictions,
            allow_version_mismatch, fmt, output) -> int:
    """Merge the partial results of `nnprobe eval|robust --shard K/N ... --format json -o partK.json`
    (robust with --corruptions too).

    Every slice 1..N must be given exactly once, all from the same model, settings and data; counts are
    summed exactly, so the merged report equals a single run's. A PART is a file, a quoted glob
    ('parts/part-*.json') or a bucket URL (s3://bucket/run/part-*.json; the remote extra).
    """
    from nnprobe.diagnosis.remote import is_remote
    from nnprobe.part_files import names

    files = names(parts)  # a quoted glob expanded here, so the output guard sees every part
    existing_files([f for f in files if not is_remote(f)], "Result")
    thresholds = dict(parse_gate(g) for g in gates)
    eval_thresholds = eval_gates(min_top1, min_top5, max_ece, min_class_top1)
    guard_outputs({"-o": output, "--save-predictions": save_predictions}, files=files)

    from nnprobe import api

    result = api.merge(files, min_robust_top1=thresholds, save_predictions=save_predictions,
                       allow_version_mismatch=allow_version_mismatch,
                       min_corruption_top1=fraction(min_corruption_top1, "--min-corruption-top1"), **eval_thresholds)
    return finish(result, fmt, output, passed=result.passed)
