"""Issue 18 (d): the corpus of real runs (samples/corpus, made by samples/make_corpus_runs.py: tiny models
trained for real on scikit-learn's digits, logged by nine real loggers) scored against the verdict each run
was made to have. Reads logs only. Healthy runs: no error and no warning; a pathology: every expected
error id, and no error beyond those its cause may bring (`allowed`); the corrupt data block: its warning."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nnprobe.diagnosis import diagnose

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
RUNS = sorted(p.parent for p in CORPUS.glob("*/EXPECTED.json"))


def expected(run: Path) -> dict:
    return json.loads((run / "EXPECTED.json").read_text())


def test_the_corpus_is_what_the_issue_asks_for():
    records = [expected(run) for run in RUNS]
    assert len(records) >= 100
    assert len({r["logger"] for r in records}) >= 8
    assert sum(r["verdict"] == "healthy" for r in records) >= 30
    size = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    assert size < 30 * 2**20, size


def test_every_expectation_is_the_generators_not_an_edit():
    sys.path.insert(0, str(CORPUS.parent))
    import make_corpus_runs as generator

    for run in RUNS:
        record = expected(run)
        (case,) = [c for c in generator.cases_for(record["logger"]) if run.name == f"{record['logger']}-{c.name}"]
        assert (record["verdict"], record["errors"], record["allowed"], record["warnings"]) == \
            (case.verdict, list(case.errors), list(case.allowed), list(case.warnings)), run.name


def verdict(run: Path) -> tuple[bool, str]:
    record = expected(run)
    result = diagnose(run)
    errors = {f.id for f in result.findings if f.severity == "error"}
    warnings = {f.id for f in result.findings if f.severity == "warning"}
    if record["verdict"] == "healthy":
        right = not errors and not warnings
    elif record["verdict"] == "warning":
        right = not errors - set(record["allowed"]) and set(record["warnings"]) <= warnings
    else:
        right = set(record["errors"]) <= errors <= set(record["errors"]) | set(record["allowed"]) and \
            set(record["warnings"]) <= warnings
    return right and len(result.runs) == 1, f"{run.name}: errors {sorted(errors)}, warnings {sorted(warnings)}, " \
                                            f"expected {record['verdict']} {record['errors']}"


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_each_run_gets_its_verdict(run):
    right, said = verdict(run)
    assert right, said
