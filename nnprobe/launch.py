"""`--nproc N`: nnprobe starts N local worker processes itself, with torch's elastic launcher used as a
library (what `torchrun --standalone --nproc_per_node N` runs), so that the exit code, the one-sentence
error and the report stay nnprobe's.

Each worker is `python -m nnprobe` with the same arguments and the launcher's RANK/WORLD_SIZE/MASTER_*
variables: the existing torchrun path (data/shards.py) splits the data into disjoint shards, sums exact
counts, and rank 0 alone writes the report and speaks (cli: other ranks are silent). The launcher's own
logging is silenced. The exit code is rank 0's; when rank 0 ended well or was only stopped because another
rank failed, the failing rank's code, with one sentence naming it (that rank printed nothing itself).
"""
from __future__ import annotations

import logging
import signal
import sys
import uuid
from collections.abc import Sequence

from nnprobe.errors import ExitCode

WORKER_VARIABLE = "NNPROBE_NPROC_WORKER"  # set in each worker: its --nproc is already being served
_STOPPED = {-signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM, 128 + signal.SIGKILL}


def _quiet_launcher() -> None:
    for name in ("torch.distributed.elastic", "torch.distributed.launcher", "torch.distributed.run"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _shell_code(code: int) -> int:
    """A process's exit status as a shell reports it: -15 (killed by SIGTERM) is 143."""
    return code if 0 <= code < 256 else 128 - code if code < 0 else ExitCode.INTERNAL


def exit_code(codes: dict[int, int]) -> tuple[int, str | None]:
    """The command's exit code from each rank's, and a sentence when it comes from a rank other than 0
    (rank 0 alone speaks, so that rank's own error was not shown). Rank 0 decides unless it ended well or was
    only stopped by the launcher after another rank failed."""
    failed = {rank: code for rank, code in codes.items() if code != 0}
    if not failed:
        return 0, None
    real = {rank: code for rank, code in failed.items() if code not in _STOPPED}
    rank = 0 if 0 in real or not real and 0 in failed else min(real or failed)
    code = _shell_code(failed[rank])
    if rank == 0:
        return code, None
    return code, f"Rank {rank} of {len(codes)} stopped with exit code {code} (rerun with --debug to see its output)."


def run_workers(nproc: int, argv: Sequence[str]) -> tuple[int, str | None]:
    """Run `python -m nnprobe ARGV` on `nproc` local ranks: nnprobe's exit code, and the sentence naming the
    rank that decided it when that rank is not 0 (it printed nothing itself); the CLI says it."""
    import os

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _quiet_launcher()
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4().int),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    os.environ[WORKER_VARIABLE] = "1"
    try:
        elastic_launch(config, sys.executable)("-m", "nnprobe", *argv)
        return 0, None
    except ChildFailedError as exc:
        codes = {rank: 0 for rank in range(nproc)}
        codes.update({rank: failure.exitcode for rank, failure in exc.failures.items()})
        return exit_code(codes)
    finally:
        os.environ.pop(WORKER_VARIABLE, None)
