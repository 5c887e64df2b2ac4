"""Issue 18 (e): histograms read from TensorBoard event files (torch SummaryWriter.add_histogram) and the
checks on them. The reference for each reduced histogram is numpy on the very tensor that was logged."""
from __future__ import annotations

import numpy as np
import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.readers import discover, tail
from nnprobe.diagnosis.run import load_runs


def _write(folder, histograms, steps=range(5)):
    """histograms: tag -> function(step) -> numpy array; plus a small loss so the run has a scalar."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for step in steps:
        writer.add_scalar("train/loss", 2.0 / (step + 1), step)
        for tag, make in histograms.items():
            writer.add_histogram(tag, make(step), step)
    writer.close()


def test_reduced_histograms_equal_numpy_on_the_logged_tensor(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {s: np.maximum(rng.standard_normal(1000), 0) * (s + 1) for s in range(5)}  # ReLU-like
    _write(tmp_path, {"activations/relu1": lambda s: tensors[s]})
    (run,) = load_runs(discover(str(tmp_path))[0])
    stats = run.histograms["activations/relu1"]
    assert [s.step for s in stats] == list(range(5))
    for s in stats:
        x = tensors[s.step]
        assert s.num == x.size and s.min == pytest.approx(x.min()) and s.max == pytest.approx(x.max())
        assert s.mean == pytest.approx(x.mean(), rel=1e-6)
        assert s.rms == pytest.approx(np.sqrt((x ** 2).mean()), rel=1e-6)
        assert s.zero_fraction == pytest.approx((x == 0).mean())


def test_tail_reads_the_same_histograms(tmp_path):
    _write(tmp_path, {"weights/0.weight": lambda s: np.linspace(-1, 1, 100) * (s + 1)})
    refs = [ref for run in discover(str(tmp_path)) for ref in run.logs]
    state = tail(refs[0])
    (run,) = load_runs(discover(str(tmp_path))[0])
    assert [(s.step, s.rms) for s in state.log.histograms["weights/0.weight"]] == \
        [(s.step, s.rms) for s in run.histograms["weights/0.weight"]]


def _findings(folder, check):
    return [f for f in diagnose(folder).findings if f.id == check]


def test_dead_relu_fires_on_all_zero_activations_only(tmp_path):
    rng = np.random.default_rng(1)
    _write(tmp_path / "dead", {"activations/layer0": lambda s: np.zeros(500),
                               "activations/layer1": lambda s: np.maximum(rng.standard_normal(500), 0)})
    (finding,) = _findings(tmp_path / "dead", "dead-relu")
    assert finding.severity == "warning" and finding.evidence["layer"] == "activations/layer0"
    assert finding.evidence["zero_fraction"] == 1.0
    _write(tmp_path / "alive", {"activations/layer0": lambda s: np.maximum(rng.standard_normal(500), 0)})
    assert _findings(tmp_path / "alive", "dead-relu") == []


def test_frozen_layer_fires_when_one_layer_never_changes(tmp_path):
    fixed = np.linspace(-0.5, 0.5, 64)
    _write(tmp_path / "frozen", {"weights/0.weight": lambda s: fixed,
                                 "weights/2.weight": lambda s: fixed * (1 + 0.1 * s)})
    (finding,) = _findings(tmp_path / "frozen", "frozen-layer")
    assert finding.evidence["frozen"] == ["weights/0.weight"]
    _write(tmp_path / "moving", {"weights/0.weight": lambda s: fixed * (1 - 0.01 * s),
                                 "weights/2.weight": lambda s: fixed * (1 + 0.1 * s)})
    assert _findings(tmp_path / "moving", "frozen-layer") == []


def test_vanishing_gradients_fire_three_orders_below_the_last_layer(tmp_path):
    g = np.linspace(-1, 1, 64)
    _write(tmp_path / "vanish", {"grads/0.weight": lambda s: g * 1e-5, "grads/4.weight": lambda s: g})
    (finding,) = _findings(tmp_path / "vanish", "vanishing-gradients")
    assert finding.evidence["ratio"] == pytest.approx(1e-5, rel=1e-3)
    _write(tmp_path / "fine", {"grads/0.weight": lambda s: g * 0.05, "grads/4.weight": lambda s: g})
    assert _findings(tmp_path / "fine", "vanishing-gradients") == []


def test_histogram_checks_skip_without_histograms(tmp_path):
    _write(tmp_path, {})
    outcomes = {o.id: o for o in diagnose(tmp_path).runs[0].outcomes}
    for check in ("dead-relu", "frozen-layer", "vanishing-gradients"):
        assert outcomes[check].status == "skipped" and "add_histogram" in outcomes[check].reason
