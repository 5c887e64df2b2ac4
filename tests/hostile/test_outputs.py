"""Hostile outputs, options and signals for every command: an output never replaces an input, files get the
user's umask, symlinks are written through, `-o -` is stdout, impossible numbers are one line before torch
loads, a failed gate says why on stderr in every format, Ctrl-C / SIGTERM exit 130 / 143 leaving nothing
that looks complete."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PLAIN_FLAGS, TESTS, factory_spec, make_wnid_folders, solid_image
from hostile_helpers import Inputs, expect_refusal

RUNS = TESTS.parent / "samples" / "runs"


@pytest.fixture
def data(tmp_path):
    return make_wnid_folders(tmp_path / "data", {5: 2, 400: 2}, wrong={400: 1})  # top-1 4/5


@pytest.fixture
def photo(tmp_path):
    return solid_image(tmp_path / "photos" / "cat.png", (0.2, 0.6, 0.4))


MODEL = ["--model", factory_spec("color_net_1000"), *PLAIN_FLAGS]


def eval_cmd(data, *extra):
    return ["eval", str(data), *MODEL, "--workers", "0", *extra]


def robust_cmd(data, *extra):
    return ["robust", str(data), *MODEL, "--workers", "0", "--eps", "0,1/255", "--steps", "1", *extra]


def fool_cmd(photo, out, *extra):
    return ["fool", str(photo), *MODEL, "--out", str(out), *extra]


def first_image(data: Path) -> Path:
    return sorted(p for p in data.rglob("*.png"))[0]


# --- an output never lands on an input -------------------------------------------------------------------

def _onto_input_cases():
    """(name, build(tmp, data, photo) -> argv, fragments): each output aims at an input."""
    model_file = str(TESTS / "tiny_models.py")
    return [
        ("eval -o image of the data", lambda t, d, p: eval_cmd(d, "-o", str(first_image(d))), ["inside the data set"]),
        ("eval -o new file inside the data", lambda t, d, p: eval_cmd(d, "-o", str(d / "r.json")), ["inside the data set"]),
        ("eval -o the model factory file", lambda t, d, p: eval_cmd(d, "-o", model_file), ["is an input"]),
        ("eval -o the labels file", lambda t, d, p: ["eval", str(t / "flat"), *MODEL, "--labels", str(t / "labels.csv"),
                                                    "-o", str(t / "labels.csv")], ["is an input"]),
        ("eval -o a hard link to the labels", lambda t, d, p: ["eval", str(t / "flat"), *MODEL, "--labels",
                                                              str(t / "labels.csv"), "-o",
                                                              str(_hardlink(t / "labels.csv", t / "hl.csv"))],
         ["is an input"]),
        ("eval -o a symlink to an image", lambda t, d, p: eval_cmd(d, "-o", str(_symlink(first_image(d), t / "sl.json"))),
         ["inside the data set"]),
        ("robust --plot an image", lambda t, d, p: robust_cmd(d, "--plot", str(first_image(d))), ["--plot"]),
        ("robust --plot a png in the data", lambda t, d, p: robust_cmd(d, "--plot", str(d / "acc.png")),
         ["--plot", "inside the data set"]),
        ("eval --plot without a figure suffix", lambda t, d, p: eval_cmd(d, "--plot", str(t / "plots")),
         ["--plot", "must end in .png, .svg or .pdf"]),
        ("robust -o into the data", lambda t, d, p: robust_cmd(d, "-o", str(d / "robust.json")), ["inside the data set"]),
        ("fool -o the photo", lambda t, d, p: fool_cmd(p, t / "out", "-o", str(p)), ["is an input"]),
        ("fool -o the model file", lambda t, d, p: fool_cmd(p, t / "out", "-o", model_file), ["is an input"]),
        ("diagnose -o run/metrics.csv", lambda t, d, p: ["diagnose", str(_copy_run(t, "healthy")), "-o",
                                                       str(t / "run-healthy" / "metrics.csv")], ["is an input"]),
        ("diagnose -o the log file given", lambda t, d, p: ["diagnose", str(t / "run-healthy" / "metrics.csv"), "-o",
                                                          str(_copy_run(t, "healthy") / "metrics.csv")], ["is an input"]),
    ]


def _hardlink(src: Path, dst: Path) -> Path:
    os.link(src, dst)
    return dst


def _symlink(src: Path, dst: Path) -> Path:
    dst.symlink_to(src)
    return dst


def _copy_run(tmp: Path, name: str) -> Path:
    import shutil

    dst = tmp / f"run-{name}"
    if not dst.exists():
        shutil.copytree(RUNS / name / "lightning_logs" / "version_0" if (RUNS / name / "lightning_logs").exists()
                        else RUNS / name, dst)
    return dst


def _flat_labelled(tmp: Path) -> None:
    from nnprobe.models.imagenet import imagenet_wnids
    import tiny_models

    rows = []
    for i, k in enumerate([5, 5, 400]):
        solid_image(tmp / "flat" / f"img{i}.png", tiny_models.class_color(k))
        rows.append(f"img{i}.png,{imagenet_wnids()[k]}")
    (tmp / "labels.csv").write_text("\n".join(rows) + "\n")


CASES = _onto_input_cases()


@pytest.mark.parametrize("name, build, fragments", CASES, ids=[c[0] for c in CASES])
def test_an_output_never_replaces_an_input(name, build, fragments, tmp_path, data, photo, invoke):
    _flat_labelled(tmp_path)
    argv = build(tmp_path, data, photo)
    watched = Inputs(tmp_path, TESTS / "tiny_models.py")
    proc = invoke(*argv)
    expect_refusal(proc, 2, *fragments)
    watched.unchanged()
    assert not (tmp_path / "out").exists()  # refused before any work: fool wrote nothing


# --- how files are written -------------------------------------------------------------------------------

def test_report_file_gets_the_umask_mode(data, tmp_path, invoke):
    old = os.umask(0o022)
    try:
        proc = invoke(*eval_cmd(data, "--format", "json", "-o", str(tmp_path / "r.json")))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_fool_pngs_get_the_umask_mode(photo, tmp_path, invoke):
    old = os.umask(0o002)
    try:
        proc = invoke(*fool_cmd(photo, tmp_path / "out"))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2  # the adversarial image and its panel
    assert {stat.S_IMODE(p.stat().st_mode) for p in pngs} == {0o664}


def test_an_existing_report_keeps_its_mode(data, tmp_path, invoke):
    out = tmp_path / "r.json"
    out.write_text("old")
    out.chmod(0o640)
    assert invoke(*eval_cmd(data, "--format", "json", "-o", str(out))).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and json.loads(out.read_text())["total"] == 5


def test_symlink_output_is_written_through(data, tmp_path, invoke):
    real = tmp_path / "reports" / "r.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    assert invoke(*eval_cmd(data, "--format", "json", "-o", str(link))).returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link survives
    assert json.loads(real.read_text())["total"] == 5  # its target has the report


def test_output_to_a_fifo_is_refused_before_work(data, tmp_path):
    """Issue 17: an output is never a FIFO (with no reader the write blocks forever) or a device; /dev/null
    and - stay the ways to discard or stream the report."""
    from helpers import run_cli

    fifo = tmp_path / "report.pipe"
    os.mkfifo(fifo)
    proc = run_cli(*eval_cmd(data, "--format", "json", "-o", str(fifo)))
    assert proc.returncode == 2, proc.stderr
    assert "is a FIFO (named pipe), not a file" in proc.stderr and "Traceback" not in proc.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not replaced
    proc = run_cli(*eval_cmd(data, "--format", "json", "-o", os.devnull))
    assert proc.returncode == 0, proc.stderr


def test_dash_is_stdout(data, invoke):
    proc = invoke(*eval_cmd(data, "--format", "json", "-o", "-"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["total"] == 5
    assert not Path("-").exists()


@pytest.mark.parametrize("where, fragment", [
    ("missing/r.json", "does not exist"),
    ("afile/r.json", "is not a folder"),
    ("adir", "is a folder"),
    ("", "needs a file path"),
])
def test_unwritable_output_is_refused_before_work(where, fragment, data, tmp_path, invoke):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    expect_refusal(invoke(*eval_cmd(data, "-o", str(tmp_path / where) if where else "")), 2, "-o", fragment)
    assert not (tmp_path / "missing").exists()


# --- impossible numbers: one line, before torch is imported ------------------------------------------------

BAD_OPTIONS = [
    (["eval", "--workers", "-1"], "--workers"),
    (["eval", "--batch-size", "0"], "--batch-size"),
    (["eval", "--limit", "-3"], "--limit"),
    (["eval", "--num-classes", "9" * 5000], "--num-classes"),
    (["eval", "--resize", "0"], "--resize"),
    (["eval", "--crop", "100000"], "--crop"),
    (["eval", "--threads", "0"], "--threads"),
    (["robust", "--workers", "-1"], "--workers"),
    (["robust", "--seed", str(2 ** 80)], "--seed"),
    (["robust", "--steps", "0"], "--steps"),
    (["fool", "PHOTO", "--seed", str(2 ** 80)], "--seed"),
    (["fool", "PHOTO", "--seed", "-1"], "--seed"),
    (["fool", "PHOTO", "--steps", "-5"], "--steps"),
    (["fool", "PHOTO", "--threads", "-2"], "--threads"),
    (["diagnose", "RUN", "--limit", "0"], "--limit"),
    (["fool", "PHOTO", "--eps", "2/0"], "--eps"),
    (["fool", "PHOTO", "--eps", "two"], "--eps"),
    (["fool", "PHOTO", "--step-size", "1/255/2"], "--step-size"),
    (["robust", "--eps", "0,,1/255"], "--eps"),
    (["robust", "--eps", "nan"], "--eps"),
    (["robust", "--min-robust-top1", "2/255=1.5"], "--min-robust-top1"),
    (["robust", "--min-robust-top1", "0.3"], "--min-robust-top1"),
    (["eval", "--device", "tpu"], "--device 'tpu'"),
    (["fool", "PHOTO", "--device", "cuda:x"], "--device 'cuda:x'"),
    (["diagnose", "RUN", "--device", "gpu"], "--device 'gpu'"),
    (["eval", "NOWHERE"], "does not exist"),
    (["robust", "NOWHERE"], "does not exist"),
    (["fool", "NOWHERE.jpg"], "does not exist"),
]

_NO_TORCH = ("import sys\nfrom nnprobe.cli import main\n"
             "try:\n    main(sys.argv[1:])\nfinally:\n"
             "    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")


@pytest.mark.parametrize("argv, fragment", BAD_OPTIONS, ids=[" ".join(a)[:40] for a, _ in BAD_OPTIONS])
def test_impossible_option_is_one_line_before_torch(argv, fragment, data, photo, tmp_path):
    subs = {"PHOTO": str(photo), "RUN": str(RUNS / "healthy"), "NOWHERE": str(tmp_path / "nowhere"),
            "NOWHERE.jpg": str(tmp_path / "nowhere.jpg")}
    argv = [subs.get(a, a) for a in argv]
    if argv[0] in ("eval", "robust") and len(argv) > 1 and argv[1].startswith("-"):
        argv.insert(1, str(data))
    watched = Inputs(photo.parent, data)
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, *argv], capture_output=True, text=True, timeout=120)
    assert proc.stderr.rstrip().endswith("NO-TORCH"), proc.stderr[-3000:]
    proc.stderr = proc.stderr.rstrip()[: -len("NO-TORCH")]
    expect_refusal(proc, 2, fragment)
    watched.unchanged()  # speed is not timed here (no timed unit tests): "NO-TORCH" above is the proof


# --- a failed gate says why, in every format ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["table", "json", "junit"])
def test_failed_gate_says_why_on_stderr(fmt, data, tmp_path, invoke):
    proc = invoke(*eval_cmd(data, "--min-top1", "0.9", "--format", fmt, "-o", str(tmp_path / "r.out")))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "failed: min-top1" in proc.stderr and "0.9" in proc.stderr, proc.stderr


def test_failed_diagnose_says_why_in_json(invoke, tmp_path):
    proc = invoke("diagnose", str(RUNS / "nan-loss"), "--format", "json", "-o", str(tmp_path / "d.json"))
    assert proc.returncode == 1
    assert "failed:" in proc.stderr and "loss" in proc.stderr.lower(), proc.stderr


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------------

def signal_once_running(argv, started: Path, sig):
    """Start `nnprobe argv` with the slow model, send `sig` once its first forward has begun (it creates
    `started`), and return (process, stdout, stderr) after it exits."""
    env = dict(os.environ, NNPROBE_TEST_STARTED=str(started))
    env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen([sys.executable, "-m", "nnprobe", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), proc.communicate(timeout=60)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc, stdout, stderr


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated.")])
@pytest.mark.parametrize("command", ["eval", "robust"])
def test_signal_exits_128_plus_n_and_leaves_no_report(sig, code, line, command, tmp_path):
    data = make_wnid_folders(tmp_path / "data", {5: 4, 400: 4})
    started, out, plot = tmp_path / "started", tmp_path / "r.json", tmp_path / "p.png"
    argv = [command, str(data), "--model", f"{TESTS / 'hostile' / 'slow_models.py'}:slow_color_net", *PLAIN_FLAGS,
            "--workers", "0", "--batch-size", "1", "--format", "json", "-o", str(out)]
    if command == "robust":
        argv += ["--eps", "0,1/255", "--steps", "2", "--plot", str(plot)]
    proc, stdout, stderr = signal_once_running(argv, started, sig)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == line and "Traceback" not in stderr, stderr
    assert stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "started"]  # no report, plot or .partial


def test_signal_during_fool_leaves_no_partial_png(tmp_path, photo):
    started, out = tmp_path / "started", tmp_path / "out"
    photos = [solid_image(tmp_path / "photos" / f"p{i}.png", (0.1 * i, 0.5, 0.3)) for i in range(4)]
    argv = ["fool", *map(str, photos), "--model", f"{TESTS / 'hostile' / 'slow_models.py'}:slow_color_net",
            *PLAIN_FLAGS, "--out", str(out), "--attack", "bim", "--steps", "3"]
    proc, _, stderr = signal_once_running(argv, started, signal.SIGTERM)
    assert proc.returncode == 143, stderr
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [n for n in leftovers if n.endswith(".partial")], leftovers


@pytest.mark.parametrize("name", ["diagnosis.json", "report.jsonl", "summary.csv", "training.log"])
def test_diagnose_report_named_like_a_log_stays_out_of_the_run(name, tmp_path, invoke):
    run = _copy_run(tmp_path, "healthy")
    watched = Inputs(run)
    expect_refusal(invoke("diagnose", str(run), "--format", "json", "-o", str(run / name)), 2,
                   "would be read as a log")
    watched.unchanged()
    proc = invoke("diagnose", str(run), "--format", "json", "-o", str(run / "diagnosis.txt"))
    assert proc.returncode == 0 and json.loads((run / "diagnosis.txt").read_text())["kind"] == "diagnose"


@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_stdout_device_names_get_the_report_not_stderr(name):
    from helpers import run_cli

    proc = run_cli("diagnose", str(RUNS / "healthy"), "--format", "json", "-o", name)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "diagnose" and '"schema_version"' not in proc.stderr
    assert os.path.exists(name)  # the device node is still there, never replaced by a file
