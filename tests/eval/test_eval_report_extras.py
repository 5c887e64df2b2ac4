"""eval's calibration, ReaL top-1, error breakdown, --plot and the new gates, end to end through the CLI,
checked against the per-sample rows with plain loops (not against nnprobe's own aggregates)."""
from __future__ import annotations

import json

import pytest
from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders

MODEL = factory_spec("color_net_1000")


@pytest.fixture
def val(tmp_path):
    """8 images (2 painted another class's colour) renamed like ImageNet's validation files."""
    root = make_wnid_folders(tmp_path / "val", {5: 3, 400: 3}, wrong={400: 2})
    for n, path in enumerate(sorted(root.rglob("*.png")), 1):
        path.rename(path.with_name(f"ILSVRC2012_val_{n:08d}.png"))
    return root


def _eval(invoke, val, tmp_path, *extra):
    rows = tmp_path / "rows.jsonl"
    proc = invoke("eval", str(val), "--model", MODEL, *PLAIN_FLAGS, "--workers", "0", "--format", "json",
                  "--save-predictions", str(rows), *extra)
    lines = [json.loads(line) for line in rows.read_text().splitlines()[1:]]
    return proc, lines


def test_calibration_and_errors_agree_with_plain_loops_over_the_rows(invoke, val, tmp_path):
    proc, rows = _eval(invoke, val, tmp_path)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    n = len(rows)
    assert n == 8 and body["calibration"]["nll"] == pytest.approx(sum(r["loss"] for r in rows) / n, abs=1e-5)
    bins = [[] for _ in range(15)]
    for r in rows:  # Guo et al.: bin m holds confidences in ((m-1)/15, m/15]
        bins[max(0, -int(-r["confidence"] * 15 // 1) - 1)].append(r)
    ece = sum(len(b) / n * abs(sum(r["correct"] for r in b) / len(b) - sum(r["confidence"] for r in b) / len(b))
              for b in bins if b)
    assert body["calibration"]["ece"] == pytest.approx(ece, abs=1e-5)
    assert [b["count"] for b in body["calibration"]["bins"]] == [len(b) for b in bins]
    wrong = [(r["label"], r["top5"][0]) for r in rows if not r["correct"]]
    assert [(p["true_index"], p["predicted_index"], p["count"]) for p in body["confused_pairs"]] == \
           [(400, 900, 2)] == [(a, b, wrong.count((a, b))) for a, b in sorted(set(wrong))]


def test_real_labels_count_only_labelled_images(invoke, val, tmp_path):
    real = [[5], [5, 17], [], [400], [400], [400], [900, 400], [3]]  # by file number 1..8
    (tmp_path / "real.json").write_text(json.dumps(real))
    proc, rows = _eval(invoke, val, tmp_path, "--real-labels", str(tmp_path / "real.json"))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    expected = [(r["top5"][0] in real[int(r["path"][-12:-4]) - 1]) for r in rows if real[int(r["path"][-12:-4]) - 1]]
    assert (body["real"]["correct_top1"], body["real"]["total"]) == (sum(expected), len(expected)) == (
        sum(expected), 7)
    assert body["real"]["top1"] == pytest.approx(sum(expected) / 7)
    table = invoke("eval", str(val), "--model", MODEL, *PLAIN_FLAGS, "--workers", "0", "--real-labels",
                   str(tmp_path / "real.json"))
    assert "ReaL top-1" in table.stdout and "ECE (15 bins)" in table.stdout and "most confused" in table.stdout


def test_gates_plot_and_refusals(invoke, val, tmp_path):
    proc, rows = _eval(invoke, val, tmp_path, "--min-class-top1", "0.7", "--max-ece", "1", "--plot",
                       str(tmp_path / "plots.png"))
    assert proc.returncode == 1  # class 400: 3/5 right
    gates = {g["name"]: g for g in json.loads(proc.stdout)["gates"]}
    assert gates["max-ece"]["passed"] and not gates["min-class-top1"]["passed"]
    assert gates["min-class-top1"]["measured"] == pytest.approx(3 / 5)
    for name in ("plots.reliability.png", "plots.per_class.png"):  # --plot FILE: several figures beside it
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    inside = invoke("eval", str(val), "--model", MODEL, *PLAIN_FLAGS, "--plot", str(val / "plots.png"))
    assert inside.returncode == 2 and not list(val.glob("plots*"))
    bad = invoke("eval", str(val), "--model", MODEL, *PLAIN_FLAGS, "--max-ece", "2")
    assert bad.returncode == 2 and "--max-ece" in bad.stderr
    (tmp_path / "real.json").write_text("[[1], oops")
    broken = invoke("eval", str(val), "--model", MODEL, *PLAIN_FLAGS, "--real-labels", str(tmp_path / "real.json"))
    assert broken.returncode == 2 and "real.json" in broken.stderr and "Traceback" not in broken.stderr


def test_a_permuted_class_map_is_explained_and_its_fix_restores_top1(invoke, tmp_path):
    """Folders named 0..3 but mapped in the wrong order: eval says so, writes the --class-map to use, and
    that map, applied, gives the top-1 of the right mapping."""
    from helpers import solid_image
    from tiny_models import class_color

    truth = {"0": 10, "1": 20, "2": 30, "3": 40}  # folder -> the class its images really show
    for folder, k in truth.items():
        for i in range(6):
            solid_image(tmp_path / "data" / folder / f"{i}.png", class_color(k), size=(40 + i, 40))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("".join(f"{f},{k}\n" for f, k in zip(truth, [20, 30, 40, 10])))
    args = ["eval", str(tmp_path / "data"), "--model", MODEL, *PLAIN_FLAGS, "--workers", "0", "--format", "json"]
    proc = invoke(*args, "--class-map", str(wrong))
    body = json.loads(proc.stdout)
    assert body["correct_top1"] == 0 and [f["id"] for f in body["setup_findings"]] == ["class-permutation"]
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(body["setup_findings"][0]["evidence"]["class_map_csv"])
    again = json.loads(invoke(*args, "--class-map", str(fixed)).stdout)
    assert (again["correct_top1"], again["total"], again["setup_findings"]) == (24, 24, [])
    quiet = json.loads(invoke(*args, "--class-map", str(wrong), "--no-setup-checks").stdout)
    assert quiet["setup_findings"] == [] and quiet["correct_top1"] == 0
