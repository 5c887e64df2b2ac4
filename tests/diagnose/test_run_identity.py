"""Issue 18 (a): no logged point dropped from the non-finite checks, and every spelling of a run's path
names the same run once. References: tbparse (a peer reader) for the points, a plain loop for NaN."""
from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from nnprobe.diagnosis import diagnose
from tests.diagnose.diagnose_helpers import SAMPLES


def _write_repeated_steps(folder, nan_at):
    """10 steps x 5 points each at step=epoch (per-batch values, as many loggers write them); one NaN."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    written = []
    for step in range(10):
        for point in range(5):
            value = math.nan if (step, point) == nan_at else 2.0 - 0.1 * step + 0.01 * point
            writer.add_scalar("train/loss", value, step)
            written.append((step, value))
    writer.close()
    return written


@pytest.mark.parametrize("nan_at", [(3, 1), (0, 0), (9, 3)])
def test_nan_in_a_repeated_step_is_an_error(tmp_path, nan_at):
    written = _write_repeated_steps(tmp_path / "run", nan_at)
    from tbparse import SummaryReader

    peer = SummaryReader(str(tmp_path / "run")).scalars
    assert len(peer) == len(written) == 50 and int(peer["value"].isna().sum()) == 1
    result = diagnose(tmp_path / "run")
    run, = result.runs
    assert run.superseded == 0  # a step written again without going back is no restart
    series = run.series["train_loss"]
    assert len(series) == 50 and int(np.isnan(series.values).sum()) == 1
    errors = [f for f in result.findings if f.severity == "error"]
    assert [f.id for f in errors] == ["loss-not-finite"]
    assert errors[0].evidence["step"] == nan_at[0]
    assert not any("logged again" in f.message for f in result.findings)


def test_a_step_going_backwards_is_still_a_restart(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(8):
        writer.add_scalar("loss", 2.0 - 0.1 * step, step)
    for step in range(5, 10):  # resumed from the checkpoint at step 5: steps 5, 6, 7 written again
        writer.add_scalar("loss", 1.9 - 0.1 * step, step)
    writer.close()
    run, = diagnose(tmp_path / "run").runs
    series = run.series["train_loss"]
    assert series.steps.tolist() == list(range(10))
    assert run.superseded == 3
    assert np.allclose(series.values[5:], [1.9 - 0.1 * s for s in range(5, 10)])


def _names_and_findings(path):
    result = diagnose(path)
    return result.path, [r.path for r in result.runs], sorted((f.id, f.severity) for f in result.findings)


def test_every_spelling_of_a_run_names_it_once(tmp_path, monkeypatch):
    shutil.copytree(SAMPLES / "hf-healthy", tmp_path / "hf-run")
    monkeypatch.chdir(tmp_path)
    base = _names_and_findings("hf-run")
    assert base[:2] == ("hf-run", ["hf-run"])
    for spelling in ("hf-run/", "./hf-run/", "./hf-run", "hf-run//", "hf-run/."):
        assert _names_and_findings(spelling) == base, spelling
    absolute = _names_and_findings(str(tmp_path / "hf-run") + os.sep)
    assert absolute[1] == [str(tmp_path / "hf-run")] and absolute[2] == base[2]
    monkeypatch.chdir(tmp_path / "hf-run")
    here = _names_and_findings(".")
    assert here[1] == ["."] and here[2] == base[2]


def test_a_glob_with_slashes_counts_each_run_once(tmp_path, monkeypatch):
    from nnprobe.diagnosis.summary import diagnose_many

    names = ("hf-healthy", "hf-nan", "keras-healthy", "tbx-healthy")
    for name in names:
        shutil.copytree(SAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    plain = diagnose_many(list(names))
    slashed = diagnose_many([n + "/" for n in names])
    assert [r.path for r in slashed.runs] == [r.path for r in plain.runs] == list(names)
    assert sorted(f.id for f in slashed.findings) == sorted(f.id for f in plain.findings)
