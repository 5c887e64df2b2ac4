"""Regenerate the MLflow and W&B sample runs: the trainings of make_runs.py, logged by real mlflow and wandb.

  mlflow-healthy/, mlflow-nan-loss/, mlflow-chance/   MLflow file store (mlruns/<exp>/<run>/), one run each
  mlflow-db/mlflow.db                                 MLflow SQLite store holding the same three runs
  wandb-healthy/, wandb-nan-loss/, wandb-chance/      W&B offline runs (wandb/offline-run-*/run-<id>.wandb)

What each run contains (INJECTED.json beside it, for the db one entry per run name):
  healthy   nothing wrong: a learnable problem, a sensible learning rate (no error expected)
  nan-loss  log(softmax(x)) and a warmup to lr 0.6: the loss turns NaN (first step and count recorded)
  chance    labels shuffled apart from their inputs: validation accuracy stays at 1/K (K = 10)

Metrics logged: `loss`, `grad_norm`, `lr` every 5 steps; `train_loss`, `train_acc`, `val_loss`, `val_acc` at
each epoch's last step; params/config `num_classes` = 10 and `optimizer`. MLflow timestamps are fixed
(make_runs.T0 + 0.25 s a step); MLflow's ids (uuid4 draws) and creation clocks are seeded and fixed while it
logs, and meta.yaml's artifact paths name /samples/runs/..., not this machine's folder, so the MLflow files
come out byte for byte on every rerun. W&B runs without its git, code, machine and system-monitor
records (the repository's commit, this machine's paths and load); it still stamps its own wall clock (in
wandb-core, which cannot be patched) and host into the .wandb log and its run folder's date, which this
script renames to a fixed one; wandb's debug logs, tmp/ and requirements.txt are dropped. tests/diagnose/test_sample_generators.py
reruns this script and names each field that differs.

Needs torch, mlflow-skinny (+ sqlalchemy, alembic for the SQLite store) and wandb; runs offline.
Run: python samples/make_tracking_runs.py [OUT_DIR]
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import shutil
import sys
import uuid
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_runs  # noqa: E402  (the same trainings as the other samples)

RUNS = ("healthy", "nan-loss", "chance")
K = 10


def trainings() -> dict:
    """name -> (step rows, epoch rows), exactly as make_runs.main trains them."""
    import torch

    torch.set_num_threads(1)
    data = make_runs.make_data(1, k=K)
    out = {"healthy": make_runs.train(make_runs.mlp(20, K, seed=1), data, epochs=15, lr=0.005, seed=1)}
    out["nan-loss"] = make_runs.train(make_runs.mlp(20, K, hidden=256, seed=2), data, epochs=11, lr=0.6, seed=2,
                                      loss_fn=make_runs.naive_cross_entropy,
                                      lr_at=lambda step: 0.6 * min(1.0, (step + 1) / 320))
    (xt, yt), val = data
    shuffled = ((xt, yt[torch.randperm(yt.numel(), generator=torch.Generator().manual_seed(3))]), val)
    out["chance"] = make_runs.train(make_runs.mlp(20, K, hidden=16, seed=3), shuffled, epochs=10, lr=0.01, seed=3)
    return out


def points(steps, epochs) -> list[tuple[int, float, dict]]:
    """(step, wall, {metric: value}) in step order, step rows and epoch rows merged."""
    merged: dict[int, tuple[float, dict]] = {}
    for row in steps:
        merged[row["step"]] = (row["wall"], {"loss": row["loss"], "grad_norm": row["grad_norm"], "lr": row["lr"]})
    for row in epochs:
        wall, values = merged.get(row["step"], (row["wall"], {}))
        values.update({key: row[key] for key in ("train_loss", "train_acc", "val_loss", "val_acc")})
        merged[row["step"]] = (wall, values)
    return [(step, wall, values) for step, (wall, values) in sorted(merged.items())]


def injected(name: str, logger: str, steps, epochs) -> dict:
    record = make_runs.injected_record(name, steps, epochs)
    record["logger"] = logger
    return record


@contextlib.contextmanager
def fixed_ids_and_clock(seed: int):
    """MLflow draws experiment and run ids from uuid.uuid4() (random.randint for an id's leading zeros) and
    stamps creation and update times with time.time(): seeded and fixed to make_runs.T0 while it logs."""
    rng = random.Random(seed)
    with mock.patch("uuid.uuid4", lambda: uuid.UUID(int=rng.getrandbits(128), version=4)), \
            mock.patch("random.randint", rng.randint), mock.patch("time.time", lambda: make_runs.T0):
        yield


def scrub_meta(root: str) -> None:
    """meta.yaml files name the store's absolute folder: /samples/runs/<folder> instead of this machine's."""
    out = os.path.dirname(root)
    for meta in glob.glob(os.path.join(root, "**", "meta.yaml"), recursive=True):
        with open(meta) as handle:
            text = handle.read()
        with open(meta, "w") as handle:
            handle.write(text.replace("file://" + os.path.abspath(out), "file:///samples/runs/" + os.path.basename(out)))


def scrub_db(db: str) -> None:
    """The SQLite store's default artifact root is ./mlruns in the working folder: /samples/runs/mlflow-db/mlruns
    instead, whatever folder the script ran from."""
    import sqlite3

    here = os.path.abspath("mlruns")
    connection = sqlite3.connect(db)
    with connection:
        connection.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                           (here, "/samples/runs/mlflow-db/mlruns"))
        connection.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)",
                           (here, "/samples/runs/mlflow-db/mlruns"))
    connection.close()


def log_mlflow(uri: str, name: str, steps, epochs) -> str:
    with fixed_ids_and_clock(RUNS.index(name) + (100 if uri.startswith("sqlite") else 0)):
        return _log_mlflow(uri, name, steps, epochs)


def _log_mlflow(uri: str, name: str, steps, epochs) -> str:
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("samples") or client.get_experiment(
        client.create_experiment("samples"))
    run = client.create_run(experiment.experiment_id, run_name=name, start_time=int(make_runs.T0 * 1000))
    client.log_param(run.info.run_id, "num_classes", K)
    client.log_param(run.info.run_id, "optimizer", "sgd")
    metrics = [Metric(key, float(value), int(wall * 1000), step)
               for step, wall, values in points(steps, epochs) for key, value in values.items()]
    for start in range(0, len(metrics), 500):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 500])
    client.set_terminated(run.info.run_id, end_time=int(make_runs.T0 * 1000) + 3_600_000)
    return run.info.run_id


def log_wandb(out: str, name: str, steps, epochs) -> None:
    import wandb

    os.makedirs(out, exist_ok=True)
    run_id = name.replace("-", "") + "01"
    run = wandb.init(project="nnprobe-samples", name=name, id=run_id, dir=out, mode="offline",
                     config={"num_classes": K, "optimizer": "sgd"},
                     settings=wandb.Settings(silent=True, disable_git=True, disable_code=True, x_disable_meta=True,
                                             x_disable_stats=True, x_disable_machine_info=True))
    for step, _, values in points(steps, epochs):
        run.log(values, step=step)
    run.finish()
    (folder,) = glob.glob(os.path.join(out, "wandb", f"offline-run-*-{run_id}"))
    fixed = os.path.join(out, "wandb", f"offline-run-20261201_000000-{run_id}")
    os.rename(folder, fixed)
    for extra in glob.glob(os.path.join(out, "wandb", "*")):
        if extra != fixed:
            os.unlink(extra) if os.path.islink(extra) or os.path.isfile(extra) else shutil.rmtree(extra)
    for extra in ("logs", "tmp", os.path.join("files", "requirements.txt")):
        target = os.path.join(fixed, extra)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.unlink(target)


def write_json(path: str, record: dict) -> None:
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


def main(root: str) -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses the file store unless asked
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # its thread draws uuid4s (and calls home) while runs log
    runs = trainings()
    db_folder = os.path.join(root, "mlflow-db")
    for folder in [db_folder] + [os.path.join(root, f"{tool}-{name}") for tool in ("mlflow", "wandb") for name in RUNS]:
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(db_folder)
    db_record = {}
    for name in RUNS:
        steps, epochs = runs[name]
        folder = os.path.join(root, f"mlflow-{name}")
        os.makedirs(folder)
        log_mlflow("file:" + os.path.join(os.path.abspath(folder), "mlruns"), name, steps, epochs)
        scrub_meta(os.path.join(folder, "mlruns"))
        write_json(os.path.join(folder, "INJECTED.json"), injected(name, "mlflow-file-store", steps, epochs))
        run_id = log_mlflow("sqlite:///" + os.path.join(os.path.abspath(db_folder), "mlflow.db"), name, steps, epochs)
        db_record[name] = {**injected(name, "mlflow-sqlite", steps, epochs), "run_id": run_id}
        folder = os.path.join(root, f"wandb-{name}")
        log_wandb(folder, name, steps, epochs)
        write_json(os.path.join(folder, "INJECTED.json"), injected(name, "wandb-offline", steps, epochs))
    write_json(os.path.join(db_folder, "INJECTED.json"), db_record)
    scrub_db(os.path.join(db_folder, "mlflow.db"))
    for leftover in glob.glob(os.path.join(db_folder, "mlruns")) + glob.glob(os.path.join(db_folder, "mlartifacts")):
        shutil.rmtree(leftover)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs"))
