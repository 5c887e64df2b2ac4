"""Issue 21 (4): the sample generators reproduce their committed files byte for byte. samples/make_runs.py is
run for real into a temporary folder (about 4 s of one core: tiny models, fixed seeds, fixed wall times and
event-file names) and every file it writes is compared with the one under samples/runs/; a difference names
the file and its first differing line, so a nondeterministic field is named, not hidden."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _first_difference(made: bytes, committed: bytes) -> str:
    """Where two files part: the first differing line of a text file, else the first differing byte."""
    try:
        a, b = made.decode().splitlines(), committed.decode().splitlines()
    except UnicodeDecodeError:
        at = next((i for i, (x, y) in enumerate(zip(made, committed)) if x != y), min(len(made), len(committed)))
        return f"byte {at} of {len(made)} (committed: {len(committed)} bytes)"
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"line {at + 1}: made {a[at] if at < len(a) else '<end>'!r}, committed {b[at] if at < len(b) else '<end>'!r}"


def test_make_runs_reproduces_its_committed_files_byte_for_byte(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, str(SAMPLES / "make_runs.py"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    sys.path.insert(0, str(SAMPLES))
    try:
        import make_runs
    finally:
        sys.path.remove(str(SAMPLES))
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # every run the generator names, and nothing else, was written; each was committed
    assert {p.parts[0] for p in made} == set(make_runs.INJECTED)
    committed = sorted(p.relative_to(SAMPLES / "runs") for name in make_runs.INJECTED
                       for p in (SAMPLES / "runs" / name).rglob("*") if p.is_file())
    assert made == committed
    differ = [f"{path}: {_first_difference((tmp_path / path).read_bytes(), (SAMPLES / 'runs' / path).read_bytes())}"
              for path in made if (tmp_path / path).read_bytes() != (SAMPLES / "runs" / path).read_bytes()]
    assert not differ, "regenerated files differ from samples/runs/ (rerun samples/make_runs.py and the tests " \
                       "that quote them):\n" + "\n".join(differ)
    # and what the golden tests read from INJECTED.json is the generator's record, not an edit
    for name in make_runs.INJECTED:
        record = json.loads((SAMPLES / "runs" / name / "INJECTED.json").read_text())
        assert record["run"] == name and record["injected"] == make_runs.INJECTED[name]["injected"]


def test_first_difference_names_the_line_or_byte():
    assert _first_difference(b"a\nb\n", b"a\nc\n") == "line 2: made 'b', committed 'c'"
    assert _first_difference(b"\xff\x00\x01", b"\xff\x00\x02") == "byte 2 of 3 (committed: 3 bytes)"
