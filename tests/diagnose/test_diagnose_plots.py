"""`diagnose --plot DIR`: one decodable PNG per run, with the NaN/Inf points, the findings and the best
epoch marked where the logs put them (checked through the marks each drawing returns, against the steps
the test wrote); matplotlib only when asked; the folder guard."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from nnprobe import api
from nnprobe.cli import main
from nnprobe.report.diagnose_marks import MARKERS, finding_step, plot_file_names
from nnprobe.report.diagnose_plots import write_diagnose_plots

NAN_TRAIN = (14, 15, 16)  # train-loss rows (per step) written as NaN / Inf
NAN_VAL_EPOCH = 7  # validation loss NaN at this epoch


def write_run(folder, broken: bool) -> tuple[str, list[dict]]:
    """Train rows every 50 steps, validation rows every epoch (100 steps); `broken` puts NaN/Inf in."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for i in range(20):
        value = 2.3 * math.exp(-0.2 * i) + 0.2
        if broken and i in NAN_TRAIN:
            value = float("inf") if i == 15 else float("nan")
        rows.append({"step": 50 * i, "train_loss": value})
        if i % 2 == 1:
            e = i // 2
            val_loss = float("nan") if broken and e == NAN_VAL_EPOCH else 2.0 * math.exp(-0.25 * e) + 0.4
            rows.append({"step": 50 * i, "epoch": e, "val_loss": val_loss,
                         "val_acc": 0.8 - 0.5 * math.exp(-0.5 * e) - (0.02 * (e - 6) if e > 6 else 0)})
    with open(os.path.join(folder, "metrics.jsonl"), "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    return str(folder), rows


@pytest.fixture()
def two(tmp_path):
    return [write_run(tmp_path / "runs" / "ok", False), write_run(tmp_path / "runs" / "bad", True)]


def test_one_png_per_run_with_marks_at_the_written_steps(two, tmp_path):
    import matplotlib.image

    result = api.diagnose([path for path, _ in two])
    (tmp_path / "plots").mkdir()
    drawn = write_diagnose_plots(result, str(tmp_path / "plots" / "run.png"))
    assert sorted(os.listdir(tmp_path / "plots")) == ["run.bad.png", "run.ok.png"]  # the runs' last path parts
    assert len(drawn) == 2
    for (path, rows), run in zip(two, result.runs):
        png = os.path.join(tmp_path / "plots", "run." + plot_file_names([run.path])[run.path])
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        marks = drawn[png]
        bad = sorted((role, r["step"]) for r in rows for role in ("train_loss", "val_loss")
                     if role in r and not math.isfinite(r[role]))
        assert sorted((m.label, m.step) for m in marks if m.kind == "not-finite") == bad
        accs = [r for r in rows if "val_acc" in r]
        best = max(accs, key=lambda r: r["val_acc"])
        assert [(m.label, m.step) for m in marks if m.kind == "best"] == [("val_acc", best["step"])]
        assert sorted(m.label for m in marks if m.kind not in ("not-finite", "best")) == \
            sorted(f.id for f in result.run_findings(run) if finding_step(f) is not None or f.severity == "error"
                   or f.id in MARKERS)
    bad_marks = drawn[os.path.join(tmp_path / "plots", "run.bad.png")]
    first_nan = {("loss-not-finite", 50 * NAN_TRAIN[0]), ("loss-not-finite", 100 * NAN_VAL_EPOCH + 50)}
    assert first_nan <= {(m.label, m.step) for m in bad_marks if m.kind == "finding"}
    assert len([m for m in bad_marks if m.kind == "not-finite"]) == len(NAN_TRAIN) + 1


def test_file_names_are_short_safe_unique_and_stable():
    names = ["runs/a", "other/a", "RUNS/A", "../x", "..", "a b/c:d", "lightning_logs/version_0"]
    files = plot_file_names(names)
    assert len(set(f.lower() for f in files.values())) == len(names)
    assert files["../x"] == "x.png" and files["a b/c:d"] == "c_d.png" and files["lightning_logs/version_0"] == \
        "version_0.png"
    assert files["runs/a"].startswith("a-") and len(files["runs/a"]) == len("a-12345678.png")
    assert plot_file_names(["runs/a", "other/a"])["runs/a"] == files["runs/a"]  # only the path sets its hash
    assert plot_file_names(["runs/a", "b"])["runs/a"] == "a.png"
    for name in files.values():
        assert name.endswith(".png") and "/" not in name and not name.startswith(".")
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def invoke(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_writes_the_plots_and_keeps_the_exit_code(two, tmp_path, capsys):
    (tmp_path / "new").mkdir()
    code, _, err = invoke(capsys, *[p for p, _ in two], "--plot", tmp_path / "new" / "curves.svg")
    assert code == 1 and "wrote 2 plot(s) beside" in err  # --plot FILE: one figure a run, beside it
    written = sorted(os.listdir(tmp_path / "new"))
    assert len(written) == 2 and all(f.startswith("curves.") and f.endswith(".svg") for f in written)
    assert all((tmp_path / "new" / f).read_bytes().startswith(b"<?xml") for f in written)


@pytest.mark.parametrize("where", ["inside", "parent", "file"])
def test_plot_folder_guard(two, tmp_path, capsys, where):
    ok = two[0][0]
    target = {"inside": os.path.join(ok, "plots.png"), "parent": str(tmp_path / "runs" / "curves.png"),
              "file": os.path.join(ok, "metrics.jsonl")}[where]
    before = sorted(os.listdir(ok))
    code, _, err = invoke(capsys, ok, "--plot", target)
    assert code == 2 and "--plot" in err
    assert sorted(os.listdir(ok)) == before


def test_matplotlib_is_imported_only_for_plots(two):
    code = ("import sys; from nnprobe import api; api.diagnose(sys.argv[1]); "
            "assert 'matplotlib' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code, two[1][0]], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
