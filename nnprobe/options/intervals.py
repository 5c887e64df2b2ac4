"""How sure the numbers are and how an export is checked against its source: --confidence (every interval),
--bootstrap-resamples (BootstrapOptions: the corruption sweep, whose --seed is its own), and eval's --reference-model with its gates --max-flips and --max-logit-diff."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.errors import UsageError
from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option
from nnprobe.options.model import spec


def confidence(value, flag: str) -> float:
    """A level strictly between 0 and 1 (the same rule as nnprobe.intervals.check_confidence)."""
    level = p.number()(value, flag)
    if not 0.0 < level < 1.0:
        raise UsageError(f"{flag} must be strictly between 0 and 1 (such as 0.95), got {value!r}.")
    return level


@dataclass(frozen=True)
class ConfidenceOptions(Options):
    confidence: float = option("--confidence", "Level of every interval: exact Clopper-Pearson on counts, bootstrap "
                               "on means, Newcombe on deltas.", default=0.95, parse=confidence, metavar="FLOAT",
                               show_default=True)


@dataclass(frozen=True)
class BootstrapOptions(ConfidenceOptions):
    bootstrap_resamples: int = option("--bootstrap-resamples", "Bootstrap resamples of the intervals on means over "
                                      "images (eval's calibration; the corruption sweep's mean top-1 and mCE), "
                                      "seeded by --seed.", default=1000, parse=p.integer(10, 100_000),
                                      metavar="INTEGER", show_default=True)


@dataclass(frozen=True)
class IntervalOptions(BootstrapOptions):
    seed: int = option("--seed", "Seed of the bootstrap resamples.", default=0, parse=p.integer(0, 2**63 - 1),
                       metavar="INTEGER", show_default=True)


@dataclass(frozen=True)
class ParityOptions(Options):
    reference_model: object = option(
        "--reference-model", "Run this model too on the same batches and report, image by image, the top-1 answers "
        "and top-5 sets that changed and the largest logit difference (an export against its source: .onnx, .pt2, "
        "TorchScript, bf16). An .onnx model without preprocessing flags takes the reference's.", parse=spec,
        metavar="SPEC", path=PathKind.INPUT, input_kind="model", maybe_name=True)
    max_flips: int | None = option("--max-flips", "Gate with --reference-model: exit 1 when more than N top-1 answers "
                                   "differ (default 0).", parse=p.integer(0, 2**63 - 1), metavar="N")
    max_logit_diff: float | None = option("--max-logit-diff", "Gate with --reference-model: exit 1 when a logit "
                                          "differs by more than F.", parse=p.number(0.0), metavar="F")

    def check(self) -> None:
        if (self.max_flips is not None or self.max_logit_diff is not None) and self.reference_model is None:
            raise UsageError("--max-flips and --max-logit-diff judge the model against --reference-model: give it.")
