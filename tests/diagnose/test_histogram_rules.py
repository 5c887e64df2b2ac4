"""Issue 18 (3): the histogram rules on scale and shape (exploding gradients, saturated tanh/sigmoid, poor
initialisation) on histograms written by torch's SummaryWriter, and W&B system-metric records. References:
numpy on the very tensors logged; records written by hand in protobuf's wire format (tests/diagnose/
tracking_helpers.py), decoded by nnprobe's own decoder and, where wandb is installed, by its protobuf classes."""
from __future__ import annotations

import numpy as np
import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.readers import discover
from nnprobe.diagnosis.run import load_runs

from test_histograms import _write


def _findings(folder, check):
    return [f for f in diagnose(folder).findings if f.id == check]


def _outcome(folder, check):
    return {o.id: o for o in diagnose(folder).runs[0].outcomes}[check]


@pytest.mark.parametrize("low, high", [(0.9, 1.0), (-1.0, -0.9), (-0.2, 0.3), (0.0, 0.05)])
def test_share_within_equals_numpy_on_the_logged_tensor(tmp_path, low, high):
    rng = np.random.default_rng(3)
    tensors = {s: np.tanh(rng.standard_normal(20000) * (1 + s)) for s in range(3)}
    _write(tmp_path, {"activations/tanh1": lambda s: tensors[s]}, steps=range(3))
    (run,) = load_runs(discover(str(tmp_path))[0])
    for stats in run.histograms["activations/tanh1"]:
        x = tensors[stats.step]
        # TensorBoard's buckets grow by 10% a bucket: the even-spread assumption is that close
        assert stats.share_within(low, high) == pytest.approx(((x >= low) & (x <= high)).mean(), abs=0.02)


def test_saturated_tanh_and_sigmoid_fire_healthy_ones_do_not(tmp_path):
    rng = np.random.default_rng(4)
    z = {s: rng.standard_normal(4000) for s in range(5)}
    _write(tmp_path / "tanh", {"activations/layer0": lambda s: np.tanh(0.5 * z[s]),
                               "activations/layer1": lambda s: np.tanh(6 * z[s])})
    (finding,) = _findings(tmp_path / "tanh", "saturated-activations")
    share = (np.abs(np.tanh(6 * z[4])) >= 0.9).mean()
    assert finding.evidence["layer"] == "activations/layer1" and finding.evidence["function"] == "tanh"
    assert finding.evidence["fraction"] == pytest.approx(share, abs=0.02) and finding.evidence["step"] == 4
    assert finding.evidence["layers"] == ["activations/layer1"]
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    _write(tmp_path / "sigmoid", {"activations/layer0": lambda s: sigmoid(12 * z[s])})
    (finding,) = _findings(tmp_path / "sigmoid", "saturated-activations")
    assert finding.evidence["function"] == "sigmoid"
    # TensorBoard's bucket below 1 spans 0.918-1.0 and the values in it are counted as spread evenly, so the
    # share at the upper bound reads low (here 0.66 for 0.81): a lower bound on the true share
    true = ((sigmoid(12 * z[4]) <= 0.05) | (sigmoid(12 * z[4]) >= 0.95)).mean()
    assert true - 0.2 <= finding.evidence["fraction"] <= true + 0.01
    _write(tmp_path / "healthy", {"activations/layer0": lambda s: np.tanh(z[s]),
                                  "activations/layer1": lambda s: sigmoid(z[s])})
    assert _outcome(tmp_path / "healthy", "saturated-activations").status == "passed"
    _write(tmp_path / "relu", {"activations/layer0": lambda s: np.maximum(z[s], 0) * 5})  # unbounded
    assert _outcome(tmp_path / "relu", "saturated-activations").status == "skipped"


def test_poor_initialization_fires_when_the_scale_collapses_or_explodes_with_depth(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2000)

    def layers(factor):
        return {f"activations/layer{i}": (lambda s, i=i: np.maximum(x, 0) * factor ** i) for i in range(4)}

    _write(tmp_path / "collapse", layers(0.1), steps=[0])
    (finding,) = _findings(tmp_path / "collapse", "poor-initialization")
    assert finding.evidence["ratio"] == pytest.approx(1e-3, rel=1e-3) and finding.evidence["step"] == 0
    assert (finding.evidence["first_layer"], finding.evidence["last_layer"]) == \
        ("activations/layer0", "activations/layer3")
    assert "collapses" in finding.message
    _write(tmp_path / "explode", layers(6.0), steps=[0])
    (finding,) = _findings(tmp_path / "explode", "poor-initialization")
    assert finding.evidence["ratio"] == pytest.approx(216, rel=1e-3) and "explodes" in finding.message
    _write(tmp_path / "fine", layers(0.4), steps=[0])  # torch's default init: ~0.4x a ReLU layer
    assert _outcome(tmp_path / "fine", "poor-initialization").status == "passed"
    _write(tmp_path / "shallow", {k: v for k, v in list(layers(0.1).items())[:2]}, steps=[0])
    assert _outcome(tmp_path / "shallow", "poor-initialization").status == "skipped"


def test_exploding_gradients_fire_on_growth_by_orders_before_any_nan(tmp_path):
    g = np.linspace(-1, 1, 256)
    scale = [1.0, 1.2, 0.9, 3.0, 40.0, 2500.0]
    _write(tmp_path / "explode", {"grads/0.weight": lambda s: g * scale[s], "grads/2.weight": lambda s: g},
           steps=range(6))
    (finding,) = _findings(tmp_path / "explode", "exploding-gradients")
    assert finding.evidence["layer"] == "grads/0.weight"
    assert finding.evidence["ratio"] == pytest.approx(2500.0, rel=1e-3)  # over the median of 1.0, 1.2, 0.9
    assert (finding.evidence["step"], finding.evidence["first_step_over"]) == (5, 5)
    assert finding.evidence["nonfinite_step"] is None and finding.evidence["layers"] == ["grads/0.weight"]
    wobble = [1.0, 0.5, 2.0, 8.0, 0.2, 30.0]  # noisy, but under 100x its start
    _write(tmp_path / "noisy", {"grads/0.weight": lambda s: g * wobble[s], "grads/2.weight": lambda s: g},
           steps=range(6))
    assert _outcome(tmp_path / "noisy", "exploding-gradients").status == "passed"


# ------------------------------------------------------------------------------- W&B system metrics

def _wandb_run(tmp_path, memory, utilization):
    from tracking_helpers import frame, history, stats

    bodies = []
    for i, (mem, util) in enumerate(zip(memory, utilization)):
        bodies.append(history({"loss": 2.0 / (i + 1), "_step": i}, i))
        bodies.append(stats({"proc.memory.rssMB": repr(mem), "gpu.0.gpu": repr(util),
                             "proc.memory.availableMB": repr(64000.0 - mem)}, 1_700_000_000 + i))
    folder = tmp_path / "wandb" / "offline-run-20261206_000000-abc"
    folder.mkdir(parents=True)
    (folder / "run-abc.wandb").write_bytes(bytes(frame(bodies)))
    return tmp_path


def test_wandb_system_records_are_read_with_either_decoder(tmp_path):
    from nnprobe.diagnosis.readers import wandb as reader
    from tracking_helpers import stats

    # written by hand in protobuf's wire format; read by nnprobe's decoder and, installed, wandb's own classes
    body = stats({"gpu.0.gpu": "37.5", "proc.memory.rssMB": "812.25"}, 1_700_000_123)
    assert reader.decode_wire(body) == reader._decoder()(body) == \
        ("stats", [("gpu.0.gpu", ("json", "37.5")), ("proc.memory.rssMB", ("json", "812.25"))], 1_700_000_123.0)
    memory = [800.0 + 40 * i for i in range(20)]
    run = _wandb_run(tmp_path, memory, [90.0] * 20)
    (loaded,) = load_runs(discover(str(run))[0])
    series = loaded.series["system/proc.memory.rssMB"]
    assert series.values.tolist() == memory and series.steps.tolist() == list(range(20))
    assert series.walls.tolist() == [1_700_000_000.0 + i for i in range(20)]
    assert loaded.series["loss"].values.size == 20  # the history rows are still all there


def test_wandb_system_metrics_feed_memory_growth_and_gpu_utilization(tmp_path):
    leak = _wandb_run(tmp_path / "leak", [800.0 + 40 * i for i in range(20)], [90.0] * 20)
    (finding,) = _findings(leak, "memory-growth")
    assert finding.evidence["series"] == "system/proc.memory.rssMB"  # not the growing *available* memory
    starved = _wandb_run(tmp_path / "starved", [800.0] * 20, [5.0, 12.0] * 10)
    (finding,) = _findings(starved, "gpu-utilization")
    assert finding.evidence["series"] == "system/gpu.0.gpu" and finding.evidence["median_percent"] == 8.5
    healthy = _wandb_run(tmp_path / "healthy", [800.0 + (i % 3) for i in range(20)], [85.0, 95.0] * 10)
    outcomes = {o.id: o.status for o in diagnose(healthy).runs[0].outcomes}
    assert outcomes["memory-growth"] == outcomes["gpu-utilization"] == "passed"
