"""What the CLI needs from the core besides the verbs, torch-free until called: the files a command reads (for
the output guard), the log-like names, merge's globs, the baseline's detectable drop, and how this process
runs (its rank, --nproc's workers, threads). The CLI imports these through `nnprobe.api` only."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from nnprobe.errors import UsageError


def detectable_drop(baseline: Any, alpha: float | None) -> str | None:
    """Before a long run with a baseline: the smallest top-1 drop its number of images can show, as a
    sentence (None for a run folder or an object)."""
    if not isinstance(baseline, (str, os.PathLike)) or os.path.isdir(baseline):
        return None
    from nnprobe.intervals import minimal_detectable_drop, smallest_significant_flips
    from nnprobe.io import read_json

    level = alpha or 0.05
    total = read_json(baseline, "the baseline").get("total")
    if not isinstance(total, int) or total <= 0:
        return None
    drop = minimal_detectable_drop(total, level)
    said = (f"{100 * drop:.3g} pt ({smallest_significant_flips(level)} of {total} images going wrong, none right)"
            if drop == drop else "none: too few images for any drop to be significant")
    return (f"the baseline has {total} images; the smallest top-1 drop an exact McNemar test at alpha {level:g} "
            f"can detect is {said}.")


def part_names(parts: Iterable[str]) -> list[str]:
    """merge's PART arguments with each local glob expanded (sorted); bucket URLs as given."""
    from nnprobe.part_files import names

    return names([os.fspath(p) for p in parts])


def run_logs(path: str | os.PathLike, timeout: float | None = None) -> list[str]:
    """The log files `diagnose` reads for a run folder, a folder of runs or one log file (inputs: never
    written over); `timeout` for a remote store."""
    from nnprobe.diagnosis import log_files

    return log_files(os.fspath(path), timeout=timeout)


def looks_like_log(name: str) -> bool:
    """Whether a file of this name would be read as a training log by the next `diagnose`."""
    from nnprobe.diagnosis.readers import could_be_log

    return could_be_log(name)


def is_run(path: str | os.PathLike) -> bool:
    """Whether a compare side (or diagnose --baseline) is a training run rather than a result JSON."""
    from nnprobe.comparison.loading import is_run as run

    return run(path)


def result_files(path: str | os.PathLike) -> list[str]:
    """Every file a comparison reads for one side: a result JSON and the per-sample file it records (found
    as compare finds it), or a run folder's logs."""
    from nnprobe.errors import NnprobeError

    path = os.fspath(path)
    if os.path.isdir(path):
        return run_logs(path)
    try:
        from nnprobe.comparison.loading import load_side, per_sample_path

        return [path, *filter(None, [per_sample_path(load_side(path, "result"))])]
    except NnprobeError:
        return [path]


def is_main_rank() -> bool:
    """Rank 0 under torchrun or --nproc (or the only process): the one that reports and speaks."""
    from nnprobe import distributed

    return distributed.from_env().is_main


def rank_end(failed: bool) -> bool:
    """At the end of a command under torchrun or --nproc: rank 0 lets the silent ranks go; a silent rank that
    failed waits until rank 0 has spoken (torchrun stops every rank at the first failure, so a silent rank
    that failed first cut rank 0's sentence off). False when a failed silent rank must speak itself: rank 0
    did not say it spoke in time."""
    from nnprobe import distributed

    ctx = distributed.from_env()
    if not ctx.enabled:
        return True
    if ctx.is_main:
        distributed.main_has_spoken()
        return True
    return not failed or distributed.wait_for_main()


def in_local_worker() -> bool:
    """Whether this process is one of the workers --nproc started."""
    from nnprobe.launch import WORKER_VARIABLE

    return bool(os.environ.get(WORKER_VARIABLE))


def local_workers(nproc: int, argv: Sequence[str]) -> tuple[int, str | None] | None:
    """Run `python -m nnprobe ARGV` on `nproc` local ranks (torch's elastic launcher as a library) and
    return nnprobe's exit code with the sentence to say (or None); inside such a worker (or under torchrun)
    refuse or do nothing (None)."""
    from nnprobe import distributed
    from nnprobe.launch import WORKER_VARIABLE, run_workers

    if os.environ.get(WORKER_VARIABLE):
        return None  # this process is one of the workers: run as a rank
    if distributed.from_env().enabled:
        raise UsageError("--nproc under torchrun: give one or the other (torchrun's --nproc_per_node already "
                         "starts the workers).")
    return run_workers(nproc, list(argv))


def process_setup(threads: int | None, workers: int | None):
    """(context manager) This rank under torchrun (or the only process), its data-loader workers (default:
    available CPUs - 1) and torch's threads sized not to oversubscribe them, restored afterwards. Yields
    (is_main, workers)."""
    import contextlib

    from nnprobe import distributed
    from nnprobe.device import cpu_threads, default_workers

    @contextlib.contextmanager
    def setup():
        is_main = distributed.from_env().is_main
        count = default_workers() if workers is None else workers
        with cpu_threads(threads, count):
            yield is_main, count

    return setup()
