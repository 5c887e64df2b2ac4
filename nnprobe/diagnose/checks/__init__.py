"""The diagnose checks: one family per module, each check registered under a stable id.

Imported in report order (the loss first, integrity last); importing a module registers its checks.
"""
from nnprobe.diagnose.checks import nonfinite  # noqa: F401,I001
from nnprobe.diagnose.checks import accuracy  # noqa: F401
from nnprobe.diagnose.checks import generalization  # noqa: F401
from nnprobe.diagnose.checks import dynamics  # noqa: F401
from nnprobe.diagnose.checks import initial_loss  # noqa: F401
from nnprobe.diagnose.checks import optimizer  # noqa: F401
from nnprobe.diagnose.checks import integrity  # noqa: F401
from nnprobe.diagnose.checks.registry import CHECKS, Check, Flag, RunContext, Skip, register, run_checks

__all__ = ["CHECKS", "Check", "Flag", "RunContext", "Skip", "register", "run_checks"]
