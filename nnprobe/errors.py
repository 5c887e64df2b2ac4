"""One exception family for the whole library, and the exit codes the CLI maps it to.

Library code raises an `NnprobeError` subclass carrying one actionable sentence; only the CLI root turns
it into an exit code (sqlfluff/ruff style), so the core never prints and never exits.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1  # a threshold (--min-top1, --fail-on ...) was not met
    USAGE = 2  # bad option, unreadable or invalid input
    INTERNAL = 3  # a bug: traceback only with --debug


class NnprobeError(Exception):
    """Base class: the message is one sentence a user can act on."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(NnprobeError):
    """An option or combination of options that cannot work."""


class InputError(NnprobeError):
    """A file or folder given by the user cannot be read or is not what it claims to be."""


class ModelLoadError(InputError):
    """A --model/--weights spec could not be turned into a classifier."""


class UnsafeCheckpointError(ModelLoadError):
    """A checkpoint needs full unpickling (which can run code) and --trust-pickle was not given."""


class WeightsUnavailableError(ModelLoadError):
    """Pretrained weights are not in the local cache and cannot be downloaded (offline)."""


class DataError(InputError):
    """A data set folder, labels file or image is unusable."""
