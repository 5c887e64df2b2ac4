"""Regenerate the sample runs written by real frameworks (issue 12, "Real-world fidelity"). Run by hand;
tests/diagnose/test_sample_generators.py reruns it (tbx, keras, hf) and names each field that differs.

  keras-<case>/     Keras 3 (torch backend) model.fit with CSVLogger (training.csv)
  keras-tb-<case>/  Keras 3 (tensorflow backend) model.fit with TensorBoard(update_freq=8): train/, validation/
  tbx-<case>/       make_runs.py trainings logged by tensorboardX: add_scalar tags, or add_scalars sub-folders
  hf-<case>/        HF Trainer: trainer_state.json + its runs/<date>_<host>/ TB folder + checkpoint-N/config.json
Cases: healthy, nan (one inf in the inputs / log(softmax) with lr 0.6), chance (shuffled labels), constant
(inputs zeroed, imbalanced classes), overfit (150 examples, wide net, Adam, 60 epochs), divergence (tbx only:
Keras clips probabilities and the Trainer's SGD needs the lr schedule make_runs.py uses).

Each run gets an EXPECTED.json written here from what was injected: `errors` are error finding ids diagnose
must report; with `exact_errors` no other error may appear (false only where a NaN's consequences, such as a
frozen accuracy, may be reported too); `must_not` ids must not appear at any severity; `runs` is 1 (one run);
`num_classes` the true K. Weights, optimizer states, training_args.bin and other machine-specific files are
deleted, host names and dates renamed; only logs and the config files diagnose reads are kept.

Made with (exact versions also in each EXPECTED.json "versions"): torch 2.14.1 (not installed by this script),
keras 3.15.1, tensorboardX 2.6.5, transformers 5.25.0 + accelerate 1.16.0 + psutil (pinned in the test extra,
since the same seeds train differently under other transformers/accelerate releases); for keras-tb:
tensorflow-cpu 2.21.0 + keras 3.15.1 in a separate venv (--system-site-packages). Importing torch and tensorflow
in one process segfaults here, so keras-tb runs in its own process with numpy data and no torch.
Run: python samples/make_framework_runs.py [OUT_DIR [tbx keras hf]]      (torch backend, no tensorflow)
     KERAS_BACKEND=tensorflow VENV/bin/python samples/make_framework_runs.py OUT_DIR keras-tb
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if "keras-tb" not in sys.argv[2:]:  # torch and tensorflow in one process crash (segfault) here
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import make_runs  # noqa: E402  (the same data and trainings as the other samples)

K = 10


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    names = ("tensorflow-cpu", "keras") if "keras-tb" in sys.argv[2:] else (
        "torch", "keras", "tensorboardX", "transformers", "accelerate")
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write_expected(out: str, injected: str, framework: str, errors: list[str], must_not: list[str],
                   k: int = K) -> None:
    record = {"framework": framework, "injected": injected, "num_classes": k, "errors": sorted(errors),
              "exact_errors": "loss-not-finite" not in errors, "must_not": sorted(must_not), "runs": 1,
              "versions": versions()}
    with open(os.path.join(out, "EXPECTED.json"), "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


def data_np(seed: int, n_train: int = 2000, shares=None):
    (xt, yt), (xv, yv) = make_runs.make_data(seed, k=len(shares) if shares else K, n_train=n_train, shares=shares)
    return (xt.numpy(), yt.numpy()), (xv.numpy(), yv.numpy())


def keras_run(out: str, data, *, epochs: int, lr: float, hidden: int = 64, seed: int = 0, k: int = K,
              optimizer: str = "sgd", batch: int = 64) -> None:
    """model.fit on a small MLP, logged by CSVLogger only (no TensorFlow here)."""
    import keras

    keras.utils.set_random_seed(seed)
    (xt, yt), val = data
    model = keras.Sequential([keras.Input((xt.shape[1],)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(k, activation="softmax")])
    opt = keras.optimizers.SGD(lr, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(lr)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    os.makedirs(out, exist_ok=True)
    model.fit(xt, yt, validation_data=val, epochs=epochs, batch_size=batch, verbose=0, shuffle=True,
              callbacks=[keras.callbacks.CSVLogger(os.path.join(out, "training.csv"))])


def make_keras(root: str) -> None:
    import numpy as np

    data = data_np(1)
    keras_run(os.path.join(root, "keras-healthy"), data, epochs=15, lr=0.005, seed=1)
    write_expected(os.path.join(root, "keras-healthy"), "nothing", "keras", [], ["loss-not-finite"])
    (xt, yt), val = data
    bad = xt.copy()
    bad[1234, 3] = np.inf  # one corrupt feature value in the training set
    keras_run(os.path.join(root, "keras-nan"), ((bad, yt), val), epochs=4, lr=0.005, seed=2)
    write_expected(os.path.join(root, "keras-nan"), "one inf in the training inputs", "keras",
                   ["loss-not-finite"], [])
    shuffled = yt[np.random.default_rng(3).permutation(yt.size)]
    keras_run(os.path.join(root, "keras-chance"), ((xt, shuffled), val), epochs=10, lr=0.01, hidden=16, seed=3)
    write_expected(os.path.join(root, "keras-chance"), "labels shuffled apart from their inputs", "keras",
                   ["chance-accuracy"], ["loss-not-finite"])
    (xt5, yt5), (xv5, yv5) = data_np(4, shares=[0.5, 0.2, 0.1, 0.1, 0.1])
    keras_run(os.path.join(root, "keras-constant"), ((xt5 * 0, yt5), (xv5 * 0, yv5)), epochs=10, lr=0.05,
              seed=4, k=5)
    write_expected(os.path.join(root, "keras-constant"), "every input zeroed, class shares 0.5,0.2,0.1,0.1,0.1",
                   "keras", ["constant-prediction"], ["loss-not-finite"], k=5)
    (xs, ys), val = data_np(5, n_train=150)
    keras_run(os.path.join(root, "keras-overfit"), ((xs, ys), val), epochs=60, lr=3e-3, hidden=512, seed=5,
              optimizer="adam", batch=32)
    write_expected(os.path.join(root, "keras-overfit"), "150 training examples, a wide net, Adam for 60 epochs",
                   "keras", ["overfitting"], ["loss-not-finite"])


def np_data(seed: int, k: int = K, n_train: int = 2000, n_val: int = 1000, dim: int = 20, shares=None):
    """make_runs.make_data's Gaussian clusters drawn with numpy (the tensorflow process has no torch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim)).astype("float32") * 0.7
    probs = np.array(shares) if shares else np.full(k, 1.0 / k)

    def draw(n):
        y = rng.choice(k, n, p=probs)
        return (centers[y] + rng.standard_normal((n, dim)).astype("float32")), y

    return draw(n_train), draw(n_val)


def keras_tb_run(out: str, data, *, epochs: int, lr: float, hidden: int = 64, seed: int = 0, k: int = K,
                 optimizer: str = "sgd", batch: int = 64) -> None:
    """model.fit logged by keras.callbacks.TensorBoard(update_freq=8): batch and epoch scalars mixed."""
    import keras

    keras.utils.set_random_seed(seed)
    (xt, yt), val = data
    model = keras.Sequential([keras.Input((xt.shape[1],)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(k, activation="softmax")])
    opt = keras.optimizers.SGD(lr, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(lr)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xt, yt, validation_data=val, epochs=epochs, batch_size=batch, verbose=0, shuffle=True,
              callbacks=[keras.callbacks.TensorBoard(out, update_freq=8, write_graph=False)])
    for path in glob.glob(os.path.join(out, "**", "events.out.tfevents.*"), recursive=True):
        os.replace(path, os.path.join(os.path.dirname(path), "events.out.tfevents.1700000000.sample.v2"))


def make_keras_tb(root: str) -> None:
    import numpy as np

    data = np_data(1)
    keras_tb_run(os.path.join(root, "keras-tb-healthy"), data, epochs=15, lr=0.005, seed=1)
    write_expected(os.path.join(root, "keras-tb-healthy"), "nothing", "keras-tensorboard", [], ["loss-not-finite"])
    (xt, yt), val = data
    bad = xt.copy()
    bad[1234, 3] = np.inf
    keras_tb_run(os.path.join(root, "keras-tb-nan"), ((bad, yt), val), epochs=4, lr=0.005, seed=2)
    write_expected(os.path.join(root, "keras-tb-nan"), "one inf in the training inputs", "keras-tensorboard",
                   ["loss-not-finite"], [])
    shuffled = yt[np.random.default_rng(3).permutation(yt.size)]
    keras_tb_run(os.path.join(root, "keras-tb-chance"), ((xt, shuffled), val), epochs=10, lr=0.01, hidden=16,
                 seed=3)
    write_expected(os.path.join(root, "keras-tb-chance"), "labels shuffled apart from their inputs",
                   "keras-tensorboard", ["chance-accuracy"], ["loss-not-finite"])
    (xs, ys), val = np_data(5, n_train=150)
    keras_tb_run(os.path.join(root, "keras-tb-overfit"), ((xs, ys), val), epochs=60, lr=3e-3, hidden=512,
                 seed=5, optimizer="adam", batch=32)
    write_expected(os.path.join(root, "keras-tb-overfit"), "150 training examples, a wide net, Adam, 60 epochs",
                   "keras-tensorboard", ["overfitting"], ["loss-not-finite"])


def make_tbx(root: str) -> None:
    """tensorboardX logging the make_runs.py trainings: add_scalar per step/epoch, add_scalars for one run."""
    import torch
    from tensorboardX import SummaryWriter

    data = make_runs.make_data(1, k=K)

    def log(out, steps, epochs, scalars=False):
        with mock.patch("time.time", lambda: 1700000000.0):  # each writer's first event (file_version) is stamped
            write(out, steps, epochs, scalars)                # with time.time(): fixed, like the points' walls
        for path in glob.glob(os.path.join(out, "**", "events.out.tfevents.*"), recursive=True):
            os.replace(path, os.path.join(os.path.dirname(path), "events.out.tfevents.1700000000.sample"))

    def write(out, steps, epochs, scalars):
        writer = SummaryWriter(out)
        for s in steps:
            writer.add_scalar("train/loss", s["loss"], s["step"], walltime=s["wall"])
        for e in epochs:
            if scalars:
                writer.add_scalars("loss", {"train": e["train_loss"], "val": e["val_loss"]}, e["step"], e["wall"])
                writer.add_scalars("accuracy", {"train": e["train_acc"], "val": e["val_acc"]}, e["step"], e["wall"])
            else:
                for tag in ("train_acc", "val_loss", "val_acc"):
                    writer.add_scalar(tag.replace("_", "/"), e[tag], e["step"], walltime=e["wall"])
        writer.close()

    steps, epochs = make_runs.train(make_runs.mlp(20, K, seed=1), data, epochs=15, lr=0.005, seed=1)
    log(os.path.join(root, "tbx-healthy"), steps, epochs)
    write_expected(os.path.join(root, "tbx-healthy"), "nothing", "tensorboardX", [], ["loss-not-finite"])
    steps, epochs = make_runs.train(make_runs.mlp(20, K, hidden=256, seed=2), data, epochs=11, lr=0.6, seed=2,
                                    loss_fn=make_runs.naive_cross_entropy,
                                    lr_at=lambda step: 0.6 * min(1.0, (step + 1) / 320))
    log(os.path.join(root, "tbx-nan"), steps, epochs)
    write_expected(os.path.join(root, "tbx-nan"), "log(softmax) and a warmup to lr 0.6: the loss turns NaN",
                   "tensorboardX", ["loss-not-finite"], [])
    steps, epochs = make_runs.train(make_runs.mlp(20, K, seed=6), data, epochs=12, lr=0.05, seed=6,
                                    lr_at=lambda step: 0.05 * 1.5 ** (step // 32), clip=5.0)
    log(os.path.join(root, "tbx-divergence"), steps, epochs)
    write_expected(os.path.join(root, "tbx-divergence"), "lr times 1.5 every epoch, clipping at 5 keeps it finite",
                   "tensorboardX", ["divergence"], ["loss-not-finite"])
    (xt, yt), (xv, yv) = make_runs.make_data(5, k=K, n_train=150)
    flip = torch.rand(150, generator=torch.Generator().manual_seed(6)) < 0.2
    yt = torch.where(flip, torch.randint(0, K, (150,), generator=torch.Generator().manual_seed(7)), yt)
    steps, epochs = make_runs.train(make_runs.mlp(20, K, hidden=512, seed=5), ((xt, yt), (xv, yv)), epochs=60,
                                    lr=3e-3, batch=32, seed=5, optimizer="adam")
    log(os.path.join(root, "tbx-add-scalars-overfit"), steps, epochs, scalars=True)
    write_expected(os.path.join(root, "tbx-add-scalars-overfit"), "overfitting, logged with add_scalars",
                   "tensorboardX", ["overfitting"], ["loss-not-finite"])


def hf_classes():
    """A tiny MLP as a transformers PreTrainedModel, so the Trainer saves its config.json (num_labels)."""
    import torch
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MLPConfig(PretrainedConfig):
        model_type = "nnprobe-mlp"

        def __init__(self, dim: int = 20, hidden: int = 64, **kwargs):
            super().__init__(**kwargs)
            self.dim, self.hidden = dim, hidden

    class MLPModel(PreTrainedModel):
        config_class = MLPConfig

        def __init__(self, config):
            super().__init__(config)
            self.net = torch.nn.Sequential(torch.nn.Linear(config.dim, config.hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(config.hidden, config.num_labels))
            self.post_init()

        def _init_weights(self, module):
            pass  # keep torch's default initialisation, seeded by the Trainer

        def forward(self, input_values=None, labels=None):
            logits = self.net(input_values)
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return MLPConfig, MLPModel


def hf_run(out: str, data, *, epochs: int, lr: float, hidden: int = 64, seed: int = 0, batch: int = 64,
           optim: str = "sgd", k: int = K) -> None:
    """Trainer.train with eval each epoch, report_to tensorboard; then weights and states are deleted."""
    import numpy as np
    from transformers import Trainer, TrainingArguments

    config_cls, model_cls = hf_classes()
    (xt, yt), (xv, yv) = data
    rows = lambda x, y: [{"input_values": a, "labels": int(b)} for a, b in zip(x, y)]  # noqa: E731
    args = TrainingArguments(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch,
                             per_device_eval_batch_size=1000, learning_rate=lr, lr_scheduler_type="constant",
                             optim="sgd" if optim == "sgd" else "adamw_torch", weight_decay=0.0,
                             logging_steps=5, eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
                             report_to=["tensorboard"], seed=seed, use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0)
    config = config_cls(dim=xt.shape[1], hidden=hidden, num_labels=k)
    accuracy = lambda p: {"accuracy": float((np.argmax(p.predictions, 1) == p.label_ids).mean())}  # noqa: E731
    trainer = Trainer(model=model_cls(config), args=args, train_dataset=rows(xt, yt), eval_dataset=rows(xv, yv),
                      compute_metrics=accuracy)
    trainer.train()
    strip_hf(out)


def strip_hf(out: str) -> None:
    """Keep trainer_state.json, checkpoint-N/config.json + trainer_state.json and the TB events, renamed so no
    host name or date of this machine is left."""
    for path in glob.glob(os.path.join(out, "**", "*"), recursive=True):
        name = os.path.basename(path)
        if os.path.isfile(path) and name not in ("config.json", "trainer_state.json") and "tfevents" not in name:
            os.remove(path)
    for i, folder in enumerate(sorted(glob.glob(os.path.join(out, "runs", "*")))):
        for events in glob.glob(os.path.join(folder, "**", "events.out.tfevents.*"), recursive=True):
            os.replace(events, os.path.join(os.path.dirname(events), "events.out.tfevents.1700000000.sample"))
        os.replace(folder, os.path.join(out, "runs", f"Dec01_00-00-0{i}_sample"))
    (checkpoint,) = glob.glob(os.path.join(out, "checkpoint-*"))
    shutil.copyfile(os.path.join(checkpoint, "trainer_state.json"), os.path.join(out, "trainer_state.json"))


def make_hf(root: str) -> None:
    import numpy as np

    data = data_np(1)
    hf_run(os.path.join(root, "hf-healthy"), data, epochs=15, lr=0.05, seed=1)
    write_expected(os.path.join(root, "hf-healthy"), "nothing", "hf-trainer", [], ["loss-not-finite"])
    (xt, yt), val = data
    bad = xt.copy()
    bad[1234, 3] = np.inf
    hf_run(os.path.join(root, "hf-nan"), ((bad, yt), val), epochs=4, lr=0.05, seed=2)
    write_expected(os.path.join(root, "hf-nan"), "one inf in the training inputs", "hf-trainer",
                   ["loss-not-finite"], [])
    shuffled = yt[np.random.default_rng(3).permutation(yt.size)]
    hf_run(os.path.join(root, "hf-chance"), ((xt, shuffled), val), epochs=10, lr=0.1, hidden=16, seed=3)
    write_expected(os.path.join(root, "hf-chance"), "labels shuffled apart from their inputs", "hf-trainer",
                   ["chance-accuracy"], ["loss-not-finite"])
    (xt5, yt5), (xv5, yv5) = data_np(4, shares=[0.5, 0.2, 0.1, 0.1, 0.1])
    hf_run(os.path.join(root, "hf-constant"), ((xt5 * 0, yt5), (xv5 * 0, yv5)), epochs=10, lr=0.05, seed=4, k=5)
    write_expected(os.path.join(root, "hf-constant"), "every input zeroed, class shares 0.5,0.2,0.1,0.1,0.1",
                   "hf-trainer", ["constant-prediction"], ["loss-not-finite"], k=5)
    (xs, ys), val = data_np(5, n_train=150)
    hf_run(os.path.join(root, "hf-overfit"), ((xs, ys), val), epochs=60, lr=3e-3, hidden=512, seed=5,
           batch=32, optim="adam")
    write_expected(os.path.join(root, "hf-overfit"), "150 training examples, a wide net, Adam for 60 epochs",
                   "hf-trainer", ["overfitting"], ["loss-not-finite"])


def main(root: str) -> None:
    only = sys.argv[2:] or ["tbx", "keras", "hf"]
    for prefix in only:
        for path in glob.glob(os.path.join(root, prefix + "-*")):
            if prefix == "keras" and os.path.basename(path).startswith("keras-tb-"):
                continue
            if os.path.exists(os.path.join(path, "EXPECTED.json")):  # never the older make_runs.py hf-* runs
                shutil.rmtree(path)
        if prefix != "keras-tb":
            import torch

            torch.set_num_threads(1)
        {"tbx": make_tbx, "keras": make_keras, "hf": make_hf, "keras-tb": make_keras_tb}[prefix](root)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs"))
