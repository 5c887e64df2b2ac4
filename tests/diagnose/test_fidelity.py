"""Real-world fidelity (issue 12): each case a report found in logs written by real frameworks, rebuilt as a
small synthetic run laid out the way that framework writes it. Expectations come from the case (one run,
an error, K = the generator's K), never from nnprobe's output."""
from __future__ import annotations

import json
import math

import numpy as np

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.run import infer_num_classes
from nnprobe.diagnosis.series import Series

from diagnose_helpers import SAMPLES, write_events, write_jsonl
from test_checks import S, ctx, fired


def findings(d, check_id=None):
    return [(f.id, f.severity) for run in d.runs for o in run.outcomes for f in o.findings
            if check_id is None or f.id == check_id]


def outcome(d, check_id):
    (run,) = d.runs
    return next(o for o in run.outcomes if o.id == check_id)


# ------------------------------------------------------------------------------ one run, not several

def _hf_run(tmp_path, k=3, nan_at=7, epochs=4, per_epoch=5):
    """HF Trainer with report_to="tensorboard": trainer_state.json in output_dir, the events file in its
    default logging_dir output_dir/runs/<%b%d_%H-%M-%S>_<host>/, config.json only in checkpoint-N/."""
    out = tmp_path / "out"
    history, points = [], []
    for step in range(1, epochs * per_epoch + 1):
        loss = float("nan") if step == nan_at else 2.0 / step
        history.append({"epoch": step / per_epoch, "learning_rate": 1e-3, "loss": loss, "step": step})
        points += [("train/loss", loss, step, 1000.0 + step), ("train/learning_rate", 1e-3, step, 1000.0 + step)]
        if step % per_epoch == 0:
            history.append({"epoch": step / per_epoch, "eval_loss": 0.5, "eval_accuracy": 0.8, "step": step})
            points += [("eval/loss", 0.5, step, 1000.5 + step), ("eval/accuracy", 0.8, step, 1000.5 + step)]
    out.mkdir()
    (out / "trainer_state.json").write_text(json.dumps({"log_history": history, "global_step": epochs * per_epoch,
                                                        "max_steps": epochs * per_epoch}))
    write_events(out / "runs" / "Dec01_10-10-10_gpu-node-3" / "events.out.tfevents.1.gpu-node-3.1.0", points)
    checkpoint = out / f"checkpoint-{epochs * per_epoch}"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"id2label": {str(i): f"c{i}" for i in range(k)}}))
    return out


def test_hf_trainer_state_and_its_tensorboard_folder_are_one_run(tmp_path):
    out = _hf_run(tmp_path)
    d = diagnose(out)
    assert len(d.runs) == 1
    (run,) = d.runs
    assert sorted(s.format for s in run.sources) == ["hf-trainer-state", "tensorboard"]
    assert findings(d, "loss-not-finite") == [("loss-not-finite", "error")]  # once, not once per source
    assert run.num_classes == 3 and "config.json" in run.num_classes_source  # from checkpoint-20/config.json


def test_hf_tensorboard_folder_alone_and_a_second_trainer_folder_stay_runs(tmp_path):
    out = _hf_run(tmp_path)
    assert len(diagnose(out / "runs" / "Dec01_10-10-10_gpu-node-3").runs) == 1
    other = tmp_path / "sweep" / "runs" / "Dec01_10-10-10_gpu-node-3"  # no trainer_state beside: its own run
    write_events(other / "events.out.tfevents.2", [("train/loss", 1.0, s, 5.0 + s) for s in range(5)])
    assert len(diagnose(tmp_path / "sweep").runs) == 1


def _add_scalars_run(root, base=2000.0):
    """tensorboardX / torch SummaryWriter: the writer's own events file in the run folder, and
    add_scalars("loss", {"train": .., "val": ..}) / add_scalars("acc", {"val": ..}) writing each into
    `<run>/<main_tag>_<tag>/` under the tag main_tag."""
    write_events(root / "events.out.tfevents.1.host", [("lr", 0.1, s, base + s) for s in range(10)])
    write_events(root / "loss_train" / "events.out.tfevents.2.host",
                 [("loss", 2.0 - 0.1 * s, s, base + s) for s in range(10)])
    write_events(root / "loss_val" / "events.out.tfevents.3.host",
                 [("loss", 2.1 - 0.1 * s, s, base + s + 0.5) for s in range(10)])
    write_events(root / "acc_val" / "events.out.tfevents.4.host",
                 [("acc", 0.3 + 0.05 * s, s, base + s + 0.5) for s in range(10)])


def test_add_scalars_sub_folders_are_one_run_with_main_tag_slash_tag(tmp_path):
    _add_scalars_run(tmp_path / "run")
    d = diagnose(tmp_path / "run")
    assert len(d.runs) == 1
    mapping = {m.role: m.series for m in d.runs[0].mapping}
    assert mapping["train_loss"] == "loss/train" and mapping["val_loss"] == "loss/val"
    assert mapping["val_acc"] == "acc/val" and mapping["lr"] == "lr"


def test_sibling_runs_without_a_parent_writer_stay_separate(tmp_path):
    for name, base in (("exp_a", 0.0), ("exp_b", 0.0)):
        write_events(tmp_path / "runs" / name / "events.out.tfevents.1",
                     [("loss", 1.0 / (s + 1), s, base + s) for s in range(5)])
    write_events(tmp_path / "lightning_logs" / "events.out.tfevents.0", [("x", 1.0, 0, 1.0)])
    write_events(tmp_path / "lightning_logs" / "version_1" / "events.out.tfevents.1", [("loss", 1.0, 0, 1.0)])
    assert len(diagnose(tmp_path / "runs").runs) == 2
    assert len(diagnose(tmp_path / "lightning_logs").runs) == 2


# ------------------------------------------------------------------------------ constant prediction

def test_constant_prediction_judges_only_the_frozen_window():
    """The model learned (acc 0.35 -> 0.62, train loss 2.3 -> 1.0) then collapsed to one class of 10: acc
    exactly 0.1 for 6 evaluations while the per-step train loss sits at ln 10."""
    acc = [0.35, 0.5, 0.62] + [0.1] * 6
    eval_steps = np.arange(1, 10) * 100
    steps = np.arange(1, 901)
    loss = np.where(steps <= 300, 2.3 - 1.3 * steps / 300, math.log(10))
    loss[300:400] = np.linspace(1.0, math.log(10), 100)  # the collapse, inside the first frozen interval
    c = ctx(k=10, val_acc=S("val_acc", acc, eval_steps), train_loss=S("train_loss", loss, steps))
    assert fired("constant-prediction", c)[0][0] == "error"
    assert len(fired("constant-prediction", c)) == 1


def test_frozen_accuracy_far_above_any_class_share_is_no_error():
    """Overfitting run with a decayed (not logged) learning rate: val acc 0.93 for 5 evaluations, val loss
    flat at 0.6. 10 classes: no class holds 93% of a plausible validation set."""
    c = ctx(k=10, val_acc=S("val_acc", [0.8, 0.9] + [0.93] * 5), val_loss=S("val_loss", [0.5, 0.55] + [0.6] * 5))
    assert [s for s, _ in fired("constant-prediction", c)] == ["info"]
    c = ctx(val_acc=S("val_acc", [0.8, 0.9] + [0.93] * 5), val_loss=S("val_loss", [0.5, 0.55] + [0.6] * 5))
    assert [s for s, _ in fired("constant-prediction", c)] == ["info"]  # K unknown: bound 0.5
    # the same freeze at a one-class share (1/10) is the error
    c = ctx(k=10, val_acc=S("val_acc", [0.1] * 5), val_loss=S("val_loss", [2.3026] * 5))
    assert [s for s, _ in fired("constant-prediction", c)] == ["error"]


# ------------------------------------------------------------------------------ divergence

def test_divergence_without_nan_is_an_error():
    """Loss 1e15 in epoch 0, then flat at ~300x ln 10 for 19 epochs (no NaN)."""
    values = [1e15] + [300 * math.log(10)] * 19
    assert [s for s, _ in fired("divergence", ctx(k=10, train_loss=S("epoch_loss", values)))] == ["error"]
    assert [s for s, _ in fired("divergence", ctx(train_loss=S("epoch_loss", values)))] == ["error"]  # K unknown
    # a healthy loss with reduction='sum' (batch 256 x ln 10 at init, then falling) is no divergence
    summed = list(256 * math.log(10) * np.exp(-np.arange(20) / 5))
    assert fired("divergence", ctx(k=10, train_loss=S("loss", summed))) == []


def test_a_loss_ending_4_to_8_times_its_start_is_an_error():
    for factor in (4, 6, 8):
        values = np.linspace(1.0, float(factor), 40)
        assert [s for s, _ in fired("divergence", ctx(train_loss=S("loss", values)))] == ["error"], factor


# ------------------------------------------------------------------------------ overfitting

def test_val_loss_up_2_5x_is_an_error_despite_a_small_accuracy_gap():
    """Train loss keeps falling, val loss 0.5 at its minimum (epoch 4) then 1.25 at the end; train acc 0.90
    vs val acc 0.86 (gap 0.04, under the 0.10 accuracy threshold)."""
    n = 12
    train_loss = np.linspace(1.0, 0.2, n)
    val_loss = np.concatenate([np.linspace(1.0, 0.5, 5), np.linspace(0.6, 1.25, n - 5)])
    train_acc = np.linspace(0.6, 0.90, n)
    val_acc = np.concatenate([np.linspace(0.6, 0.86, 5), np.full(n - 5, 0.86)])
    c = ctx(train_loss=S("train_loss", train_loss), val_loss=S("val_loss", val_loss),
            train_acc=S("train_acc", train_acc), val_acc=S("val_acc", val_acc))
    assert [s for s, _ in fired("overfitting", c)] == ["error"]
    # a rise to 1.5x with the same small gap stays a warning
    milder = np.concatenate([val_loss[:5], np.linspace(0.52, 0.75, n - 5)])
    c = ctx(train_loss=S("train_loss", train_loss), val_loss=S("val_loss", milder),
            train_acc=S("train_acc", train_acc), val_acc=S("val_acc", val_acc))
    assert [s for s, _ in fired("overfitting", c)] == ["warning"]


# ------------------------------------------------------------------------------ chance level and K

def test_k_inferred_from_a_val_loss_flat_at_ln_k(tmp_path):
    """No K anywhere, first loss logged late (step 50); val loss at ln 10 +- 0.001 for 20 epochs, val acc
    around 0.1: the chance check runs with K = 10 and fails."""
    rng = np.random.default_rng(0)
    rows = [{"step": 50 * (i + 1), "train_loss": 2.0 - 0.001 * i} for i in range(40)]
    rows += [{"step": 100 * (e + 1), "epoch": e, "val_loss": math.log(10) + float(rng.uniform(-1e-3, 1e-3)),
              "val_acc": 0.1 + float(rng.uniform(-0.005, 0.005))} for e in range(20)]
    d = diagnose(write_jsonl(tmp_path / "log.jsonl", rows))
    (run,) = d.runs
    assert run.num_classes == 10 and run.num_classes_source.startswith("inferred")
    assert findings(d, "chance-accuracy") == [("chance-accuracy", "error")]


def test_no_k_from_a_flat_loss_between_two_integers(tmp_path):
    rows = [{"step": e, "val_loss": (math.log(10) + math.log(11)) / 2, "val_acc": 0.5} for e in range(20)]
    (run,) = diagnose(write_jsonl(tmp_path / "log.jsonl", rows)).runs
    assert run.num_classes is None


def test_first_loss_after_training_started_gives_no_k():
    for step in (2, 5, 10, 50):  # HF logging_steps=5: the mean loss of the first 5 updates, already learned
        late = Series("loss", "t", "jsonl", np.array([step, 100]), np.array([math.log(7), 1.0]),
                      np.full(2, np.nan), np.full(2, np.nan))
        assert infer_num_classes(late) is None, step  # ln 7 would say K = 7
    for step in (0, 1):
        early = Series("loss", "t", "jsonl", np.array([step, 100]), np.array([math.log(7), 1.0]),
                       np.full(2, np.nan), np.full(2, np.nan))
        assert infer_num_classes(early) == 7


def test_keras_tensorboard_update_freq_counters_do_not_skip_the_chance_check(tmp_path):
    """Keras TensorBoard(update_freq=10): train/ holds batch_loss at the global batch (0..990, 50 batches an
    epoch) and epoch_* at step = epoch; validation/ epoch_* at step = epoch. Val accuracy at chance (1/10)."""
    run = tmp_path / "logs"
    train = [("batch_loss", 2.3, b, 100.0 + b) for b in range(0, 1000, 10)]
    train += [(tag, v, e, 100.0 + 50 * e + 49) for e in range(20)
              for tag, v in (("epoch_loss", 2.3), ("epoch_accuracy", 0.1))]
    write_events(run / "train" / "events.out.tfevents.1.v2", train)
    write_events(run / "validation" / "events.out.tfevents.2.v2",
                 [(tag, v, e, 100.0 + 50 * e + 49.5) for e in range(20)
                  for tag, v in (("epoch_loss", 2.31), ("epoch_accuracy", 0.1))])
    d = diagnose(run, num_classes=10)
    mapping = {m.role: m.series for m in d.runs[0].mapping}
    assert mapping["train_loss"] == "train/epoch_loss"  # on the validation series' (epoch) counter
    assert mapping["val_loss"] == "validation/epoch_loss"
    assert outcome(d, "chance-accuracy").status == "flagged"
    assert findings(d, "chance-accuracy") == [("chance-accuracy", "error")]


def test_framework_layout_samples_are_one_run_each():
    """samples/make_runs.py's add_fidelity_runs: each folder is one run with every file of it read."""
    hf = diagnose(SAMPLES / "hf-tensorboard-healthy")
    (run,) = hf.runs
    assert sorted(s.format for s in run.sources) == ["hf-trainer-state", "tensorboard"]  # checkpoint copy: once
    config = json.loads((SAMPLES / "hf-tensorboard-healthy" / "checkpoint-480" / "config.json").read_text())
    assert run.num_classes == len(config["id2label"]) == 10
    folder = SAMPLES / "add-scalars-overfitting"
    (run,) = diagnose(folder).runs
    assert len(run.sources) == len(list(folder.rglob("events.out.tfevents.*"))) == 5
    sub = sorted(p.name for p in folder.iterdir() if p.is_dir())
    mapped = {m.series for m in run.mapping if m.series}
    assert mapped == {name.replace("_", "/") for name in sub}  # Loss_train/ -> Loss/train ...
