"""Several runs in one `diagnose`: a summary table across runs (before the per-run details), per-run
summary fields in the JSON, and one summary function shared with `compare`. Expected values come from
the rows the tests write, found with plain loops."""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os

import pytest
from rich.console import Console

from nnprobe import api
from nnprobe.cli import main
from nnprobe.errors import UsageError


def rows(n: int = 12, nan_at: tuple[int, ...] = (), peak: int | None = None) -> list[dict]:
    """One JSON line per epoch (step 100 per epoch); after epoch `peak` validation accuracy falls."""
    out = []
    for e in range(n):
        val_acc = 0.85 - 0.6 * math.exp(-0.4 * e) - (0.03 * (e - peak) if peak is not None and e > peak else 0)
        out.append({"step": 100 * (e + 1), "epoch": e, "train_loss": 2.3 * math.exp(-0.35 * e) + 0.15,
                    "val_loss": 2.2 * math.exp(-0.3 * e) + 0.35, "val_acc": val_acc,
                    "train_acc": 0.9 - 0.7 * math.exp(-0.4 * e)})
        if e in nan_at:
            out[-1]["train_loss"] = float("nan")
    return out


def write_run(folder, run_rows) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in run_rows)
    return str(folder)


def best_of(run_rows) -> tuple[float, int, int]:
    """(best val_acc, its epoch, its step) by a plain loop (the first best on ties)."""
    best = None
    for r in run_rows:
        if best is None or r["val_acc"] > best[0]:
            best = (r["val_acc"], r["epoch"], r["step"])
    return best


@pytest.fixture()
def three(tmp_path):
    made = {"a": rows(), "b": rows(nan_at=(7, 8)), "c": rows(peak=5)}
    return {name: (write_run(tmp_path / "runs" / name, r), r) for name, r in made.items()}


def invoke(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_several_paths_make_one_diagnosis_named_by_path(three):
    paths = [p for p, _ in three.values()]
    result = api.diagnose(paths)
    assert [run.path for run in result.runs] == paths
    for run, (_, run_rows) in zip(result.runs, three.values()):
        best, epoch, step = best_of(run_rows)
        assert run.summary["best val_acc"] == pytest.approx(best, rel=1e-12)
        assert run.summary["best val_acc epoch"] == epoch and run.summary["best val_acc step"] == step
        assert run.summary["last step"] == run_rows[-1]["step"]
        assert run.summary["lowest val_loss"] == pytest.approx(min(r["val_loss"] for r in run_rows), rel=1e-12)
        assert all(f.run == run.path for f in run.findings)
    errors = [(f.run, f.id) for f in result.findings if f.severity == "error"]
    assert errors == [(three["b"][0], "loss-not-finite")]


def test_json_runs_carry_summary_counts_and_verdict(three, capsys):
    code, out, _ = invoke(capsys, *[p for p, _ in three.values()], "--format", "json")
    assert code == 1
    body = json.loads(out)
    assert [r["path"] for r in body["runs"]] == [p for p, _ in three.values()]
    by_path = {r["path"]: r for r in body["runs"]}
    for name, (path, run_rows) in three.items():
        run = by_path[path]
        assert run["summary"]["best val_acc"] == pytest.approx(best_of(run_rows)[0], rel=1e-12)
        errors = sum(f["severity"] == "error" and f["run"] == path for f in body["findings"])
        assert run["counts"]["error"] == errors == (1 if name == "b" else 0)
        assert run["failed"] is (name == "b")


def test_summary_table_comes_first_with_one_row_per_run(three, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short run names: one table line per run
    code, out, _ = invoke(capsys, "runs/a", "runs/b", "runs/c")
    assert code == 1
    header = out.index("best val_acc")
    assert header < out.index("Run runs/a")
    lines = [line for line in out[header:out.index("Run runs/a")].splitlines() if "runs/" in line]
    assert [line.split()[1] for line in lines] == ["runs/a", "runs/b", "runs/c"]
    assert [line.split()[-2] for line in lines] == ["passed", "FAILED", "passed"]
    for line, (_, run_rows) in zip(lines, three.values()):
        best, epoch, step = best_of(run_rows)
        errors = 1 if "runs/b" in line else 0  # NaN train loss at epochs 7 and 8: one loss-not-finite finding
        cells = [c.strip() for c in line.split("│")[1:-1]]
        assert cells[1:] == [f"{best:.4f}", str(epoch), str(step), str(errors), "0",
                             "FAILED" if errors else "passed"]


def test_a_parent_of_version_folders_is_summarised_per_run(tmp_path, capsys):
    made = {"version_0": rows(), "version_1": rows(peak=3)}
    for name, r in made.items():
        write_run(tmp_path / "lightning_logs" / name, r)
    result = api.diagnose(str(tmp_path / "lightning_logs"))
    assert sorted(run.path for run in result.runs) == sorted(made)
    for run in result.runs:
        assert run.summary["best val_acc"] == pytest.approx(best_of(made[run.path])[0], rel=1e-12)
    code, out, _ = invoke(capsys, tmp_path / "lightning_logs")
    assert code == 0 and out.index("best val_acc") < out.index("Run version_0")


def test_one_run_renders_exactly_as_before(three):
    """The summary table is for several runs: one run's table is the same as without any summary."""
    from nnprobe.report.diagnose_table import render

    result = api.diagnose(three["b"][0])
    bare = dataclasses.replace(result, runs=tuple(dataclasses.replace(r, summary={}) for r in result.runs))

    def text(diagnosis) -> str:
        console = Console(file=io.StringIO(), width=120, color_system=None)
        render(diagnosis, console)
        return console.file.getvalue()
    assert text(result) == text(bare)
    assert "best val_acc" not in text(result)


def test_the_same_run_twice_is_refused(three):
    path = three["a"][0]
    with pytest.raises(UsageError, match="given twice"):
        api.diagnose([path, path + "/"])


def test_a_parent_beside_a_run_names_its_runs_under_it(tmp_path):
    write_run(tmp_path / "logs" / "version_0", rows())
    write_run(tmp_path / "logs" / "version_1", rows(nan_at=(3,)))
    single = write_run(tmp_path / "other", rows())
    result = api.diagnose([str(tmp_path / "logs"), single])
    parent = str(tmp_path / "logs")
    assert sorted(run.path for run in result.runs) == sorted([os.path.join(parent, "version_0"),
                                                              os.path.join(parent, "version_1"), single])
    assert [f.run for f in result.findings if f.severity == "error"] == [os.path.join(parent, "version_1")]
