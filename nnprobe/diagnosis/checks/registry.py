"""The check registry: each check registers by decorator under a stable id (a duplicate id raises), names
the metric roles it needs, and returns flags; the registry turns them into findings or a skip."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnprobe.diagnosis.results import SEVERITIES, CheckOutcome, Finding
from nnprobe.diagnosis.roles import HINTS
from nnprobe.diagnosis.series import Series


@dataclass(frozen=True)
class Flag:
    """What a check returns: the registry adds the check's id and the run."""

    severity: str
    message: str
    hint: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """Raised by a check that cannot judge this run (too few points ...): the reason is reported."""


@dataclass(frozen=True, eq=False)
class RunContext:
    """Everything a check may look at for one run."""

    path: str
    roles: dict[str, Series]
    series: dict[str, Series]
    num_classes: int | None
    num_classes_source: str  # --num-classes | hparams.yaml | config.json | inferred ... | unknown
    issues: tuple = ()  # ReadIssue
    meta: dict[str, Any] = field(default_factory=dict)
    superseded: int = 0
    histograms: dict[str, list] = field(default_factory=dict)  # tag -> [HistogramStats] (TensorBoard histo)
    unplaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (logged name, meant spelling):
    # a role no series plays because its name is misspelt (roles.unplaced)

    @property
    def num_classes_trusted(self) -> bool:
        """K given or saved by the user, not guessed from the first loss."""
        return self.num_classes is not None and not self.num_classes_source.startswith("inferred")

    @property
    def last_step(self) -> int:
        return max((int(s.steps[-1]) for s in self.series.values() if len(s)), default=0)


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    func: Callable[[RunContext], Iterable[Flag]]
    requires: tuple[str, ...] = ()  # every one of these roles
    any_of: tuple[str, ...] = ()  # at least one of these roles
    needs_num_classes: bool = False  # K known (inferred K counts unless trusted_num_classes)
    trusted_num_classes: bool = False  # K must come from the user or saved hparams, not the first loss


CHECKS: dict[str, Check] = {}


def register(id: str, *, title: str, requires: tuple[str, ...] = (), any_of: tuple[str, ...] = (),
             needs_num_classes: bool = False, trusted_num_classes: bool = False):
    def decorator(func: Callable[[RunContext], Iterable[Flag]]):
        if id in CHECKS:
            raise ValueError(f"diagnose check id {id!r} is registered twice")
        CHECKS[id] = Check(id, title, func, tuple(requires), tuple(any_of), needs_num_classes,
                           trusted_num_classes)
        return func

    return decorator


def missing_roles(check: Check, ctx: RunContext) -> list[str]:
    """The roles whose absence skips `check` on this run (every one of `requires`, all of `any_of`)."""
    missing = [role for role in check.requires if role not in ctx.roles]
    if check.any_of and not any(role in ctx.roles for role in check.any_of):
        missing += list(check.any_of)
    return missing


def _missing_reason(check: Check, ctx: RunContext) -> str | None:
    missing = [role for role in check.requires if role not in ctx.roles]
    if check.any_of and not any(role in ctx.roles for role in check.any_of):
        missing.append(" or ".join(check.any_of))
    if missing:
        examples = "; ".join(f"{r} e.g. {HINTS[r]}" for r in check.requires + check.any_of if r not in ctx.roles)
        misspelt = [f"'{ctx.unplaced[r][0]}' was not recognised (did you mean '{ctx.unplaced[r][1]}'?)"
                    for r in missing_roles(check, ctx) if r in ctx.unplaced]
        return f"no {', '.join(missing)} series ({examples}); " + "; ".join(misspelt + [
            "map one with --metric ROLE=NAME"])
    if check.needs_num_classes and ctx.num_classes is None:
        return "number of classes unknown: pass --num-classes K (or save num_classes in hparams.yaml)"
    if check.trusted_num_classes and not ctx.num_classes_trusted:
        return (f"number of classes only {ctx.num_classes_source}, which would make this check circular: "
                f"pass --num-classes K")
    return None


def plain(value: Any) -> Any:
    """numpy scalars and arrays to Python values, so evidence is JSON-ready."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_checks(ctx: RunContext, ids: Iterable[str] | None = None) -> tuple[CheckOutcome, ...]:
    outcomes = []
    for check in CHECKS.values() if ids is None else (CHECKS[i] for i in ids):
        reason = _missing_reason(check, ctx)
        if reason is None:
            try:
                flags = list(check.func(ctx))
            except Skip as skip:
                reason = str(skip)
        if reason is not None:
            outcomes.append(CheckOutcome(check.id, check.title, "skipped", reason))
            continue
        findings = []
        for flag in flags:
            if flag.severity not in SEVERITIES:
                raise ValueError(f"check {check.id} returned severity {flag.severity!r}")
            findings.append(Finding(check.id, flag.severity, flag.message, flag.hint, plain(flag.evidence),
                                    ctx.path))
        outcomes.append(CheckOutcome(check.id, check.title, "flagged" if findings else "passed",
                                     findings=tuple(findings)))
    return tuple(outcomes)
