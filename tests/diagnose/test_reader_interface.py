"""Issue 16 part 4: every registered reader offers `read` and an incremental `tail`; tailing a file written
in pieces gives exactly the points a one-shot `read` of the whole file gives (the reference), and follow
and remote discovery use only the readers' public interface (no private import, no import circle)."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

from diagnose_helpers import SAMPLES
from nnprobe.diagnosis.readers import READERS, LogRef, discover, read_log, tail

ROOT = Path(__file__).resolve().parents[2] / "nnprobe" / "diagnosis"
APPENDED = {"tensorboard": "healthy/events.out.tfevents.1700000000.sample.0", "lightning-csv": "healthy/metrics.csv",
            "keras-csv": "keras-healthy/training.csv", "jsonl": "divergence/metrics.jsonl"}
WHOLE = {"hf-trainer-state": "hf-overfit/trainer_state.json", "wandb": "wandb-healthy", "mlflow": "mlflow-healthy",
         "mlflow-db": "mlflow-db/mlflow.db"}


def test_every_reader_is_covered_here():
    assert set(READERS) == set(APPENDED) | set(WHOLE)
    assert {fmt for fmt, reader in READERS.items() if reader.tail is not None} == set(APPENDED) | {"mlflow"}


def _points(log):
    return {name: (np.asarray(raw.steps, dtype=np.int64).tolist(), np.asarray(raw.values, dtype=float).tolist(),
                   np.asarray(raw.walls, dtype=float).tolist()) for name, raw in log.series.items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name
        np.testing.assert_array_equal(np.asarray(a[name][1]), np.asarray(b[name][1]))
        np.testing.assert_array_equal(np.asarray(a[name][2]), np.asarray(b[name][2]))


@pytest.mark.parametrize("fmt", sorted(APPENDED))
@pytest.mark.parametrize("pieces", [1, 3, 17])
def test_tail_of_a_file_written_in_pieces_equals_read(tmp_path, fmt, pieces):
    source = SAMPLES / APPENDED[fmt]
    blob = source.read_bytes()
    target = tmp_path / source.name
    ref = LogRef(str(target), fmt)
    cuts = sorted(set(np.linspace(0, len(blob), pieces + 1).astype(int).tolist()) | {len(blob)})
    state, written = None, 0
    target.write_bytes(b"")
    for cut in cuts[1:]:
        with open(target, "ab") as handle:
            handle.write(blob[written:cut])
        written = cut
        state = tail(ref, state)
        assert not [i for i in state.log.issues if i.kind in ("corrupt", "truncated")]  # a cut record waits
    whole = read_log(LogRef(str(source), fmt))
    _same(_points(state.log), _points(whole))
    assert state.bytes_read == len(blob) and state.restarts == 0


@pytest.mark.parametrize("fmt", sorted(WHOLE))
def test_tail_of_a_whole_file_format_equals_read(tmp_path, fmt):
    shutil.copytree(SAMPLES / WHOLE[fmt].split("/")[0], tmp_path / "run")
    refs = [ref for run in discover(str(tmp_path / "run")) for ref in run.logs if ref.format == fmt]
    assert refs
    for ref in refs:
        state = tail(ref)
        assert state.changed
        _same(_points(state.log), _points(read_log(ref)))
        again = tail(ref, state)
        assert not again.changed  # nothing new: nothing read again


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_module_imports_another_modules_private_function():
    for path in ROOT.rglob("*.py"):
        for module, names in _imports(path):
            if module.startswith("nnprobe."):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")
                           and not (module.endswith(".readers") and n in ("_fast_events", "_table"))]
                assert not private, (path, module, private)


def test_remote_imports_nothing_of_the_readers_and_follow_only_their_public_interface():
    remote = [module for module, _ in _imports(ROOT.parent / "remote.py")]  # nnprobe/remote.py since 6159dd2
    assert not [m for m in remote if m.startswith("nnprobe.diagnosis")], remote
    follow = {module: names for module, names in _imports(ROOT / "follow.py")}
    readers = {n for module, names in follow.items() if module.startswith("nnprobe.diagnosis.readers") for n in names}
    assert readers <= {"tail", "discover", "looked_for", "settled"}, readers
