"""Issue 18 (e): system-metric checks, on MLflow file-store runs written with MLflow's own metric-line
format (`system/...` names, as log_system_metrics=True writes them): each fires on its pathology only."""
from __future__ import annotations

import numpy as np

from nnprobe.diagnosis import diagnose


def _run(tmp_path, metrics: dict[str, np.ndarray]):
    run = tmp_path / "mlruns" / "1" / "abc"
    (run / "metrics" / "system").mkdir(parents=True)
    (run / "meta.yaml").write_text("run_id: abc\nrun_name: r\nstatus: 3\n")
    loss = 2.3 * np.exp(-np.arange(60) / 20) + 0.1
    metrics = {"loss": loss, **metrics}
    for name, values in metrics.items():
        (run / "metrics" / name).write_text("".join(f"{1700000000000 + 1000 * i} {v} {i}\n"
                                                    for i, v in enumerate(values)))
    return {f.id: f for f in diagnose(tmp_path).findings if f.id in ("gpu-utilization", "memory-growth")}


def test_a_starved_gpu_and_a_stalled_one_warn_a_busy_one_does_not(tmp_path):
    rng = np.random.default_rng(0)
    busy = np.clip(85 + 5 * rng.standard_normal(60), 0, 100)
    assert _run(tmp_path / "busy", {"system/gpu_0_utilization_percentage": busy}) == {}
    starved = np.clip(12 + 5 * rng.standard_normal(60), 0, 100)
    found = _run(tmp_path / "starved", {"system/gpu_0_utilization_percentage": starved})
    assert "starved" in found["gpu-utilization"].message
    stalled = busy.copy()
    stalled[20:35] = 0.0
    found = _run(tmp_path / "stalled", {"system/gpu_0_utilization_percentage": stalled})
    assert found["gpu-utilization"].evidence == {"series": "system/gpu_0_utilization_percentage",
                                                 "from_sample": 20, "samples": 15}


def test_memory_that_grows_every_epoch_warns_a_steady_one_does_not(tmp_path):
    rng = np.random.default_rng(1)
    steady = 8000 + 50 * rng.standard_normal(60)
    assert _run(tmp_path / "steady", {"system/system_memory_usage_megabytes": steady}) == {}
    leak = 8000 + 60 * np.arange(60) + 50 * rng.standard_normal(60)
    found = _run(tmp_path / "leak", {"system/system_memory_usage_megabytes": leak})
    assert found["memory-growth"].evidence["ratio"] > 1.2
