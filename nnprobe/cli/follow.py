"""`nnprobe follow RUN`: watch a live training run (the same as `nnprobe diagnose --follow RUN`).

Exit codes: 1 at the first error finding (a NaN, negative or diverging loss, naming its step; with
--kill-on-error the training process gets SIGTERM), 0 when the run ends, 2 unreadable run or bad option.
"""
from __future__ import annotations

import click

from nnprobe.cli.diagnose import watched
from nnprobe.cli.options import command_options
from nnprobe.options.verbs import FOLLOW


@click.command("follow", short_help="Watch a live training run; exit 1 at the first NaN or diverging loss.")
@command_options(FOLLOW)
def command(**options) -> None:
    """Watch the live run at PATH (TensorBoard, CSV, JSON lines, MLflow, W&B): read appended records every
    --poll seconds; exit 1 at the first error finding, 0 when the run ends (--idle seconds without data).
    `nnprobe diagnose --follow PATH` is the same command."""
    watched(options, "follow")
