"""What `nnprobe merge` and `nnprobe compare` read, and merge's gates (a gate judges the whole data set)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, argument, option
from nnprobe.options.corruptions import perturbation_baseline_option
from nnprobe.options.gates import EvalGates, robust_floors


def result_or_object(value, flag: str):
    """A result JSON path, or (Python API) a dict of that shape or a result object."""
    if isinstance(value, (str, os.PathLike)):
        return p.path(value, flag)
    return value


def parts(value, flag: str) -> tuple:
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    return tuple(result_or_object(item, flag) for item in items)


@dataclass(frozen=True)
class MergeInputs(Options):
    parts: tuple = argument("PART...", "", default=(), parse=parts, nargs=-1, required=True, path=PathKind.INPUT,
                            remote_ok=True,
                            input_kind="result", what="Result")
    perturbation_baseline: object = perturbation_baseline_option(
        "robust --corruptions parts with --perturbations: each merged flip probability and top-5 distance divided "
        "by this reference model's whole run (as the corruption sweep's option); slices run with one carry it.")


@dataclass(frozen=True)
class MergeGates(EvalGates):
    min_robust_top1: dict = option("--min-robust-top1", "Gate (robust parts): exit 1 when the merged robust top-1 "
                                   "at EPS is below F. Repeatable.", default=None, parse=robust_floors,
                                   metavar="EPS=F", multiple=True)
    min_corruption_top1: float | None = option("--min-corruption-top1", "Gate (robust --corruptions parts): exit 1 "
                                               "when the merged mean corruption top-1 is below F.", parse=p.fraction,
                                               metavar="F", once=True)
    allow_version_mismatch: bool = option("--allow-version-mismatch", "Merge slices written by different nnprobe, "
                                          "torch or torchvision versions (refused by default).", default=False,
                                          parse=p.flag, is_flag=True)


@dataclass(frozen=True)
class CompareInputs(Options):
    baseline: object = argument("BASELINE", "", parse=result_or_object, required=True, path=PathKind.INPUT,
                                input_kind="result", run_ok=True)
    candidate: object = argument("CANDIDATE", "", parse=result_or_object, required=True, path=PathKind.INPUT,
                                 input_kind="result", run_ok=True)
