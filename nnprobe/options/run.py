"""Where and how the work runs: --device (its spelling; whether it exists is known only once torch loads),
--precision, --threads, --batch-size, --workers, --shard."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnprobe.errors import UsageError
from nnprobe.options import parsers as p
from nnprobe.options.base import Options, option
from nnprobe.options.parts import parse_part

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,4})?)$")
COUNT = p.integer(1, 2**31 - 1)


def device_spec(spec: "str | torch.device | None" = "auto") -> str:
    """The spelling of a device, checked without torch (the CLI calls it before torch loads). A
    `torch.device` is taken as its string (`torch.device("cuda", 1)` is "cuda:1")."""
    spec = str(spec if spec is not None else "auto").strip().lower() or "auto"
    if not _DEVICE_RE.match(spec):
        raise UsageError(f"--device {spec[:60]!r} is not one of auto, cpu, cuda, cuda:N, mps.")
    return spec


def _device(value, flag: str) -> str:
    return device_spec(value)


def _shard(value, flag: str):
    return parse_part(value)


@dataclass(frozen=True)
class DeviceOptions(Options):
    device: str = option("--device", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", default="auto",
                         parse=_device, text_default="auto", show_default=True)
    precision: str = option("--precision", "Compute precision (autocast for bf16/fp16).", default="fp32",
                            parse=p.choice(*PRECISIONS), choices=PRECISIONS, show_default=True)
    threads: int | None = option("--threads", "CPU threads for tensor work (default: the CPUs this process may "
                                 "use, by affinity and cgroup quota, that are idle now, less the data-loader "
                                 "workers).", parse=p.integer(1, 4096), metavar="INTEGER", api=False)


@dataclass(frozen=True)
class LoaderOptions(Options):
    """Batches and data-loader workers; `batch_size`'s default is the verb's (eval 64, robust 32)."""
    batch_size: int = option("--batch-size", "", default=64, parse=COUNT, metavar="INTEGER", show_default=True)
    workers: int | None = option("--workers", "Data-loader worker processes (default: available CPUs - 1, max 8).",
                                 parse=p.integer(0, 1024), metavar="INTEGER")


@dataclass(frozen=True)
class AttackLoaderOptions(LoaderOptions):
    batch_size: int = option("--batch-size", "", default=32, parse=COUNT, metavar="INTEGER", show_default=True)


@dataclass(frozen=True)
class ShardOptions(Options):
    shard: object = option("--shard", "Evaluate only the K-th of N disjoint slices (K = 1..N) and write a partial "
                           "result for `nnprobe merge`; `auto` takes K/N from a Slurm array, a Kubernetes indexed "
                           "Job, AWS Batch or Google Cloud Batch (auto/N where only the index is given). {shard} "
                           "in -o and --save-predictions becomes K-of-N.", parse=_shard, metavar="K/N|auto")


@dataclass(frozen=True)
class QuietOptions(Options):
    """Progress on stderr or not (the CLI's business: the Python API takes a progress callback)."""
    quiet: bool = option("--quiet", "No progress on stderr (errors, notes and failed gates are still said).",
                         default=False, parse=p.flag, is_flag=True, long="-q", api=False)


@dataclass(frozen=True)
class ScaleOptions(QuietOptions):
    """How the CLI process itself runs: local workers (--nproc) and progress."""
    nproc: int | None = option("--nproc", "Run N local worker processes (torch's elastic launcher, as torchrun "
                               "does); the exit code, errors and report stay nnprobe's, and the counts equal one "
                               "process's.", parse=p.integer(1, 1024), metavar="N", api=False)
