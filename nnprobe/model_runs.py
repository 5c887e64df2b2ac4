"""Several models evaluated on the same images in one run (`nnprobe eval --model A --model B`, `--models FILE`,
`--model 'timm:convnext_*'`): one EvalResult per model, each with its own intervals and gates.

The run passes when every model's gates pass; a failed gate is named with its model (`timm:x: min-top1`), so
the exit code's reason says which model failed. Torch-free.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nnprobe.results import SCHEMA_VERSION, EvalResult, Gate


@dataclass(frozen=True)
class ModelRuns:
    """One EvalResult per model, in the order the models were given."""

    runs: tuple[EvalResult, ...]

    @property
    def gates(self) -> tuple[Gate, ...]:
        """Every model's gates, each named and worded with its model."""
        return tuple(dataclasses.replace(g, name=f"{r.model.spec}: {g.name}", message=f"{r.model.spec}: {g.message}")
                     for r in self.runs for g in r.gates)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs)

    @property
    def failed_models(self) -> list[str]:
        return [r.model.spec for r in self.runs if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": "eval-models", "passed": self.passed,
                "failed_models": self.failed_models, "models": [r.to_dict() for r in self.runs]}
