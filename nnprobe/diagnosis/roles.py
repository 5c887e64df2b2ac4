"""Which logged series plays which role, from the naming conventions of the common loggers.

Names are split into lower-case tokens on / _ . - and spaces, so `train/loss`, `Loss/train`,
`train_loss_epoch`, `validation/epoch_loss` (Keras), `eval_accuracy` (HF), `Accuracy/val`, `val_acc`,
`lr-SGD` (Lightning's LearningRateMonitor), `learning_rate`, `grad_norm` all resolve. When several series
fit a role the one with the most points wins (per-step over per-epoch: every NaN is seen), then the
shorter name. `--metric ROLE=NAME` overrides. Accuracy logged in percent is detected and scaled.
"""
from __future__ import annotations

import re

import numpy as np

from nnprobe.diagnosis.results import RoleMapping
from nnprobe.diagnosis.series import Series
from nnprobe.errors import UsageError

ROLES = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm")
NAME_SPLIT = re.compile(r"[/_.\-\s:]+")
_VAL = frozenset({"val", "valid", "validation", "eval", "evaluation", "dev"})
_TRAIN = frozenset({"train", "training"})
_ACC = frozenset({"acc", "accuracy", "top1", "acc1", "acc@1", "categorical", "binary"})
# Tokens that make a name something else: top-5, test split, throughput, hparams placeholder, Keras'
# duplicate `evaluation_loss_vs_iterations`, mixed-precision loss scale.
_EXCLUDE = frozenset({"test", "top5", "acc5", "acc@5", "5", "hp", "runtime", "samples", "second",
                      "flos", "vs", "scale", "scaler", "per", "steps", "time"})
HINTS = {
    "train_loss": "loss, train_loss, Loss/train",
    "val_loss": "val_loss, eval_loss, Loss/val",
    "train_acc": "accuracy, train_acc, Accuracy/train",
    "val_acc": "val_acc, eval_accuracy, Accuracy/val",
    "lr": "lr, learning_rate, lr-SGD",
    "grad_norm": "grad_norm, train/grad_norm",
}


def role_of(name: str) -> str | None:
    """The role a series name implies, or None."""
    tokens = [t for t in NAME_SPLIT.split(name.lower()) if t]
    if not tokens or _EXCLUDE.intersection(tokens):
        return None
    if ("grad" in tokens or "gradient" in tokens or "grads" in tokens) and "norm" in tokens \
            or "gradnorm" in tokens:
        return "grad_norm"
    if "lr" in tokens or ("learning" in tokens and "rate" in tokens):
        return "lr"
    split = "val" if _VAL.intersection(tokens) else "train"
    if "loss" in tokens:
        return f"{split}_loss"
    if _ACC.intersection(tokens) and ("acc" in tokens or "accuracy" in tokens or "top1" in tokens
                                      or "acc1" in tokens or "acc@1" in tokens):
        return f"{split}_acc"
    return None


# The words role_of reads; a token one slip away from one (a letter missing, added, changed or two swapped)
# is taken for it when it would give a series a role no other series plays: `val_los`, `val_acuracy`.
_WORDS = ("loss", "acc", "accuracy", "val", "valid", "validation", "eval", "evaluation", "train", "training",
          "learning", "rate", "grad", "gradient", "norm")
_CLOSE = 0.75  # difflib's ratio: 'los'/'loss' 0.86, 'trian'/'train' 0.8, 'lsos'/'loss' 0.75


def _word_meant(token: str) -> str | None:
    """The word of _WORDS a token of >= 3 letters misspells, else None (a word itself, or far from all)."""
    import difflib

    if len(token) < 3 or token in _WORDS or token in _EXCLUDE or not token.isalpha():
        return None
    close = difflib.get_close_matches(token, _WORDS, n=1, cutoff=_CLOSE)
    return close[0] if close else None


def meant(name: str) -> tuple[str, str] | None:
    """(the spelling a series name was likely meant to have, the role that spelling has) when correcting
    its misspelt words changes its role ('val_los' -> ('val_loss', 'val_loss')); None otherwise."""
    pieces = re.split(r"([/_.\-\s:]+)", name)
    fixed = [piece if i % 2 else (_word_meant(piece.lower()) or piece) for i, piece in enumerate(pieces)]
    spelling = "".join(fixed)
    role = role_of(spelling)
    return (spelling, role) if spelling != name and role is not None and role != role_of(name) else None


def unplaced(series: dict[str, Series], roles: dict[str, Series]) -> dict[str, tuple[str, str]]:
    """role -> (a logged name, the spelling it was likely meant to have), for each role no series plays
    whose name only a misspelling kept from it: the checks that need the role were skipped because of it."""
    found: dict[str, tuple[str, str]] = {}
    for name, one in series.items():
        guess = meant(name) if len(one) else None
        if guess is not None and guess[1] not in roles and guess[1] not in found:
            found[guess[1]] = (name, guess[0])
    return found


def optimizer_of(name: str) -> str | None:
    """`lr-SGD` / `lr-AdamW/pg1` (Lightning's LearningRateMonitor) name the optimizer."""
    match = re.match(r"lr-([A-Za-z]+)", name)
    return match.group(1).lower() if match else None


def parse_overrides(items) -> dict[str, str]:
    """`ROLE=NAME` pairs to a dict; an unknown role or a missing `=` is a usage error."""
    overrides: dict[str, str] = {}
    for item in items or ():
        role, sep, name = str(item).partition("=")
        role = role.strip()
        if not sep or not name.strip():
            raise UsageError(f"--metric expects ROLE=NAME, got {item!r}.")
        if role not in ROLES:
            raise UsageError(f"--metric role {role!r} is not one of {', '.join(ROLES)}.")
        overrides[role] = name.strip()
    return overrides


def _epoch_counted(series: Series) -> bool:
    """Keras' TensorBoard epoch_* scalars are logged at step = epoch (run.py gives them their epochs)."""
    return series.format == "tensorboard" and series.name.split("/")[-1].startswith("epoch_")


def _same_counter(candidates: dict[str, list[Series]], role: str) -> list[Series]:
    """A train role's candidates on the validation series' step counter: Keras' TensorBoard callback with
    update_freq=N logs batch_* at the batch counter beside epoch_* at the epoch, and a train loss counted
    in batches cannot be set against a validation loss counted in epochs (the other series is still read:
    metric-not-finite sees its NaN)."""
    options = candidates[role]
    if not role.startswith("train_"):
        return options
    val = [s for r in ("val_loss", "val_acc") for s in candidates[r]]
    same = [s for s in options if _epoch_counted(s)]
    return same if val and all(_epoch_counted(s) for s in val) and same else options


def map_roles(series: dict[str, Series], overrides: dict[str, str]) -> tuple[dict[str, Series],
                                                                               tuple[RoleMapping, ...]]:
    """(series per role, scaled where needed; the mapping as reported)."""
    candidates: dict[str, list[Series]] = {role: [] for role in ROLES}
    for name, one in series.items():
        role = role_of(name)
        if role is not None and len(one):
            candidates[role].append(one)
    chosen: dict[str, Series] = {}
    mapping: list[RoleMapping] = []
    for role in ROLES:
        note = ""
        if role in overrides:
            pick = series.get(overrides[role])
            if pick is None:
                mapping.append(RoleMapping(role, None, note=f"--metric {role}={overrides[role]}: no such "
                                                             f"series in this run"))
                continue
            note = "--metric override"
        elif candidates[role]:
            pick = max(_same_counter(candidates, role), key=lambda s: (len(s), -len(s.name)))
            others = sorted(s.name for s in candidates[role] if s is not pick)
            if others:
                note = f"also fits: {', '.join(others)}"
        else:
            mapping.append(RoleMapping(role, None, note=f"not found (looked for names like {HINTS[role]})"))
            continue
        scale = 1.0
        if role.endswith("_acc"):
            finite = pick.values[np.isfinite(pick.values)]
            top = float(finite.max()) if finite.size else 0.0
            if top > 100.0 or (finite.size and float(finite.min()) < 0.0):
                mapping.append(RoleMapping(role, None, pick.source, len(pick),
                                           f"{pick.name} has values outside [0, 100]: not an accuracy"))
                continue
            if top > 1.0:
                scale = 0.01
                note = "; ".join(filter(None, [note, f"values in percent (max {top:g}): scaled by 1/100"]))
                pick = Series(pick.name, pick.source, pick.format, pick.steps, pick.values * scale,
                              pick.walls, pick.epochs, pick.superseded, pick.step_from_order)
        chosen[role] = pick
        mapping.append(RoleMapping(role, pick.name, pick.source, len(pick), note, scale))
    return chosen, tuple(mapping)
