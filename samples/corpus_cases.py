"""The diagnose corpus' cases (issue 18): each a training setup, the verdict it was made to have, and what
diagnose must say about it. samples/make_corpus_runs.py trains and logs each one; tests/diagnose/test_corpus.py
checks every EXPECTED.json against these."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A training setup. `verdict` is what it was made to be; errors/allowed/warnings what diagnose must say."""

    name: str
    verdict: str
    what: str
    epochs: int = 12
    lr: float = 0.05
    batch: int = 32
    optim: str = "sgd"  # sgd (momentum 0.9) | adam
    hidden: int = 32
    schedule: str = "constant"  # constant | cosine (2-epoch linear warmup, then cosine to 0) | ramp (x1.6 a epoch)
    label_noise: float = 0.0  # share of training labels replaced by random ones
    shuffle_labels: bool = False
    zero_inputs: bool = False
    imbalanced: bool = False  # classes 0, 1, 2 only, shares about 0.60 / 0.25 / 0.15
    dead_relu: bool = False  # hidden biases initialised to -20: every ReLU dead from the start
    n_train: int = 0  # 0: the whole training split
    inf_sample: bool = False  # one training input holds an inf
    corrupt_epoch: int = -1  # every input of this epoch's batches scaled by 30 (a corrupt data block)
    weight_decay: float = 0.0
    histograms: bool = False  # also histograms of weights, gradients and activations at init and each epoch
    frozen_first: bool = False  # the first layer's parameters left out of the optimizer
    depth: int = 1  # hidden layers
    act: str = "relu"  # relu | sigmoid | tanh
    init_std: float = 0.0  # > 0: every Linear's weights drawn from N(0, init_std), biases 0 (0: torch's default)
    raw_inputs: bool = False  # pixel values 0..16 as they come (the /16 scaling forgotten)
    system_metrics: bool = False  # W&B's system monitor sampled every 0.5 s (its own records in the .wandb log)
    loss: str = "ce"  # ce | mse (against one-hot targets)
    hist_every: int = 0  # > 0: gradient histograms also every this many steps (W&B: wandb.watch's log_freq)
    leak: bool = False  # every batch's outputs kept with their graph (memory that grows through the run)
    errors: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


HEALTHY = (
    Case("healthy-sgd", "healthy", "SGD lr 0.05, momentum 0.9, batch 32"),
    Case("healthy-adam", "healthy", "Adam lr 1e-3, batch 64", epochs=15, lr=1e-3, batch=64, optim="adam"),
    Case("healthy-noisy", "healthy", "20% of training labels random, batch 8, SGD lr 0.01", epochs=8, lr=0.01,
         batch=8, label_noise=0.2),
    Case("healthy-cosine", "healthy", "Adam lr 3e-3, 2-epoch warmup then cosine decay to 0", epochs=16, lr=3e-3,
         optim="adam", schedule="cosine"),
    Case("healthy-small", "healthy", "16 hidden units, batch 16, Adam lr 5e-4", epochs=10, lr=5e-4, batch=16,
         optim="adam", hidden=16),
    Case("healthy-wd", "healthy", "SGD lr 0.1, weight decay 5e-4, batch 128", epochs=25, lr=0.1, batch=128,
         weight_decay=5e-4),
)
NAN = ("loss-not-finite", "metric-not-finite")
BROKEN = (
    Case("nan", "nan", "one training input holds an inf (the net's weights turn NaN)", inf_sample=True,
         errors=("loss-not-finite",), allowed=NAN + ("constant-prediction", "chance-accuracy", "divergence")),
    Case("chance", "chance", "labels shuffled apart from their inputs (the net memorises them)", epochs=30,
         lr=3e-3, optim="adam", hidden=128, shuffle_labels=True, errors=("chance-accuracy",)),
    Case("constant", "constant", "every input zeroed (a normalisation that wipes the data), classes 0/1/2 "
         "at shares ~0.60/0.25/0.15", zero_inputs=True, imbalanced=True, errors=("constant-prediction",),
         allowed=("chance-accuracy",)),
    Case("dead-relu", "constant", "hidden biases initialised to -20: every ReLU dead, classes 0/1/2 at shares "
         "~0.60/0.25/0.15", dead_relu=True, imbalanced=True, errors=("constant-prediction",),
         allowed=("chance-accuracy",)),
    Case("overfit", "overfitting", "100 training examples, 30% of their labels random, 256 hidden units, Adam "
         "lr 3e-3 for 80 epochs (the net memorises the noise)", epochs=80, lr=3e-3, optim="adam", hidden=256,
         n_train=100, label_noise=0.3, batch=16, errors=("overfitting",)),
)
RAMP = Case("diverge", "divergence", "SGD learning rate multiplied by 1.6 every epoch from 0.05", epochs=14,
            schedule="ramp", errors=("divergence",), allowed=NAN + ("constant-prediction", "chance-accuracy"))
CORRUPT = Case("corrupt-block", "warning", "epoch 5's inputs scaled by 30 (a corrupt data block), SGD lr 0.02; "
               "the block may wreck the model for good (its accuracy collapses) or blow the loss up",
               lr=0.02, corrupt_epoch=5, warnings=("spikes",), allowed=("divergence", "chance-accuracy"))
RESUMED = Case("healthy-resumed", "healthy", "SGD lr 0.05, stopped after epoch 8, resumed from the epoch-5 "
               "checkpoint to epoch 12 (steps written again)")
HIST = (
    Case("hist-healthy", "healthy", "SGD lr 0.05 for 8 epochs (at 12 this seed's validation loss rises from "
         "epoch 9: an overfitting warning); weights, gradients and activations logged as histograms",
         epochs=8, histograms=True),
    Case("hist-frozen", "warning", "the first layer's parameters left out of the optimizer (histograms logged)",
         histograms=True, frozen_first=True, warnings=("frozen-layer",)),
    Case("hist-dead", "constant", "hidden biases initialised to -20 (every ReLU dead), classes 0/1/2 at shares "
         "~0.60/0.25/0.15 (histograms logged)", histograms=True, dead_relu=True, imbalanced=True,
         errors=("constant-prediction",), allowed=("chance-accuracy",), warnings=("dead-relu", "frozen-layer")),
    Case("hist-vanishing", "warning", "8 sigmoid hidden layers, SGD lr 0.05 (histograms logged)", histograms=True,
         depth=8, act="sigmoid", warnings=("vanishing-gradients",),
         allowed=("chance-accuracy", "constant-prediction")),
)
WATCHED = (  # W&B: wandb.watch(model, log="all") logs gradient and parameter histograms (no activations)
    Case("hist-healthy", "healthy", "SGD lr 0.05 for 8 epochs; wandb.watch(log='all') histograms", epochs=8,
         histograms=True),
    Case("hist-frozen", "warning", "the first layer's parameters left out of the optimizer; wandb.watch "
         "histograms", histograms=True, frozen_first=True, warnings=("frozen-layer",)),
    Case("hist-vanishing", "warning", "8 sigmoid hidden layers, SGD lr 0.05; wandb.watch histograms",
         histograms=True, depth=8, act="sigmoid", warnings=("vanishing-gradients",),
         allowed=("chance-accuracy", "constant-prediction")),
)
HIST_MORE = (  # issue 18 part 3: the rules on histograms' scale and shape, and healthy runs that must pass them
    Case("hist-healthy-deep", "healthy", "3 ReLU hidden layers (torch's default init), Adam lr 1e-3 for 8 epochs; "
         "histograms from init", epochs=8, histograms=True, depth=3, optim="adam", lr=1e-3),
    Case("hist-healthy-tanh", "healthy", "3 tanh hidden layers, inputs scaled to [0, 1], SGD lr 0.05 for 8 epochs; "
         "histograms from init", epochs=8, histograms=True, depth=3, act="tanh"),
    Case("hist-saturated", "warning", "3 tanh hidden layers, weights N(0, 1) and biases 0, raw pixel values "
         "0..16 (the scaling forgotten): the tanh outputs sit at +-1", histograms=True, depth=3, act="tanh", init_std=1.0,
         raw_inputs=True, warnings=("saturated-activations",), allowed=("chance-accuracy", "constant-prediction",
                                                                        "overfitting")),
    Case("hist-poor-init", "warning", "6 ReLU hidden layers, weights N(0, 0.01) and biases 0: the activations "
         "shrink ~25x a layer at init", histograms=True, depth=6, init_std=0.01, warnings=("poor-initialization",),
         allowed=("chance-accuracy", "constant-prediction")),
)
EXPLODING = dict(verdict="warning", epochs=10, schedule="ramp", histograms=True, act="tanh", loss="mse",
                 hist_every=5, warnings=("exploding-gradients",),
                 allowed=NAN + ("divergence", "constant-prediction", "chance-accuracy"))
HIST_MORE += (Case("hist-exploding", what="tanh layer, mean squared error against one-hot targets, SGD learning "
                   "rate x1.6 every epoch from 0.05: the gradients grow by orders, then NaN; gradient histograms "
                   "every 5 steps", **EXPLODING),)
WATCHED_MORE = (
    Case("hist-exploding", what="tanh layer, mean squared error against one-hot targets, SGD learning rate x1.6 "
         "every epoch from 0.05: the gradients grow by orders, then NaN; wandb.watch(log_freq=5)", **EXPLODING),
    Case("system-healthy", "healthy", "SGD lr 0.05 for 30 epochs; W&B's system metrics sampled every 0.5 s",
         epochs=30, system_metrics=True),
    Case("system-leak", "warning", "SGD lr 0.05 for 30 epochs, 1024 hidden units; every batch's outputs for a final "
         "confusion matrix come from a second forward pass outside torch.no_grad() and are kept with their graph "
         "(memory grows); W&B's system metrics sampled every 0.5 s", epochs=30, hidden=1024,
         system_metrics=True, leak=True, warnings=("memory-growth",)),
)
PLAIN = ("tb", "tbx", "jsonl", "mlflow", "wandb")
LOGGERS = PLAIN + ("lightning-csv", "lightning-tb", "keras", "hf")


def cases_for(logger: str) -> tuple[Case, ...]:
    extra = (RAMP, CORRUPT) if logger in PLAIN + ("lightning-csv",) else ()
    resumed = (RESUMED,) if logger in ("tb", "tbx", "jsonl") else ()
    hist = HIST + HIST_MORE if logger == "tb" else WATCHED + WATCHED_MORE if logger == "wandb" else ()
    return HEALTHY + BROKEN + extra + resumed + hist
