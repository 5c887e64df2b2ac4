"""Device and precision resolution: `--device auto|cpu|cuda[:N]|mps`, `--precision fp32|bf16|fp16`."""
from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

from nnprobe.errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> "torch.device":
    """auto picks cuda, then mps, then cpu; an explicit device that is absent is a usage error."""
    import torch

    spec = (spec or "auto").strip().lower()
    if not _DEVICE_RE.match(spec):
        raise UsageError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N, mps.")
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
