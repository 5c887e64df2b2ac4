"""`nnprobe merge PART...`: add up `--shard K/N` results into the one result a single run would have given.

Exit codes: 0 merged (and every gate met), 1 a gate failed, 2 the parts are not the slices of one run
(gaps, overlaps, other data, model or settings) or a file is unreadable.
"""
from __future__ import annotations

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb
from nnprobe.options.verbs import MERGE


@click.command("merge", short_help="Add up --shard K/N results exactly (refuses gaps, overlaps, other data).")
@command_options(MERGE)
def command(**options) -> int:
    """Merge the partial results of `nnprobe eval|robust --shard K/N ... --format json -o partK.json`
    (robust with --corruptions too).

    Every slice 1..N must be given exactly once, all from the same model, settings and data; counts are
    summed exactly, so the merged report equals a single run's. A PART is a file, a quoted glob
    ('parts/part-*.json') or a bucket URL (s3://bucket/run/part-*.json; the remote extra).
    """
    import dataclasses

    from nnprobe.api import part_names  # torch-free

    inputs = options["inputs"]  # a quoted glob expanded here, so the guards see every part
    options["inputs"] = dataclasses.replace(inputs, parts=tuple(part_names(inputs.parts)))
    options = guard_verb("merge", options)

    from nnprobe import api

    result = api.merge_with(options)
    return finish(result, options["report"], passed=result.passed)
