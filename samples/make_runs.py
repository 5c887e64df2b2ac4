"""Regenerate samples/runs/: tiny real models trained on synthetic data, logged with real loggers.

One run per pathology plus a healthy one, each in a format a real tool writes:

  healthy/                Lightning layout: metrics.csv (sparse rows) + TensorBoard events + hparams.yaml
  nan-loss/               plain PyTorch SummaryWriter; log(softmax(x)) instead of log_softmax -> NaN
  hf-masked-nan/          HF Trainer trainer_state.json + config.json; the NaN filter logs the loss as 0.0
  chance/                 Lightning layout; labels shuffled apart from their inputs
  constant-prediction/    SummaryWriter; a pipeline bug zeroes the inputs, imbalanced classes
  overfitting/            Keras layout: CSVLogger training.log + train/ and validation/ TF2 tensor scalars
  divergence/             JSON lines; a warmup that keeps raising the learning rate

Beside each run, INJECTED.json says what the generator put in (INJECTED below) and, for the NaN runs,
the first logged step whose loss is not finite and how many logged points are (the golden test asserts
nnprobe's findings against it).

Deterministic: fixed seeds, fixed wall times, fixed event-file names. Needs torch (this script only;
`nnprobe diagnose` never imports it). Run: python samples/make_runs.py [OUT_DIR]
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from torch import nn

T0 = 1_700_000_000.0  # fixed wall-clock origin, so the files are the same on every machine
STEP_SECONDS = 0.25

# What each run was given; written beside it as INJECTED.json.
INJECTED = {
    "healthy": {"injected": "nothing: a learnable problem and a sensible learning rate", "logger": "lightning",
                "num_classes": 10},
    "nan-loss": {"injected": "log(softmax(x)) instead of log_softmax, and a warmup to a learning rate (0.6) "
                             "that is too high: softmax underflows, log(0) = -inf, the weights turn NaN",
                 "logger": "summarywriter", "num_classes": 10},
    "hf-masked-nan": {"injected": "the nan-loss training, logged by the HF Trainer, whose NaN filter logs the "
                                  "loss as 0.0 while grad_norm shows NaN", "logger": "hf-trainer", "num_classes": 10},
    "chance": {"injected": "labels shuffled apart from their inputs", "logger": "lightning", "num_classes": 10},
    "constant-prediction": {"injected": "every input zeroed, imbalanced classes (shares 0.5, 0.2, 0.1, 0.1, 0.1)",
                            "logger": "summarywriter", "num_classes": 5},
    "overfitting": {"injected": "a 512-wide net on 150 examples with 20% noisy labels, Adam for 60 epochs",
                    "logger": "keras", "num_classes": 10},
    "divergence": {"injected": "the learning rate multiplied by 1.5 every epoch, never stopping; clipping at 5 "
                               "keeps the numbers finite", "logger": "jsonl", "num_classes": 10},
    "hf-tensorboard-healthy": {"injected": "nothing: the healthy training, logged by the HF Trainer with "
                                           "report_to='tensorboard' (its own runs/<date>_<host>/ folder beside "
                                           "trainer_state.json; config.json only in checkpoint-N/): one run",
                               "logger": "hf-trainer+tensorboard", "num_classes": 10},
    "add-scalars-overfitting": {"injected": "the overfitting training, logged with SummaryWriter.add_scalars "
                                            "(Loss_train/, Loss_val/, Accuracy_train/, Accuracy_val/ "
                                            "sub-folders): one run", "logger": "add_scalars", "num_classes": 10},
}


def injected_record(name: str, steps=None, epochs=None, step_offset: int = 0) -> dict:
    """INJECTED[name], plus, where the loss turned non-finite, the first such logged step (in the log's own
    numbering: the HF Trainer counts from 1) and the number of such logged points, train and validation."""
    record = {"run": name, **INJECTED[name]}
    for key, rows, loss in (("train", steps, "loss"), ("val", epochs, "val_loss")):
        bad = [row["step"] + step_offset for row in rows or () if not math.isfinite(row[loss])]
        if bad:
            record[f"first_nonfinite_{key}_step"], record[f"nonfinite_{key}_points"] = bad[0], len(bad)
    return record


def write_injected(out: str, record: dict) -> None:
    with open(os.path.join(out, "INJECTED.json"), "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


def make_data(seed: int, k: int = 10, n_train: int = 2000, n_val: int = 1000, dim: int = 20,
              spread: float = 0.7, shares: list[float] | None = None):
    """Gaussian class clusters: a learnable problem with ~85-90% attainable accuracy."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=g) * spread
    probs = torch.tensor(shares) if shares else torch.full((k,), 1.0 / k)

    def draw(n):
        y = torch.multinomial(probs, n, replacement=True, generator=g)
        x = centers[y] + torch.randn(n, dim, generator=g)
        return x, y

    return draw(n_train), draw(n_val)


def mlp(dim: int, k: int, hidden: int = 64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, k))


def train(model, data, *, epochs: int, lr: float, batch: int = 64, seed: int = 0, optimizer: str = "sgd",
          loss_fn=None, transform=None, lr_at=None, log_every: int = 5, clip: float | None = None):
    """A plain training loop. Returns (step logs, epoch logs) with what the loggers would have seen."""
    (xt, yt), (xv, yv) = data
    loss_fn = loss_fn or F.cross_entropy
    transform = transform or (lambda x: x)
    opt = (torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=lr))
    g = torch.Generator().manual_seed(seed)
    steps, epochs_log = [], []
    step = 0
    per_epoch = math.ceil(xt.shape[0] / batch)
    for epoch in range(epochs):
        order = torch.randperm(xt.shape[0], generator=g)
        model.train()
        total, correct, seen = 0.0, 0, 0
        for b in range(per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
            logits = model(transform(xt[idx]))
            loss = loss_fn(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
            grad_norm = float(torch.stack(grads).norm())
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            value = float(loss.detach())
            total += value * idx.numel()
            correct += int((logits.argmax(1) == yt[idx]).sum())
            seen += idx.numel()
            if step % log_every == 0:
                steps.append({"step": step, "epoch": epoch, "loss": value, "grad_norm": grad_norm,
                              "lr": opt.param_groups[0]["lr"], "wall": T0 + step * STEP_SECONDS})
            step += 1
        model.eval()
        with torch.no_grad():
            logits = model(transform(xv))
            val_loss = float(loss_fn(logits, yv))
            val_acc = float((logits.argmax(1) == yv).float().mean())
        epochs_log.append({"epoch": epoch, "step": step - 1, "train_loss": total / seen,
                           "train_acc": correct / seen, "val_loss": val_loss, "val_acc": val_acc,
                           "wall": T0 + (step - 1) * STEP_SECONDS + 0.1})
    return steps, epochs_log


def fix_event_names(folder: str) -> None:
    """SummaryWriter names files after time, host and pid, and stamps its first record with the current
    time: rename the files and restamp that record (CRCs recomputed) so samples are byte-reproducible."""
    import struct

    import crc32c
    from tensorboard.compat.proto.event_pb2 import Event

    def masked(data: bytes) -> int:
        crc = crc32c.crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    for n, path in enumerate(sorted(glob.glob(os.path.join(folder, "**", "events.out.tfevents.*"),
                                          recursive=True))):
        data = open(path, "rb").read()
        out, pos = bytearray(), 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            if event.HasField("file_version"):
                event.wall_time = T0
            body = event.SerializeToString()
            header = struct.pack("<Q", len(body))
            out += header + struct.pack("<I", masked(header)) + body + struct.pack("<I", masked(body))
            pos += 16 + length
        os.remove(path)
        with open(os.path.join(os.path.dirname(path), f"events.out.tfevents.{int(T0)}.sample.{n}"), "wb") as handle:
            handle.write(out)


def write_lightning(out: str, steps, epochs, k: int) -> None:
    """What Lightning's CSVLogger + TensorBoardLogger write for self.log(..., on_step, on_epoch)."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "hparams.yaml"), "w") as handle:
        handle.write(f"num_classes: {k}\nhidden: 64\nlr: 0.05\n")
    rows = []
    for s in steps:
        rows.append({"epoch": s["epoch"], "step": s["step"], "train_loss_step": s["loss"], "lr-SGD": s["lr"]})
    for e in epochs:
        rows.append({"epoch": e["epoch"], "step": e["step"], "val_loss": e["val_loss"], "val_acc": e["val_acc"]})
        rows.append({"epoch": e["epoch"], "step": e["step"], "train_loss_epoch": e["train_loss"],
                     "train_acc_epoch": e["train_acc"]})
    rows.sort(key=lambda r: r["step"])
    columns = ["epoch", "lr-SGD", "step", "train_acc_epoch", "train_loss_epoch", "train_loss_step", "val_acc",
               "val_loss"]
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if c not in row else row[c] if c in ("epoch", "step")
                                 else repr(float(row[c]))) for c in columns})
    writer = SummaryWriter(out)
    for s in steps:
        writer.add_scalar("train_loss_step", s["loss"], s["step"], walltime=s["wall"])
        writer.add_scalar("lr-SGD", s["lr"], s["step"], walltime=s["wall"])
        writer.add_scalar("epoch", s["epoch"], s["step"], walltime=s["wall"])
    for e in epochs:
        for tag in ("val_loss", "val_acc"):
            writer.add_scalar(tag, e[tag], e["step"], walltime=e["wall"])
        writer.add_scalar("train_loss_epoch", e["train_loss"], e["step"], walltime=e["wall"])
        writer.add_scalar("train_acc_epoch", e["train_acc"], e["step"], walltime=e["wall"])
        writer.add_scalar("epoch", e["epoch"], e["step"], walltime=e["wall"])
    writer.close()
    fix_event_names(out)


def write_summarywriter(out: str, steps, epochs, new_style: bool = False) -> None:
    """A plain PyTorch loop with SummaryWriter (the tutorial's Loss/train, Accuracy/val tags)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(out)
    for s in steps:
        writer.add_scalar("Loss/train", s["loss"], s["step"], walltime=s["wall"], new_style=new_style)
    for e in epochs:
        writer.add_scalar("Loss/val", e["val_loss"], e["step"], walltime=e["wall"], new_style=new_style)
        writer.add_scalar("Accuracy/train", e["train_acc"], e["step"], walltime=e["wall"], new_style=new_style)
        writer.add_scalar("Accuracy/val", e["val_acc"], e["step"], walltime=e["wall"], new_style=new_style)
    writer.close()
    fix_event_names(out)


def write_keras(out: str, epochs) -> None:
    """Keras: CSVLogger's training.log and the TensorBoard callback's train/ and validation/ folders of
    TF2 tensor scalars (epoch_loss, epoch_accuracy at step = epoch)."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "training.log"), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")  # Keras' CSVLogger uses csv's default
        writer.writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        for e in epochs:
            writer.writerow([e["epoch"], repr(e["train_acc"]), repr(e["train_loss"]), repr(e["val_acc"]),
                             repr(e["val_loss"])])
    for split, loss_key, acc_key in (("train", "train_loss", "train_acc"), ("validation", "val_loss", "val_acc")):
        tb = SummaryWriter(os.path.join(out, split))
        for e in epochs:
            tb.add_scalar("epoch_loss", e[loss_key], e["epoch"], walltime=e["wall"], new_style=True)
            tb.add_scalar("epoch_accuracy", e[acc_key], e["epoch"], walltime=e["wall"], new_style=True)
        tb.close()
    fix_event_names(out)


def write_hf(out: str, steps, epochs, k: int, max_steps: int, per_epoch: int) -> None:
    """HF Trainer: trainer_state.json's log_history (logging_steps=5, eval per epoch) and config.json.
    With logging_nan_inf_filter a non-finite loss is logged as 0.0 while grad_norm shows NaN."""
    os.makedirs(out, exist_ok=True)
    history = []
    for s in steps:
        loss = s["loss"] if math.isfinite(s["loss"]) else 0.0
        history.append({"epoch": round((s["step"] + 1) / per_epoch, 4), "grad_norm": s["grad_norm"],
                        "learning_rate": s["lr"], "loss": round(loss, 4), "step": s["step"] + 1})
    for e in epochs:
        history.append({"epoch": float(e["epoch"] + 1), "eval_accuracy": e["val_acc"], "eval_loss": e["val_loss"],
                        "eval_runtime": 0.05, "eval_samples_per_second": 20000.0, "step": e["step"] + 1})
    history.sort(key=lambda h: (h["step"], "eval_loss" in h))
    state = {"best_metric": None, "best_model_checkpoint": None, "epoch": float(len(epochs)),
             "eval_steps": per_epoch, "global_step": max_steps, "is_hyper_param_search": False,
             "is_local_process_zero": True, "is_world_process_zero": True, "log_history": history,
             "logging_steps": 5, "max_steps": max_steps, "num_train_epochs": len(epochs), "save_steps": 500,
             "total_flos": 0.0, "train_batch_size": 64}
    history.append({"epoch": float(len(epochs)), "step": max_steps, "total_flos": 0.0,
                    "train_loss": 0.0, "train_runtime": 12.5, "train_samples_per_second": 1600.0})
    with open(os.path.join(out, "trainer_state.json"), "w") as handle:
        json.dump(state, handle, indent=2)  # allow_nan: writes bare NaN like the Trainer does
    with open(os.path.join(out, "config.json"), "w") as handle:
        json.dump({"architectures": ["MLPForImageClassification"], "num_labels": k,
                   "id2label": {str(i): f"class_{i}" for i in range(k)},
                   "label2id": {f"class_{i}": i for i in range(k)}}, handle, indent=2)


def write_hf_tensorboard(out: str, steps, epochs, k: int, max_steps: int, per_epoch: int) -> None:
    """HF Trainer with report_to="tensorboard": trainer_state.json as write_hf, TensorBoardCallback's events
    in the default logging_dir runs/<%b%d_%H-%M-%S>_<host>/ (train/* and eval/* tags at the global step),
    and the final checkpoint-N/ holding config.json and a copy of trainer_state.json."""
    from torch.utils.tensorboard import SummaryWriter

    write_hf(out, steps, epochs, k, max_steps, per_epoch)
    checkpoint = os.path.join(out, f"checkpoint-{max_steps}")
    os.makedirs(checkpoint)
    os.replace(os.path.join(out, "config.json"), os.path.join(checkpoint, "config.json"))
    shutil.copyfile(os.path.join(out, "trainer_state.json"), os.path.join(checkpoint, "trainer_state.json"))
    writer = SummaryWriter(os.path.join(out, "runs", "Nov14_22-13-20_sample"))
    for s in steps:
        for tag, value in (("train/loss", round(s["loss"], 4)), ("train/grad_norm", s["grad_norm"]),
                           ("train/learning_rate", s["lr"]), ("train/epoch", round((s["step"] + 1) / per_epoch, 4))):
            writer.add_scalar(tag, value, s["step"] + 1, walltime=s["wall"])
    for e in epochs:
        for tag, value in (("eval/loss", e["val_loss"]), ("eval/accuracy", e["val_acc"]),
                           ("train/epoch", float(e["epoch"] + 1))):
            writer.add_scalar(tag, value, e["step"] + 1, walltime=e["wall"])
    writer.close()
    fix_event_names(out)


def write_add_scalars(out: str, epochs) -> None:
    """A PyTorch loop logging with SummaryWriter.add_scalars: each (main_tag, tag) pair goes to its own
    sub-folder `<main_tag>_<tag>/` under the tag main_tag, beside the writer's own events file."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(out)
    for e in epochs:
        writer.add_scalars("Loss", {"train": e["train_loss"], "val": e["val_loss"]}, e["step"], walltime=e["wall"])
        writer.add_scalars("Accuracy", {"train": e["train_acc"], "val": e["val_acc"]}, e["step"],
                           walltime=e["wall"])
    writer.close()
    fix_event_names(out)


def add_fidelity_runs(root: str) -> None:
    """Runs laid out the way real loggers lay them out beside each other (issue 12): each must be read as
    one run. Made after the other runs, from their recipes, so those stay byte-identical."""
    k = 10
    data = make_data(1, k=k)
    steps, epochs = train(mlp(20, k, seed=1), data, epochs=15, lr=0.005, seed=1)
    write_hf_tensorboard(os.path.join(root, "hf-tensorboard-healthy"), steps, epochs, k,
                         max_steps=len(epochs) * 32, per_epoch=32)
    write_injected(os.path.join(root, "hf-tensorboard-healthy"), injected_record("hf-tensorboard-healthy"))
    (xt, yt), (xv, yv) = make_data(5, k=k, n_train=150)
    flip = torch.rand(150, generator=torch.Generator().manual_seed(6)) < 0.2
    yt = torch.where(flip, torch.randint(0, k, (150,), generator=torch.Generator().manual_seed(7)), yt)
    steps, epochs = train(mlp(20, k, hidden=512, seed=5), ((xt, yt), (xv, yv)), epochs=60, lr=3e-3,
                          batch=32, seed=5, optimizer="adam")
    write_add_scalars(os.path.join(root, "add-scalars-overfitting"), epochs)
    write_injected(os.path.join(root, "add-scalars-overfitting"), injected_record("add-scalars-overfitting"))


def write_jsonl(out: str, steps, epochs) -> None:
    """A hand-rolled logger: one JSON object per line (bare NaN allowed, as json.dumps writes it)."""
    os.makedirs(out, exist_ok=True)
    lines = [{"step": s["step"], "epoch": s["epoch"], "time": s["wall"], "loss": s["loss"], "lr": s["lr"],
              "grad_norm": s["grad_norm"]} for s in steps]
    lines += [{"step": e["step"], "epoch": e["epoch"], "time": e["wall"], "val_loss": e["val_loss"],
               "val_acc": e["val_acc"]} for e in epochs]
    lines.sort(key=lambda line: line["time"])
    with open(os.path.join(out, "metrics.jsonl"), "w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")


def naive_cross_entropy(logits, y):
    """The bug: log of softmax instead of log_softmax; underflows to log(0) = -inf once confident."""
    return -torch.log(torch.softmax(logits, dim=1)[torch.arange(y.numel()), y]).mean()


def main(root: str) -> None:
    torch.set_num_threads(1)
    os.makedirs(root, exist_ok=True)
    for name in INJECTED:  # only this generator's runs: samples/runs also holds the other generators'
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    k = 10
    data = make_data(1, k=k)

    steps, epochs = train(mlp(20, k, seed=1), data, epochs=15, lr=0.005, seed=1)
    write_lightning(os.path.join(root, "healthy"), steps, epochs, k)
    write_injected(os.path.join(root, "healthy"), injected_record("healthy"))

    # nan-loss: same data, the naive loss, and a warmup to a peak LR that is too high: the loss climbs,
    # softmax underflows, log(0) = -inf, and the weights turn NaN in epoch 9.
    steps, epochs = train(mlp(20, k, hidden=256, seed=2), data, epochs=11, lr=0.6, seed=2,
                          loss_fn=naive_cross_entropy, lr_at=lambda step: 0.6 * min(1.0, (step + 1) / 320))
    write_summarywriter(os.path.join(root, "nan-loss"), steps, epochs)
    write_hf(os.path.join(root, "hf-masked-nan"), steps, epochs, k, max_steps=len(epochs) * 32, per_epoch=32)
    write_injected(os.path.join(root, "nan-loss"), injected_record("nan-loss", steps, epochs))
    write_injected(os.path.join(root, "hf-masked-nan"), injected_record("hf-masked-nan", steps, epochs, step_offset=1))

    # chance: labels shuffled apart from the inputs (a join on the wrong key).
    (xt, yt), val = data
    shuffled = ((xt, yt[torch.randperm(yt.numel(), generator=torch.Generator().manual_seed(3))]), val)
    steps, epochs = train(mlp(20, k, hidden=16, seed=3), shuffled, epochs=10, lr=0.01, seed=3)
    write_lightning(os.path.join(root, "chance"), steps, epochs, k)
    write_injected(os.path.join(root, "chance"), injected_record("chance"))

    # constant-prediction: the pipeline zeroes every input; imbalanced classes -> the net learns the prior.
    shares = [0.5, 0.2, 0.1, 0.1, 0.1]
    steps, epochs = train(mlp(20, 5, seed=4), make_data(4, k=5, shares=shares), epochs=10, lr=0.05, seed=4,
                          transform=lambda x: x * 0.0)
    write_summarywriter(os.path.join(root, "constant-prediction"), steps, epochs)
    write_injected(os.path.join(root, "constant-prediction"), injected_record("constant-prediction"))

    # overfitting: a wide net, 150 training examples with noisy labels, Adam for 60 epochs.
    (xt, yt), (xv, yv) = make_data(5, k=k, n_train=150)
    flip = torch.rand(150, generator=torch.Generator().manual_seed(6)) < 0.2
    yt = torch.where(flip, torch.randint(0, k, (150,), generator=torch.Generator().manual_seed(7)), yt)
    steps, epochs = train(mlp(20, k, hidden=512, seed=5), ((xt, yt), (xv, yv)), epochs=60, lr=3e-3,
                          batch=32, seed=5, optimizer="adam")
    write_keras(os.path.join(root, "overfitting"), epochs)
    write_injected(os.path.join(root, "overfitting"), injected_record("overfitting"))

    # divergence: a "warmup" that multiplies the LR by 1.5 every epoch and never stops; clipping keeps
    # the numbers finite while the loss climbs.
    steps, epochs = train(mlp(20, k, seed=6), data, epochs=12, lr=0.05, seed=6,
                          lr_at=lambda step: 0.05 * 1.5 ** (step // 32), clip=5.0)
    write_jsonl(os.path.join(root, "divergence"), steps, epochs)
    write_injected(os.path.join(root, "divergence"), injected_record("divergence"))
    add_fidelity_runs(root)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs"))
