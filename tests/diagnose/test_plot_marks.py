"""Issue 18 part 5: `--plot` marks every error finding. The walk: every registered check either gives an error
on some corpus run (then the figure of the first such run carries its mark, where the finding's evidence puts
it), or is listed here as one that only warns, or as one whose error no corpus run has (marked as a note,
checked on a made-up finding). Labels never overlap (the figure's text artists' bounding boxes), and each
histogram finding gets its per-layer panel beside the figure."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnprobe import api
from nnprobe.diagnosis.checks import CHECKS
from nnprobe.diagnosis.results import Finding
from nnprobe.report.diagnose_histograms import PANELS
from nnprobe.report.diagnose_marks import finding_mark
from nnprobe.report.diagnose_plots import LABEL_GID, run_figure, write_diagnose_plots

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
RUNS = sorted(p.parent for p in CORPUS.glob("*/EXPECTED.json"))
WARNS_ONLY = {  # checks whose findings are warnings or infos (drawn at their step when they have one)
    "loss-negative", "val-above-train", "plateau", "spikes", "oscillation", "init-loss", "lr-range", "grad-norm",
    "frozen-layer", "dead-relu", "vanishing-gradients", "exploding-gradients", "saturated-activations",
    "poor-initialization", "gpu-utilization", "memory-growth", "log-truncated", "log-corrupt",
    "num-classes-ignored", "run-stopped-early", "run-stalled", "run-restarted", "metric-unrecognised"}
ERROR_NOT_IN_CORPUS = {"log-unreadable": "a corpus run is readable; its error has no step: a note"}


@pytest.fixture(scope="module")
def corpus_errors() -> dict[str, tuple]:
    """check id -> (the first corpus run with an error finding of it, its Diagnosis)."""
    found: dict[str, tuple] = {}
    for run in RUNS:
        result = api.diagnose(str(run))
        for finding in result.findings:
            if finding.severity == "error" and finding.id not in found:
                found[finding.id] = (run, result)
    return found


def test_every_check_is_walked(corpus_errors):
    assert not set(corpus_errors) & WARNS_ONLY, "a check listed as warning-only gives an error: mark it"
    assert set(CHECKS) == set(corpus_errors) | WARNS_ONLY | set(ERROR_NOT_IN_CORPUS)
    assert {"loss-not-finite", "divergence", "overfitting", "constant-prediction", "chance-accuracy"} <= \
        set(corpus_errors)


def expected_mark(finding, run) -> tuple:
    """Where the evidence says the finding is, read here from the evidence's own fields."""
    evidence = finding.evidence
    if finding.id == "overfitting":
        return "finding", evidence["best_at"]["step"]  # the epoch of the lowest validation loss
    if finding.id == "divergence":
        return "finding", evidence["peak_at"]["step"]
    if finding.id == "constant-prediction":
        return "span", evidence["from"]["step"], int(run.series["val_acc"].steps[-1])
    if finding.id == "chance-accuracy":
        return "level", evidence["chance"]
    return "finding", evidence.get("step", (evidence.get("at") or {}).get("step"))


@pytest.mark.parametrize("check_id", sorted(set(CHECKS) - WARNS_ONLY - set(ERROR_NOT_IN_CORPUS)))
def test_the_figure_of_a_run_with_the_error_carries_its_mark(corpus_errors, check_id, tmp_path):
    if check_id not in corpus_errors:
        pytest.fail(f"{check_id}: no corpus run gives its error; list it in ERROR_NOT_IN_CORPUS with why")
    run_path, result = corpus_errors[check_id]
    drawn = write_diagnose_plots(result, str(tmp_path / "run.png"))
    marks = drawn[str(tmp_path / "run.png")]
    for finding in (f for f in result.findings if f.id == check_id and f.severity == "error"):
        want = expected_mark(finding, result.runs[0])
        got = [m for m in marks if m.label == check_id and m.kind == want[0]]
        assert got, (run_path.name, check_id, want)
        if want[0] == "finding":
            assert want[1] in [m.step for m in got]
        elif want[0] == "span":
            assert (got[0].step, got[0].end) == want[1:]
        else:
            assert got[0].value == pytest.approx(want[1])
    if check_id in ("loss-not-finite", "metric-not-finite"):  # and each NaN point of the curves
        run = result.runs[0]
        nan_points = sum(int((~__import__("numpy").isfinite(s.values)).sum()) for role, s in run.series.items()
                         if role in ("train_loss", "val_loss", "train_acc", "val_acc"))
        assert sum(m.kind == "not-finite" for m in marks) == nan_points > 0


def test_an_error_without_a_step_is_a_note():
    run = api.diagnose(str(CORPUS / "jsonl-healthy-adam")).runs[0]
    finding = Finding("log-unreadable", "error", "events.out.tfevents.x could not be read: it is a FIFO.", "", {})
    mark = finding_mark(finding, run)
    assert mark.kind == "note" and mark.text.startswith("log-unreadable: events.out")
    fig, marks = run_figure(run, [finding])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == LABEL_GID]
    assert any("log-unreadable: events.out" in t for t in texts)
    __import__("matplotlib.pyplot").pyplot.close(fig)


def label_boxes(fig) -> list:
    fig.tight_layout()  # what saving does (plots.figure_bytes): the layout made before the labels stays
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts
            if t.get_gid() == LABEL_GID]


def overlapping(boxes) -> list:
    return [(a, b) for i, (a, one) in enumerate(boxes) for b, other in boxes[i + 1:] if one.overlaps(other)]


def test_two_nans_close_together_get_one_label_with_a_count():
    result = api.diagnose(str(CORPUS / "hf-nan"))
    fig, _ = run_figure(result.runs[0], result.findings)
    boxes = label_boxes(fig)
    texts = [text.strip() for text, _ in boxes]
    assert sum(f.id == "loss-not-finite" for f in result.findings) == 2
    assert "loss-not-finite ×2" in texts and overlapping(boxes) == []
    __import__("matplotlib.pyplot").pyplot.close(fig)


def test_many_findings_at_nearby_steps_are_stacked_never_overlapping(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    rows = [{"step": s, "loss": 2.0 / (1 + s / 50), "val_loss": 2.1 / (1 + s / 60), "val_acc": min(0.9, s / 300)}
            for s in range(0, 400, 10)]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = api.diagnose(str(folder)).runs[0]
    findings = [Finding(f"check-{i % 4}", ("error", "warning")[i % 2], "m.", "", {"step": 200 + 7 * i})
                for i in range(12)] + [Finding("loss-not-finite", "error", "m.", "", {"step": s}) for s in (5, 395)]
    fig, marks = run_figure(run, findings)
    boxes = label_boxes(fig)
    assert len(boxes) >= 6 and overlapping(boxes) == []
    assert {m.label for m in marks} >= {f.id for f in findings}
    __import__("matplotlib.pyplot").pyplot.close(fig)


def test_every_histogram_check_has_a_panel():
    histogram_checks = {cid for cid, check in CHECKS.items()
                        if check.func.__module__ == "nnprobe.diagnosis.checks.histograms"}
    assert histogram_checks and histogram_checks <= set(PANELS)


@pytest.mark.parametrize("run_name,check_id", [("tb-hist-dead", "dead-relu"), ("tb-hist-frozen", "frozen-layer"),
                                               ("tb-hist-vanishing", "vanishing-gradients"),
                                               ("wandb-hist-vanishing", "vanishing-gradients"),
                                               ("wandb-hist-frozen", "frozen-layer")])
def test_histogram_findings_get_their_per_layer_panel_beside(run_name, check_id, tmp_path):
    import matplotlib.image

    result = api.diagnose(str(CORPUS / run_name))
    (finding,) = [f for f in result.findings if f.id == check_id]
    drawn = write_diagnose_plots(result, str(tmp_path / "run.png"))
    panel = str(tmp_path / "run.histograms.png")
    assert sorted(drawn) == sorted([str(tmp_path / "run.png"), panel])
    assert matplotlib.image.imread(panel).shape[0] > 100
    named = [tag for key in ("layer", "layers", "frozen", "first_layer")
             for tag in ([finding.evidence[key]] if isinstance(finding.evidence.get(key), str)
                         else finding.evidence.get(key) or [])]
    assert named and set(named) <= {tag for kind, cid, tag in drawn[panel] if cid == check_id}


def test_the_cli_says_where_the_panel_went(tmp_path, invoke):
    run = invoke("diagnose", str(CORPUS / "tb-hist-frozen"), "--plot", str(tmp_path / "run.svg"))
    assert run.returncode == 0 and f"wrote 2 plot(s) to {tmp_path / 'run.svg'} and beside it" in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["run.histograms.svg", "run.svg"]


def test_a_healthy_run_with_histograms_gets_no_panel(tmp_path):
    result = api.diagnose(str(CORPUS / "tb-hist-healthy"))
    assert sorted(write_diagnose_plots(result, str(tmp_path / "run.png"))) == [str(tmp_path / "run.png")]
    assert os.listdir(tmp_path) == ["run.png"]
