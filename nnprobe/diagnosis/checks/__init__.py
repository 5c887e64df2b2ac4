"""The diagnose checks: one family per module, each check registered under a stable id.

Imported in report order (the loss first, integrity last); importing a module registers its checks.
"""
from nnprobe.diagnosis.checks import nonfinite  # noqa: F401,I001
from nnprobe.diagnosis.checks import accuracy  # noqa: F401
from nnprobe.diagnosis.checks import generalization  # noqa: F401
from nnprobe.diagnosis.checks import dynamics  # noqa: F401
from nnprobe.diagnosis.checks import histograms  # noqa: F401
from nnprobe.diagnosis.checks import system  # noqa: F401
from nnprobe.diagnosis.checks import initial_loss  # noqa: F401
from nnprobe.diagnosis.checks import optimizer  # noqa: F401
from nnprobe.diagnosis.checks import integrity  # noqa: F401
from nnprobe.diagnosis.checks import names  # noqa: F401
from nnprobe.diagnosis.checks.registry import CHECKS, Check, Flag, RunContext, Skip, register, run_checks

__all__ = ["CHECKS", "Check", "Flag", "RunContext", "Skip", "register", "run_checks"]
