"""Regenerate the diagnose corpus (issue 18): real trainings of tiny models on scikit-learn's digits (the 8x8
images that ship inside scikit-learn), logged by nine real loggers. Run by hand, niced, not in CI:

  python samples/make_corpus_runs.py [OUT_DIR [LOGGER ...] [--case=NAME ...]]   (default OUT_DIR: samples/corpus)

Loggers: tb (torch SummaryWriter), tbx (tensorboardX), jsonl (json.dumps per line), mlflow (MLflow file store,
mlflow-skinny's client), wandb (W&B offline), lightning-csv / lightning-tb (Lightning's Trainer with CSVLogger /
TensorBoardLogger), keras (Keras 3 on torch, model.fit with CSVLogger), hf (transformers' Trainer). The first
five are written from one plain torch loop through each library's own API; the last four run their
framework's own training loop and write what it writes. Numbers are never edited: every pathology is made by
the training setup (CASES below), and each run's EXPECTED.json says what was done and which verdict follows:
`errors` the error finding ids diagnose must report (all of them), `allowed` other ids that may follow from the
same cause (a NaN network then predicts one class), `warnings` the warning ids expected (healthy runs: none).
Weights, optimizer states and machine-specific files are deleted; only logs and the config files diagnose
reads are kept. Versions of every package are recorded in corpus/VERSIONS.json.
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import sys
import copy
from dataclasses import asdict

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_cases import LOGGERS, PLAIN, RESUMED, Case, cases_for  # noqa: E402


def digits(case: Case, seed: int):
    """(x_train, y_train), (x_val, y_val) as float32 / int64 numpy, inputs scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x if case.raw_inputs else x / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    if case.imbalanced:
        keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:74], np.flatnonzero(y == 2)[:44]])
        x, y = x[keep], y[keep]
    order = rng.permutation(y.size)
    x, y = x[order], y[order].astype(np.int64)
    n_val = y.size // 5
    (xt, yt), (xv, yv) = (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])
    if case.n_train:
        xt, yt = xt[:case.n_train], yt[:case.n_train]
    k = int(y.max()) + 1
    if case.label_noise:
        flip = rng.random(yt.size) < case.label_noise
        yt = yt.copy()
        yt[flip] = rng.integers(0, k, int(flip.sum()))
    if case.shuffle_labels:
        yt = yt[rng.permutation(yt.size)]
    if case.zero_inputs:
        xt, xv = xt * 0, xv * 0
    if case.inf_sample:
        xt = xt.copy()
        xt[int(rng.integers(yt.size // 2, yt.size)), 5] = np.inf
    return (xt, yt), (xv, yv), k


def lr_at(case: Case, epoch_float: float) -> float:
    if case.schedule == "cosine":
        warm = 2.0
        if epoch_float < warm:
            return case.lr * (epoch_float + 1e-3) / warm
        return case.lr * 0.5 * (1 + math.cos(math.pi * (epoch_float - warm) / (case.epochs - warm)))
    if case.schedule == "ramp":
        return case.lr * 1.6 ** epoch_float
    return case.lr


def mlp(case: Case, k: int, seed: int):
    import torch

    torch.manual_seed(seed)
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}[case.act]
    layers = [torch.nn.Linear(64, case.hidden), act()]
    for _ in range(case.depth - 1):
        layers += [torch.nn.Linear(case.hidden, case.hidden), act()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(case.hidden, k))
    if case.init_std > 0:
        with torch.no_grad():
            for layer in net[::2]:  # Caffe's "gaussian" weight filler and a constant 0 bias
                layer.weight.normal_(0.0, case.init_std)
                layer.bias.zero_()
    if case.dead_relu:
        with torch.no_grad():
            net[0].bias.fill_(-20.0)
    return net


def _prefixes(model):
    """model[:i + 1] for each activation module i: the hidden layers' outputs."""
    import torch

    return [model[:i + 1] for i, m in enumerate(model) if isinstance(m, (torch.nn.ReLU, torch.nn.Sigmoid,
                                                                          torch.nn.Tanh))]


def log_histograms(model, hist, xv, step: int) -> None:
    """Weights, gradients (when there are) and each hidden layer's activations on the validation inputs."""
    import torch

    with torch.no_grad():
        outputs = [module(xv) for module in _prefixes(model)]
    for name, p in model.named_parameters():
        hist(f"weights/{name}", p.detach(), step)
        if p.grad is not None:
            hist(f"grads/{name}", p.grad, step)
    for index, out in enumerate(outputs):
        hist(f"activations/layer{index}", out, step)


def criterion(case: Case, logits, y):
    """Cross-entropy, or the mean squared error against one-hot targets (a regression-style loss)."""
    import torch.nn.functional as F

    if case.loss == "mse":
        return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))
    return F.cross_entropy(logits, y)


def train_plain(case: Case, seed: int, log, start_epoch: int = 0, stop_epoch: int | None = None, state=None,
                hist=None, watch=None):
    """A plain torch loop: log(step, {name: value}, epoch) every 5 steps and at each epoch's end. Returns the
    (model, optimizer) state dicts after each epoch, for a resumed run."""
    import torch
    import torch.nn.functional as F

    (xt, yt), (xv, yv), k = digits(case, seed)
    xt, yt, xv, yv = map(torch.from_numpy, (xt, yt, xv, yv))
    model = mlp(case, k, seed)
    if watch is not None:
        watch(model)
    params = list(model[2:].parameters()) if case.frozen_first else list(model.parameters())
    opt = torch.optim.SGD(params, lr=case.lr, momentum=0.9, weight_decay=case.weight_decay) \
        if case.optim == "sgd" else torch.optim.Adam(params, lr=case.lr, weight_decay=case.weight_decay)
    if state is not None:
        model.load_state_dict(state[0])
        opt.load_state_dict(state[1])
    g = torch.Generator().manual_seed(seed + 1000 * start_epoch)
    per_epoch = math.ceil(yt.numel() / case.batch)
    saved, kept = {}, []
    if hist is not None:
        log_histograms(model, hist, xv, 0)  # at init: weights and activations, before any step
    for epoch in range(start_epoch, stop_epoch if stop_epoch is not None else case.epochs):
        order = torch.randperm(yt.numel(), generator=g)
        model.train()
        total, correct = 0.0, 0
        for b in range(per_epoch):
            step = epoch * per_epoch + b
            for group in opt.param_groups:
                group["lr"] = lr_at(case, epoch + b / per_epoch)
            idx = order[b * case.batch:(b + 1) * case.batch]
            x = xt[idx] * (30.0 if epoch == case.corrupt_epoch else 1.0)
            logits = model(x)
            loss = criterion(case, logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            grad = float(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm())
            opt.step()
            if hist is not None and case.hist_every and step % case.hist_every == 0 and b < per_epoch - 1:
                for name, p in model.named_parameters():  # weights' gradients only, between the epochs' logs
                    if name.endswith("weight"):
                        hist(f"grads/{name}", p.grad, step)
            if case.leak:  # the bug: outputs for a final confusion matrix from a second forward pass outside
                kept.append(model(x))  # torch.no_grad(), kept with their graph (activations) for the whole run
            total += float(loss.detach()) * idx.numel()
            correct += int((logits.argmax(1) == yt[idx]).sum())
            if step % 5 == 0:
                log(step, {"loss": float(loss), "lr": opt.param_groups[0]["lr"], "grad_norm": grad}, epoch)
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            val = {"val_loss": float(criterion(case, logits, yv)),
                   "val_acc": float((logits.argmax(1) == yv).float().mean())}
        log(step, {"train_loss": total / yt.numel(), "train_acc": correct / yt.numel(), **val}, epoch)
        if hist is not None:
            log_histograms(model, hist, xv, step)
        saved[epoch] = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
    return saved, k


def run_plain(logger: str, case: Case, out: str, seed: int) -> int:
    """The plain loop logged by `logger`; a resumed case runs twice (epochs 0-8, then 6-12 from epoch 5)."""
    writer = open_writer(logger, out, case, seed)
    names = TAGS[logger]
    k = 0

    def log(step, values, epoch):
        writer.log(step, {names.get(key, key): value for key, value in values.items()}, epoch)

    if case is RESUMED:
        saved, k = train_plain(case, seed, log, stop_epoch=9)
        writer.close()
        writer = open_writer(logger, out, case, seed, again=True)
        train_plain(case, seed, log, start_epoch=6, state=saved[5])
    else:
        _, k = train_plain(case, seed, log, hist=writer.hist if case.histograms and logger == "tb" else None,
                           watch=writer.watch if case.histograms and logger == "wandb" else None)
    writer.close()
    return k


TAGS = {  # each logger's own naming habit
    "tb": {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm", "train_loss": "epoch/train_loss",
           "train_acc": "epoch/train_acc", "val_loss": "val/loss", "val_acc": "val/accuracy"},
    "tbx": {},
    "jsonl": {},
    "mlflow": {"val_acc": "val_accuracy"},
    "wandb": {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm", "val_loss": "val/loss",
              "val_acc": "val/acc"},
}


class _Writer:
    def __init__(self, log, close, hist=None, watch=None):
        self.log, self.close, self.hist, self.watch = log, close, hist, watch


def finite_histogram(writer, tag: str, tensor, step: int) -> None:
    """SummaryWriter.add_histogram, skipped for a tensor holding NaN/Inf (torch raises "The histogram is
    empty" on one, which would end the training: a user's loop would have to skip it the same way)."""
    import torch

    if torch.isfinite(tensor).all():
        writer.add_histogram(tag, tensor, step)


def open_writer(logger: str, out: str, case: Case, seed: int, again: bool = False) -> _Writer:
    config = {"lr": case.lr, "batch_size": case.batch, "optimizer": case.optim, "hidden": case.hidden}
    if logger == "tb":
        from torch.utils.tensorboard import SummaryWriter

        w = SummaryWriter(out, filename_suffix=".again" if again else "")
        return _Writer(lambda step, values, epoch: [w.add_scalar(k, v, step) for k, v in values.items()], w.close,
                       lambda tag, tensor, step: finite_histogram(w, tag, tensor, step))
    if logger == "tbx":
        from tensorboardX import SummaryWriter

        w = SummaryWriter(out, filename_suffix=".again" if again else "")
        return _Writer(lambda step, values, epoch: [w.add_scalar(k, v, step) for k, v in values.items()], w.close)
    if logger == "jsonl":
        handle = open(os.path.join(out, "metrics.jsonl"), "a")

        def log(step, values, epoch):
            handle.write(json.dumps({"step": step, "epoch": epoch, **values}) + "\n")

        return _Writer(log, handle.close)
    if logger == "mlflow":
        import mlflow

        mlflow.set_tracking_uri("file:" + os.path.join(os.path.abspath(out), "mlruns"))
        mlflow.set_experiment("corpus")
        mlflow.start_run(run_name=os.path.basename(out))
        mlflow.log_params(config)
        return _Writer(lambda step, values, epoch: mlflow.log_metrics(values, step=step), mlflow.end_run)
    if logger == "wandb":
        import wandb

        stats = {"x_stats_sampling_interval": 0.5} if case.system_metrics else {}
        run = wandb.init(project="nnprobe-corpus", name=os.path.basename(out), dir=out, mode="offline",
                         config=config, settings=wandb.Settings(silent=True, **stats))
        return _Writer(lambda step, values, epoch: run.log(values, step=step), run.finish,
                       watch=lambda model: run.watch(model, log="all", log_freq=case.hist_every or 45))
    raise ValueError(logger)


def run_lightning(logger: str, case: Case, out: str, seed: int) -> int:
    import lightning as L
    import torch
    import torch.nn.functional as F

    (xt, yt), (xv, yv), k = digits(case, seed)

    class Module(L.LightningModule):
        def __init__(self, **hparams):
            super().__init__()
            self.save_hyperparameters()
            self.net = mlp(case, k, seed)

        def training_step(self, batch, _):
            x, y = batch
            logits = self.net(x * (30.0 if self.current_epoch == case.corrupt_epoch else 1.0))
            loss = F.cross_entropy(logits, y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=case.lr, momentum=0.9, weight_decay=case.weight_decay) \
                if case.optim == "sgd" else torch.optim.Adam(self.parameters(), lr=case.lr,
                                                             weight_decay=case.weight_decay)
            per_epoch = math.ceil(yt.size / case.batch)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(case, s / per_epoch) / case.lr)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    L.seed_everything(seed, verbose=False)
    loaders = [torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                           batch_size=b, shuffle=s)
               for x, y, b, s in ((xt, yt, case.batch, True), (xv, yv, 1000, False))]
    hparams = {"lr": case.lr, "batch_size": case.batch, "optimizer": case.optim}
    if logger == "lightning-tb":
        hparams["num_classes"] = k  # Lightning runs written with K in hparams.yaml; the CSV ones without
        log = L.pytorch.loggers.TensorBoardLogger(out, name="", version="")
    else:
        log = L.pytorch.loggers.CSVLogger(out, name="", version="")
    lrs = L.pytorch.callbacks.LearningRateMonitor("step")
    trainer = L.Trainer(max_epochs=case.epochs, logger=log, log_every_n_steps=5, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        callbacks=[lrs], num_sanity_val_steps=0)
    trainer.fit(Module(**hparams), *loaders)
    return k


def run_keras(case: Case, out: str, seed: int) -> int:
    import keras

    keras.utils.set_random_seed(seed)
    (xt, yt), (xv, yv), k = digits(case, seed)
    bias = keras.initializers.Constant(-20.0) if case.dead_relu else "zeros"
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(case.hidden, activation="relu",
                                                                     bias_initializer=bias),
                              keras.layers.Dense(k, activation="softmax")])
    opt = keras.optimizers.SGD(case.lr, momentum=0.9) if case.optim == "sgd" else keras.optimizers.Adam(case.lr)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [keras.callbacks.CSVLogger(os.path.join(out, "training.csv")),
                 keras.callbacks.LearningRateScheduler(lambda epoch, _: lr_at(case, epoch))]
    if case.corrupt_epoch >= 0:
        raise ValueError("corrupt blocks are made in the plain loop and Lightning only")
    model.fit(xt, yt, validation_data=(xv, yv), epochs=case.epochs, batch_size=case.batch, verbose=0, shuffle=True,
              callbacks=callbacks)
    return k


def run_hf(case: Case, out: str, seed: int) -> int:
    import torch
    from transformers import Trainer, TrainingArguments

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_framework_runs import hf_classes, strip_hf

    (xt, yt), (xv, yv), k = digits(case, seed)
    config_cls, model_cls = hf_classes()
    rows = lambda x, y: [{"input_values": a, "labels": int(b)} for a, b in zip(x, y)]  # noqa: E731
    args = TrainingArguments(output_dir=out, num_train_epochs=case.epochs, per_device_train_batch_size=case.batch,
                             per_device_eval_batch_size=1000, learning_rate=case.lr,
                             lr_scheduler_type="cosine" if case.schedule == "cosine" else "constant",
                             warmup_steps=2 * math.ceil(yt.size / case.batch) if case.schedule == "cosine" else 0,
                             optim="sgd" if case.optim == "sgd" else "adamw_torch", weight_decay=case.weight_decay,
                             logging_steps=5, eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
                             report_to=["tensorboard"], seed=seed, use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0)
    model = model_cls(config_cls(dim=64, hidden=case.hidden, num_labels=k))
    if case.dead_relu:
        with torch.no_grad():
            model.net[0].bias.fill_(-20.0)
    accuracy = lambda p: {"accuracy": float((np.argmax(p.predictions, 1) == p.label_ids).mean())}  # noqa: E731
    Trainer(model=model, args=args, train_dataset=rows(xt, yt), eval_dataset=rows(xv, yv),
            compute_metrics=accuracy).train()
    strip_hf(out)
    return k


def tidy(logger: str, out: str) -> None:
    """Drop what diagnose does not read and what names this machine (wandb's debug logs and metadata)."""
    if logger == "wandb":
        for extra in glob.glob(os.path.join(out, "wandb", "*")):
            if os.path.islink(extra) or os.path.isfile(extra):
                os.unlink(extra)
        for folder in glob.glob(os.path.join(out, "wandb", "offline-run-*")):
            for extra in ("logs", "tmp", "files"):
                shutil.rmtree(os.path.join(folder, extra), ignore_errors=True)
    for name in ("lightning_logs", "checkpoints"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    for meta in glob.glob(os.path.join(out, "mlruns", "**", "meta.yaml"), recursive=True):
        scrub_meta(meta, out)
    for tag in glob.glob(os.path.join(out, "mlruns", "*", "*", "tags", "mlflow.*")):
        if os.path.basename(tag) != "mlflow.runName":
            os.unlink(tag)
    for n, events in enumerate(sorted(glob.glob(os.path.join(out, "**", "events.out.tfevents.*"), recursive=True))):
        stamp = os.path.basename(events).split(".")[3]  # keep the writer's time stamp (file order), drop host, pid
        os.replace(events, os.path.join(os.path.dirname(events), f"events.out.tfevents.{stamp}.corpus.{n}"))


def scrub_meta(meta: str, out: str) -> None:
    """An MLflow meta.yaml without this machine's paths and user name."""
    with open(meta) as handle:
        text = handle.read()
    text = text.replace("file://" + os.path.abspath(out), "file:///corpus/" + os.path.basename(out))
    text = "\n".join("user_id: corpus" if line.startswith("user_id:") else line for line in text.split("\n"))
    with open(meta, "w") as handle:
        handle.write(text)


def make(root: str, logger: str, index: int, case: Case) -> None:
    if logger == "keras" and case.corrupt_epoch >= 0:
        return
    out = os.path.join(root, f"{logger}-{case.name}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    seed = 100 * LOGGERS.index(logger) + index
    if logger in PLAIN:
        k = run_plain(logger, case, out, seed)
    elif logger.startswith("lightning"):
        k = run_lightning(logger, case, out, seed)
    elif logger == "keras":
        k = run_keras(case, out, seed)
    else:
        k = run_hf(case, out, seed)
    tidy(logger, out)
    record = {"logger": logger, "seed": seed, "num_classes": k, **{key: value for key, value in asdict(case).items()
                                                                   if key in ("verdict", "what", "errors",
                                                                              "allowed", "warnings")}}
    with open(os.path.join(out, "EXPECTED.json"), "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.write("\n")


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "scikit-learn", "tensorboard", "tensorboardX", "mlflow-skinny",
                                             "wandb", "lightning", "keras", "transformers", "accelerate")}


def main(root: str, loggers: list[str], only: set[str]) -> None:
    import torch

    torch.set_num_threads(1)
    os.makedirs(root, exist_ok=True)
    for logger in loggers:
        for index, case in enumerate(cases_for(logger)):
            if only and case.name not in only:
                continue
            print(f"{logger}-{case.name}", flush=True)
            make(root, logger, index, case)
    with open(os.path.join(root, "VERSIONS.json"), "w") as handle:
        json.dump(versions(), handle, indent=1, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    names = [a for a in sys.argv[2:] if not a.startswith("--case=")]
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"),
         names or list(LOGGERS), {a[len("--case="):] for a in sys.argv[2:] if a.startswith("--case=")})
