"""Device and precision resolution: `--device auto|cpu|cuda[:N]|mps`, `--precision fp32|bf16|fp16`."""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from nnprobe.errors import UsageError
from nnprobe.options.run import PRECISIONS, device_spec  # noqa: F401  (the spelling lives with the options)

if TYPE_CHECKING:
    import torch


def resolve_device(spec: "str | torch.device | None" = "auto") -> "torch.device":
    """auto picks cuda, then mps, then cpu; an explicit device that is absent is a usage error."""
    import torch

    spec = device_spec(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec} was asked for but no CUDA GPU is available; use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {spec} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise UsageError("--device mps was asked for but MPS is not available; use --device cpu.")
    return device


def autocast(device: "torch.device", precision: str):
    """A context that runs the forward pass at the requested precision (autocast), fp32 = no-op."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and precision == "fp16":
        raise UsageError("--precision fp16 needs a GPU; on the CPU use bf16 or fp32.")
    return torch.autocast(device_type=device.type, dtype=dtype)


def versions() -> dict[str, str]:
    """Versions that change numbers: recorded in every result's provenance."""
    import platform

    import torch
    import torchvision

    from nnprobe import __version__

    out = {"nnprobe": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
           "python": platform.python_version()}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def _cgroup_cpu_limit() -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 `cpu.max`, v1 `cfs_quota_us`), None if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as handle:
            quota = int(handle.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as handle:
            period = int(handle.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup quota (a container limited
    to 2 CPUs on a 64-core host must not start 64 threads). `os.cpu_count()` sees neither."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, int(limit)))
    return max(1, cpus)


def default_workers() -> int:
    """Data-loader worker processes: one CPU is left to the main process, at most 8."""
    return max(0, min(8, available_cpus() - 1))


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat (Linux), None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)  # idle + iowait, all


def idle_cpus(window: float = 0.05) -> float | None:
    """How many of the host's CPUs were idle over the last `window` seconds (None where unknown).
    Measured now, not the 1-minute load average, which lags a competing job by a minute."""
    import time

    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def default_threads(workers: int = 0) -> int:
    """Intra-op threads that do not oversubscribe: the CPUs this process may use (affinity, quota) that are
    idle right now, less the data-loader workers, at least one. Measured: with two busy processes on two
    cores, torch's default (two spinning threads) made `fool` 6x slower than one thread (bench/RESULTS.md)."""
    cpus = available_cpus()
    idle = idle_cpus()
    if idle is not None:
        cpus = min(cpus, max(1, round(idle)))
    return max(1, cpus - max(0, workers))


@contextlib.contextmanager
def cpu_threads(threads: int | None, workers: int = 0):
    """Torch's intra-op threads for one command: `threads`, or `default_threads(workers)`. torch's own
    default counts every core of the host and ignores affinity, quotas, load and workers. The previous
    value is restored on the way out (the process's thread count is the CLI's to set, not the library's)."""
    import torch

    wanted = threads or default_threads(workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
