"""What several models are: a many-model eval (ModelRuns) and the models that load offline (ModelCatalog).

Several models evaluated on the same images in one run (`nnprobe eval --model A --model B`, `--models FILE`,
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
    names: tuple[str, ...]  # each model as the user named it (a state dict's file, not its --arch)

    @property
    def named(self) -> list[tuple[str, EvalResult]]:
        return list(zip(self.names, self.runs))

    @property
    def gates(self) -> tuple[Gate, ...]:
        """Every model's gates, each named and worded with its model."""
        return tuple(dataclasses.replace(g, name=f"{name}: {g.name}", message=f"{name}: {g.message}")
                     for name, r in self.named for g in r.gates)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs)

    @property
    def failed_models(self) -> list[str]:
        return [name for name, r in self.named if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": "eval-models", "passed": self.passed,
                "failed_models": self.failed_models, "names": list(self.names),
                "models": [dict(r.to_dict(), name=name) for name, r in self.named]}


@dataclass(frozen=True)
class CatalogEntry:
    """One model `nnprobe models` found loadable offline, and the preprocessing it would get."""

    spec: str  # what --model takes
    source: str  # embedded | torchvision | timm | file
    weights: str  # the weights' name (torchvision enum, timm hub id) or the file
    where: str  # the cached file or the local path
    resize: int | None
    crop: int | None
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing_from: str  # the metadata it comes from (weights.transforms(), pretrained_cfg, flags)


@dataclass(frozen=True)
class ModelCatalog:
    """`nnprobe models [PATTERN]`: what loads without a download, where it was looked for."""

    pattern: str | None
    entries: tuple[CatalogEntry, ...]
    searched: dict[str, str]  # cache name -> folder looked in

    passed = True  # a listing judges nothing: no gate

    @property
    def gates(self) -> tuple:
        return ()

    def to_dict(self) -> dict[str, Any]:
        from nnprobe.results import to_jsonable

        return {"schema_version": SCHEMA_VERSION, "kind": "models", **to_jsonable(self)}
