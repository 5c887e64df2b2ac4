"""`nnprobe fool` and `nnprobe robust` as users run them: exit codes, stdout purity, files, gates."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import tinymodels

TINY = f"{os.path.join(os.path.dirname(__file__), 'tinymodels.py')}:tiny_classifier"
EDGE = f"{os.path.join(os.path.dirname(__file__), 'tinymodels.py')}:rounding_edge_classifier"


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def photos(tmp_path):
    return [tinymodels.save_photo(tmp_path / "in" / f"p{i}.png", seed=i) for i in (2, 4)]


def test_fool_json_is_the_only_stdout_and_carries_the_fields(photos, tmp_path, invoke):
    before = [digest(p) for p in photos]
    out = tmp_path / "fooled"
    proc = invoke("fool", *photos, "--model", TINY, "--attack", "pgd", "--eps", "4/255,16/255", "--out", str(out),
                  "--format", "json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["schema_version"] == 1 and body["kind"] == "fool"
    assert len(body["items"]) == 4 == body["total"]
    for item in body["items"]:
        assert set(item) >= {"image", "adversarial_image", "success", "linf", "original_prediction",
                             "adversarial_prediction", "original", "adversarial", "l2", "steps", "seconds"}
        assert set(item["original_prediction"]) == {"index", "label", "confidence"}
        assert os.path.isfile(item["adversarial_image"]) and os.path.isfile(item["panel_image"])
        assert item["linf"] <= item["eps"] + 1e-12 and item["linf_255"] == pytest.approx(item["linf"] * 255)
    assert [i["eps"] * 255 for i in body["items"]] == pytest.approx([4, 16, 4, 16])
    assert body["fooled"] == sum(i["success"] for i in body["items"]) and body["items"][1]["success"]
    assert [digest(p) for p in photos] == before
    assert len(os.listdir(out)) == 8


def test_fool_default_out_folder_and_table(photos, tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = invoke("fool", photos[0], "--model", TINY, "--eps", "16/255", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / "nnprobe-fool")) == ["p2.adv.png", "p2.panel.png"]
    assert "nnprobe fool" in proc.stdout and "L∞ 16/255" in proc.stdout and "of 1 fooled" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--eps", "abc"], "--eps 'abc' is not a number"),
    (["--eps", "2"], "above 1"),
    (["--target", "toaster"], "not a class name"),
    (["--target", "99"], "not a class index"),
    (["--attack", "fgsm", "--steps", "3"], "one step"),
    (["--step-size", "x"], "--step-size"),
])
def test_fool_bad_options_exit_2_with_one_sentence(photos, tmp_path, invoke, args, message):
    proc = invoke("fool", photos[0], "--model", TINY, "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_fool_unreadable_image_exits_2(tmp_path, invoke):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    proc = invoke("fool", str(bad), "--model", TINY, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "cannot be decoded" in proc.stderr and "Traceback" not in proc.stderr
    proc = invoke("fool", str(tmp_path / "nope.png"), "--model", TINY, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_fool_refuses_to_overwrite_an_input(tmp_path, invoke):
    first = tinymodels.save_photo(tmp_path / "a.png", seed=1)
    second = tinymodels.save_photo(tmp_path / "a.adv.png", seed=3)
    before = digest(second)
    proc = invoke("fool", first, second, "--model", TINY, "--out", str(tmp_path))
    assert proc.returncode == 2 and "is the folder of the input" in proc.stderr
    assert digest(second) == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.adv.png").symlink_to(second)  # a link in --out to an input: refused, not written through
    proc = invoke("fool", first, second, "--model", TINY, "--out", str(out))
    assert proc.returncode == 2 and "would overwrite the input" in proc.stderr
    assert digest(second) == before and sorted(p.name for p in out.iterdir()) == ["a.adv.png"]


def test_fail_if_fooled_gate_and_junit(photos, tmp_path, invoke):
    report = tmp_path / "fool.xml"
    proc = invoke("fool", photos[0], "--model", TINY, "--attack", "pgd", "--eps", "16/255", "--fail-if-fooled",
                  "--out", str(tmp_path / "o"), "--format", "junit", "-o", str(report))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    proc = invoke("fool", photos[0], "--model", TINY, "--eps", "0", "--fail-if-fooled", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0 and "PASS fail-if-fooled: 0 of 1" in proc.stdout


def test_rounding_undoing_the_attack_is_said(tmp_path, invoke):
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (16, 16), (128, 128, 128)).save(grey)
    proc = invoke("fool", str(grey), "--model", EDGE, "--eps", "0.4/255", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0
    assert "rounding to 8 bits undid the attack" in proc.stdout
    assert "note: rounding to 8 bits undid the attack on 1 image(s)" in proc.stderr


def test_cli_attack_list_is_the_registry():
    from nnprobe.attacks import attack_ids
    from nnprobe.cli.fool import ATTACKS

    assert sorted(ATTACKS) == attack_ids()


def test_help_does_not_import_torch():
    code = ("import sys\nfrom nnprobe.cli import cli\n"
            "for name in ('fool', 'robust'):\n"
            "    try:\n        cli.main([name, '--help'], standalone_mode=False)\n"
            "    except SystemExit:\n        pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NO-TORCH")
    assert "--min-robust-top1" in proc.stdout and "--fail-if-fooled" in proc.stdout


@pytest.fixture
def folder(tmp_path):
    tinymodels.save_class_folders(tmp_path / "data", 24, seed=3)
    return tmp_path / "data"


def robust_args(folder, *extra):
    return ["robust", str(folder), "--model", TINY, "--eps", "0,8/255", "--workers", "0", "--device", "cpu", *extra]


def test_robust_json_points_and_plot(folder, tmp_path, invoke):
    plot = tmp_path / "acc.png"
    proc = invoke(*robust_args(folder, "--format", "json", "--plot", str(plot)))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["schema_version"] == 1 and body["kind"] == "robust"
    points = body["points"]
    assert [set(p) >= {"eps", "top1", "top5", "correct_top1", "total", "attack_success_rate", "mean_linf"}
            for p in points] == [True, True]
    assert [p["total"] for p in points] == [24, 24]
    assert points[0]["correct_top1"] == points[0]["clean_correct"] == 24
    assert points[1]["correct_top1"] < 24 and points[1]["correct_top1"] == 24 - points[1]["fooled"]
    assert body["plot"] == str(plot) and open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_robust_gates_exit_1_and_0(folder, invoke):
    failing = invoke(*robust_args(folder, "--min-robust-top1", "8/255=0.99", "--min-robust-top1", "0=0.5"))
    assert failing.returncode == 1, failing.stderr
    assert "FAIL min-robust-top1@8/255" in failing.stdout and "PASS min-robust-top1@0" in failing.stdout
    passing = invoke(*robust_args(folder, "--min-robust-top1", "0=1.0"))
    assert passing.returncode == 0, passing.stderr


@pytest.mark.parametrize("extra, message", [
    (["--min-robust-top1", "8/255"], "EPS=FRACTION"),
    (["--min-robust-top1", "3/255=0.3"], "not among --eps"),
    (["--eps", "0,,1/255"], "empty entry"),
])
def test_robust_bad_options_exit_2(folder, invoke, extra, message):
    proc = invoke(*robust_args(folder, *extra))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_robust_missing_data_exits_2(tmp_path, invoke):
    proc = invoke("robust", str(tmp_path / "nothing"), "--model", TINY)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_robust_two_ranks_equal_one_process(folder, tmp_path, invoke):
    args = [*robust_args(folder, "--format", "json", "--batch-size", "5")]
    one = invoke(*args, "-o", str(tmp_path / "one.json"))
    assert one.returncode == 0, one.stderr
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "nnprobe", *args, "-o", str(tmp_path / "two.json")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert b["run"]["world_size"] == 2 and a["run"]["world_size"] == 1
    keys = ("eps", "correct_top1", "correct_top5", "total", "clean_correct", "fooled")
    assert [[p[k] for k in keys] for p in a["points"]] == [[p[k] for k in keys] for p in b["points"]]
    assert a["points"][1]["fooled"] > 0


def test_robust_no_autograd_path_is_a_finding_and_adaptive_runs_square(folder, invoke):
    """A hard thermometer encoding used to crash every gradient attack with exit 3: now its zero gradients are
    a finding, and --adaptive's Square fools what APGD could not."""
    planted = f"{os.path.join(os.path.dirname(__file__), 'planted.py')}:thermometer_classifier"
    args = ["robust", str(folder), "--model", planted, "--eps", "0,16/255", "--workers", "0", "--device", "cpu",
            "--attack", "apgd-ce", "--steps", "3", "--format", "json"]
    plain = invoke(*args)
    assert plain.returncode == 0, plain.stderr
    body = json.loads(plain.stdout)
    assert "zero-gradients" in [f["id"] for f in body["findings"]] and body["points"][1]["fooled"] == 0
    adaptive = invoke(*args, "--adaptive")
    assert adaptive.returncode == 0, adaptive.stderr
    body = json.loads(adaptive.stdout)
    assert [c["attack"] for c in body["settings"]["components"]] == ["apgd-ce", "square", "apgd-ce", "apgd-ce"]
    follow = next(f for f in body["findings"] if f["id"] == "adaptive-follow-up")
    assert follow["evidence"]["fooled_by_follow_up"]["square"] == body["points"][1]["fooled"] > 0
    refused = invoke(*args, "--surrogate", TINY)
    assert refused.returncode == 2 and "--adaptive" in refused.stderr and "Traceback" not in refused.stderr


def test_robust_autoattack_version_selects_the_reference_version(folder, invoke):
    rand = invoke(*robust_args(folder, "--attack", "autoattack", "--autoattack-version", "rand", "--steps", "2",
                               "--format", "json"))
    assert rand.returncode == 0, rand.stderr
    body = json.loads(rand.stdout)
    assert body["settings"]["attack"] == "autoattack-rand"
    assert [(c["attack"], c["eot_iter"], c["version"]) for c in body["settings"]["components"]] == [
        ("apgd-ce", 20, "rand"), ("apgd-dlr", 20, "rand")]
    wrong = invoke(*robust_args(folder, "--attack", "pgd", "--autoattack-version", "plus"))
    assert wrong.returncode == 2 and "--attack autoattack" in wrong.stderr and "Traceback" not in wrong.stderr
