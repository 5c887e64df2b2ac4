"""What `nnprobe diagnose` and `follow` read and how they judge: runs, --num-classes, --metric, --fail-on,
the --model probe, --baseline, and --follow's pacing and --kill-on-error."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.errors import UsageError
from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, argument, option
from nnprobe.options.data import COUNT
from nnprobe.options.model import spec
from nnprobe.options.run import _device

SEVERITIES = ("error", "warning", "never")
ROLES = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm")


def metric_overrides(value, flag: str):
    """ROLE=NAME items (repeatable), or a mapping {role: name} from the Python API (checked by the reader's
    role table later, which names the roles)."""
    if isinstance(value, dict):
        return dict(value)
    items = p.texts(value, flag)
    for item in items:
        if "=" not in item:
            raise UsageError(f"{flag} {item!r} must read ROLE=NAME, e.g. val_loss=valid/loss.")
    return list(items)


def pid(value, flag: str) -> int:
    """A whole number of any size: which PIDs can be signalled (none <= 1, none beyond pid_max, not nnprobe
    nor its ancestors) is diagnosis.follow.check_kill_target's one rule, said before following starts."""
    import re

    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[-+]?\d{1,4000}", text):
        raise UsageError(f"{flag} {text[:40]!r} is not a process ID (a whole number).")
    return int(text)


@dataclass(frozen=True)
class LogOptions(Options):
    """Which run's logs, and how they are judged (diagnose and follow)."""
    run: tuple[str, ...] = argument("PATH...", "", default=(), parse=p.paths, nargs=-1, required=True,
                                      path=PathKind.INPUT_FOLDER, input_kind="log")
    num_classes: int | None = option("--num-classes", "Number of classes K (chance level 1/K, first loss ~ ln K). "
                                     "Default: hparams.yaml or config.json, else inferred from a first loss "
                                     "logged at init.", parse=p.integer(2, 1_000_000_000), metavar="INTEGER")
    metric: object = option("--metric", "Use series NAME for ROLE (train_loss, val_loss, train_acc, val_acc, lr, "
                            "grad_norm). Repeatable.", default=None, parse=metric_overrides, metavar="ROLE=NAME",
                            multiple=True)
    fail_on: str = option("--fail-on", "Exit 1 when a finding reaches this severity.", default="error",
                          parse=p.choice(*SEVERITIES), choices=SEVERITIES, show_default=True)
    no_crc: bool = option("--no-crc", "Skip CRC verification of event-file records (faster).", default=False,
                          parse=p.flag, is_flag=True)


@dataclass(frozen=True)
class DiagnoseOptions(LogOptions):
    baseline: str | None = option("--baseline", "Compare with this run folder (or diagnose JSON): findings new or "
                                  "gone, metric deltas, where the validation loss rises above the baseline's. A "
                                  "new error finding fails (exit 1).", parse=p.path, metavar="RUN|JSON",
                                  path=PathKind.INPUT, input_kind="result", run_ok=True)
    timeout: float = option("--timeout", "Connect and read timeout of each request to a remote store (s3:// ...); a "
                            "refused or silent endpoint is not retried.", default=20.0, parse=p.number(0.1, 3600),
                            metavar="SECONDS", show_default=True)


@dataclass(frozen=True)
class ProbeOptions(Options):
    """diagnose --model/--data: also run the model on labelled images and see how its answers spread."""
    model: object = option("--model", "Also probe this model's predictions on --data (any nnprobe eval --model "
                           "spec).", parse=spec, metavar="SPEC", path=PathKind.INPUT, input_kind="model",
                           maybe_name=True)
    weights: str | None = option("--weights", "Weights for --model (as in nnprobe eval).", parse=p.path,
                                 metavar="ENUM|PATH", path=PathKind.INPUT, input_kind="model", maybe_name=True)
    arch: str | None = option("--arch", "Architecture for a state-dict --model.", parse=p.text, metavar="NAME")
    trust_pickle: bool = option("--trust-pickle", "Allow full unpickling of --model (runs code).", default=False,
                                parse=p.flag, is_flag=True)
    data: object = option("--data", "Labelled image folder for the --model probe.", parse=p.path,
                          path=PathKind.INPUT_FOLDER, what="data set")
    limit: int | None = option("--limit", "Probe at most N images (evenly spaced).", parse=COUNT, metavar="INTEGER")
    device: str = option("--device", "Device for the --model probe.", default="auto", parse=_device,
                         text_default="auto", show_default=True)

    def check(self) -> None:
        if (self.model is None) != (self.data is None):
            raise UsageError("--model and --data go together: the probe runs the model on the labelled images.")


@dataclass(frozen=True)
class FollowOptions(Options):
    follow: bool = option("--follow", "Watch a live run: read appended records every --poll seconds; exit 1 at the "
                          "first NaN, negative or diverging loss (naming its step), 0 when the run ends "
                          "(docs/diagnose.md).", default=False, parse=p.flag, is_flag=True, api=False)
    poll: float = option("--poll", "With --follow: seconds between reads.", default=2.0,
                         parse=p.number(0.05, 86400.0), metavar="SECONDS", show_default=True)
    idle: float = option("--idle", "With --follow: the run has ended after this long without new data.",
                         default=300.0, parse=p.number(0.0, 10.0 * 365 * 86400), metavar="SECONDS",
                         show_default=True)
    wait: float = option("--wait", "With --follow: wait this long for PATH and its first log to appear (a follower "
                         "started before the run); then exit 2.", default=300.0, parse=p.number(0.0, 10.0 * 365 * 86400),
                         metavar="SECONDS", show_default=True)
    kill_pid: int | None = option("--kill-on-error", "With --follow: send SIGTERM to exactly this process (not its "
                                  "group or children) when an error is found. PID <= 1, nnprobe itself and every "
                                  "process that started it are refused.", parse=pid, metavar="PID")
