"""Numbers the library refuses itself, so the Python API is as safe as the CLI (whose options check the
same bounds): an impossible value is a one-sentence UsageError, never a DataLoader or torch error. Also the
one sentence eval, robust and fool give when a model's logits are NaN or infinite."""
from __future__ import annotations

from nnprobe.errors import NnprobeError, UsageError

MAX_SEED = 2**63 - 1


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_workers(workers: int | None) -> None:
    if workers is not None and (not _whole(workers) or workers < 0):
        raise UsageError(f"--workers must be 0 or more data-loader processes, got {workers!r}.")


def check_batch_size(batch_size: int) -> None:
    if not _whole(batch_size) or batch_size < 1:
        raise UsageError(f"--batch-size must be a positive number of images, got {batch_size!r}.")


def check_seed(seed: int | None) -> None:
    if seed is not None and (not _whole(seed) or not 0 <= seed <= MAX_SEED):
        raise UsageError(f"--seed must be a whole number from 0 to 2**63-1, got {seed!r}.")


def nonfinite_error(count: int, total: int, precision: str, what: str = "images",
                    result: str = "accuracy") -> NnprobeError:
    """The one sentence for NaN/Inf logits: no accuracy (or verdict) is ever computed from them."""
    if precision != "fp32":
        hint = f"--precision {precision} runs under autocast, which can overflow to Inf: rerun with --precision fp32"
    else:
        hint = "check the model and its weights (NaN parameters, a layer that overflows)"
    return NnprobeError(f"The model gave NaN or infinite logits for {count} of {total} {what}, so no {result} is "
                        f"computed from them; {hint}.")
