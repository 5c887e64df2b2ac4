"""What `diagnose` returns: findings with evidence and a fix hint, per-check outcomes (skips are data),
what was read and how metrics were mapped. Frozen dataclasses; `to_dict` is the JSON report."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nnprobe.results import SCHEMA_VERSION, to_jsonable

SEVERITIES = ("info", "warning", "error")
FAIL_LEVELS = ("error", "warning", "never")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def reaches(severity: str, fail_on: str) -> bool:
    """Whether a finding of `severity` fails a gate set at `fail_on` (error | warning | never)."""
    return fail_on != "never" and severity_rank(severity) >= severity_rank(fail_on)


@dataclass(frozen=True)
class Finding:
    """One thing that went wrong (or is worth knowing) in one run."""

    id: str  # the check's stable id, e.g. loss-not-finite
    severity: str  # error | warning | info
    message: str
    hint: str
    evidence: dict[str, Any] = field(default_factory=dict)  # series, step, epoch, values ...
    run: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    """How one check ended on one run: passed, flagged (findings) or skipped (reason says which metric
    was missing), so a check that could not run is never mistaken for a pass."""

    id: str
    title: str
    status: str  # passed | flagged | skipped
    reason: str = ""
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class SourceRead:
    """One file that was read: its format, what it held, and the damage found."""

    path: str
    format: str
    records: int
    points: int
    series: tuple[str, ...]
    issues: tuple[dict[str, Any], ...] = ()
    skipped: str = ""  # why the file gave nothing, when it did not


@dataclass(frozen=True)
class RoleMapping:
    """Which series plays a role (train_loss, val_acc ...), where from, and any rescaling said aloud."""

    role: str
    series: str | None
    source: str = ""
    points: int = 0
    note: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class RunReport:
    path: str
    sources: tuple[SourceRead, ...]
    ignored: tuple[tuple[str, str], ...]
    mapping: tuple[RoleMapping, ...]
    num_classes: int | None
    num_classes_source: str
    outcomes: tuple[CheckOutcome, ...]
    curves: dict[str, tuple[float, ...]] = field(default_factory=dict)  # downsampled, for sparklines
    superseded: int = 0  # points replaced by restarts
    summary: dict[str, float | None] = field(default_factory=dict)  # best val_acc and where (diagnosis.summary)
    series: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # role -> Series, for
    # plots and the baseline comparison; in memory only (not in the JSON)
    histograms: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # tag ->
    # [HistogramStats], for --plot's per-layer panel; in memory only

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for outcome in self.outcomes for f in outcome.findings)


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on every run under one path."""

    path: str
    runs: tuple[RunReport, ...]
    fail_on: str = "error"
    extra_findings: tuple[Finding, ...] = ()  # from probes beyond the logs (e.g. a model's predictions)
    seconds: float = 0.0
    comparison: Any = None  # with a baseline (diagnose --baseline): the comparison.Comparison against it

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for run in self.runs for f in run.findings) + self.extra_findings

    @property
    def failed(self) -> bool:
        return any(reaches(f.severity, self.fail_on) for f in self.findings) or \
            (self.comparison is not None and not self.comparison.passed)

    def with_findings(self, findings: tuple[Finding, ...] | list[Finding]) -> Diagnosis:
        """A copy with more findings appended (probes that need a model add theirs this way)."""
        return dataclasses.replace(self, extra_findings=self.extra_findings + tuple(findings))

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in reversed(SEVERITIES)}

    def run_findings(self, run: RunReport) -> tuple[Finding, ...]:
        """A run's findings, with the probe findings that name it."""
        return run.findings + tuple(f for f in self.extra_findings if f.run == run.path)

    def run_failed(self, run: RunReport) -> bool:
        return any(reaches(f.severity, self.fail_on) for f in self.run_findings(run))

    def _summary_fields(self, run: RunReport) -> dict[str, Any]:
        """A run's line in the summary across runs: its metric summary, finding counts and verdict."""
        found = self.run_findings(run)
        return {"summary": to_jsonable(run.summary),
                "counts": {s: sum(f.severity == s for f in found) for s in reversed(SEVERITIES)},
                "failed": self.run_failed(run)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "diagnose",
            "path": self.path,
            "fail_on": self.fail_on,
            "failed": self.failed,
            "counts": self.counts(),
            "findings": [to_jsonable(f) for f in self.findings],
            "skipped": [{"run": run.path, "id": o.id, "reason": o.reason}
                        for run in self.runs for o in run.outcomes if o.status == "skipped"],
            "runs": [
                {
                    "path": run.path,
                    "sources": to_jsonable(run.sources),
                    "ignored": [{"path": p, "reason": r} for p, r in run.ignored],
                    "mapping": to_jsonable(run.mapping),
                    "num_classes": run.num_classes,
                    "num_classes_source": run.num_classes_source,
                    "superseded_points": run.superseded,
                    "checks": [{"id": o.id, "status": o.status, "reason": o.reason} for o in run.outcomes],
                    "curves": to_jsonable(run.curves),
                    **(self._summary_fields(run) if run.summary else {}),
                }
                for run in self.runs
            ],
            **({"baseline": self.comparison.to_dict()} if self.comparison is not None else {}),
            "seconds": self.seconds,
        }
