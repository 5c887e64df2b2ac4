"""How images are attacked: --attack, --eps (budgets in pixel units), --steps, --step-size, --random-start,
--seed, and fool's own (--min-eps, --max-eps, --target, --space, --out, --no-panel, --fail-if-fooled)."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, argument, option
from nnprobe.options.budget import parse_eps, parse_eps_list

MIN_NORM = ("fmn-linf", "fmn-l2", "fmn-l1", "fmn-l0")  # attacks/minnorm.py's MIN_NORM_IDS (a test keeps them equal)
# The registry's ids, spelled here so that `nnprobe fool --help` does not import torch (a test keeps this list
# equal to the registry).
ATTACKS = ("fgsm", "bim", "pgd", "pgd-l2", "mifgsm", "apgd-ce", "apgd-ce-l2", "apgd-dlr", "apgd-dlr-l2", "apgd-t",
           "apgd-t-l2", "fab", "fab-l2", "fab-t", "fab-t-l2", "square", "square-l2", "autoattack", "autoattack-l2",
           "autoattack-plus", "autoattack-plus-l2", "autoattack-rand", "autoattack-rand-l2", "apgd-t-malt",
           "apgd-t-malt-l2", "fast", "fast-l2")
AUTOATTACK_VERSIONS = ("standard", "plus", "rand")
SPACES = ("image", "model")
MIN_EPS_SEARCH = ("fmn", "bisection")
SEED = p.integer(0, 2**63 - 1)


def budgets(value, flag: str) -> tuple[float, ...]:
    """Budgets as text (`0,1/255`), a number or a sequence of numbers; the attack's norm limit (L∞ <= 1) is
    checked once the attack is known (attacks/budget.py)."""
    if isinstance(value, str):
        return parse_eps_list(value, name=flag, max_value=None)
    items = [value] if isinstance(value, (int, float)) else list(value)
    if not items:
        raise p.UsageError(f"Give at least one {flag}.")
    return tuple(dict.fromkeys(budget(item, flag) for item in items))


def budget(value, flag: str) -> float:
    """One budget, text or number, through the same parser (a number is spelled exactly by its repr)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = repr(float(value))
    return parse_eps(str(value), name=flag, max_value=None)


def surrogate_spec(value, flag: str):
    """A model spec (text or path), or a Classifier / nn.Module from the Python API."""
    import os

    return p.path(value, flag) if isinstance(value, (str, os.PathLike)) else value


@dataclass(frozen=True)
class SeedOptions(Options):
    seed: int = option("--seed", "Seed of the random draws: the same seed gives the same numbers.", default=0,
                       parse=SEED, metavar="INTEGER", show_default=True)


@dataclass(frozen=True)
class AttackOptions(Options):
    """The attack shared by fool and robust; `eps` None is the verb's default."""
    attack: str | None = option(
        "--attack", "fgsm (one step), bim (I-FGSM), pgd (L∞, random start), pgd-l2, mifgsm (momentum), apgd-ce / "
        "apgd-dlr / apgd-t (Auto-PGD, cross-entropy / DLR / targeted DLR; -l2 variants), fab / fab-t (minimum-norm "
        "boundary attack), square / square-l2 (score-based, no gradients), autoattack / autoattack-l2 (APGD-CE -> "
        "APGD-T -> FAB-T -> Square, worst case per sample; -plus and -rand: the reference's other versions, also "
        "--autoattack-version), fast / fast-l2 (AutoAttack's robust accuracy at a fifth of its cost or less: "
        "APGD-CE, then APGD-T on MALT-ranked targets).",
        parse=p.choice(*ATTACKS), choices=ATTACKS)
    steps: int | None = option("--steps", "Iterations of bim/pgd/pgd-l2/mifgsm (default 10); apgd-*: default 100; "
                               "square: queries (default 5000); autoattack: APGD's (default 100).",
                               parse=p.integer(1, 10_000_000), metavar="INTEGER")
    step_size: float | None = option("--step-size", "Step per iteration, e.g. 0.5/255 (default 2.5·eps/steps; "
                                     "mifgsm eps/steps).", parse=budget, metavar="ALPHA")
    random_start: bool | None = option("--random-start", "pgd/pgd-l2 start at a random point in the ball (default "
                                       "on).", parse=p.flag, is_flag=True, secondary="--no-random-start")
    seed: int = option("--seed", "Seed of the random start: the same seed gives the same images.", default=0,
                       parse=SEED, metavar="INTEGER", show_default=True)
    eps: tuple[float, ...] | None = option("--eps", "", parse=budgets, metavar="EPS[,EPS...]")


@dataclass(frozen=True)
class RobustAttackOptions(AttackOptions):
    eps: tuple[float, ...] | None = option("--eps", "Budgets in pixel units (k/255 or decimals); 0 gives the "
                                           "clean accuracy.", parse=budgets, metavar="EPS[,EPS...]",
                                           show_default="0,1/255,2/255,4/255")
    early_stop: bool = option("--early-stop", "Stop attacking a sample once fooled (same numbers, less work).",
                              default=True, parse=p.flag, is_flag=True, secondary="--no-early-stop",
                              show_default=True)
    autoattack_version: str | None = option(
        "--autoattack-version", "With --attack autoattack[-l2]: the reference's version (standard: APGD-CE, APGD-T, "
        "FAB-T, Square; plus: 5 restarts, APGD-DLR, FAB, Square, APGD-T, FAB-T; rand: APGD-CE and APGD-DLR with EoT "
        "over 20 draws).", parse=p.choice(*AUTOATTACK_VERSIONS), choices=AUTOATTACK_VERSIONS)
    adaptive: bool = option("--adaptive", "Run the follow-ups the sanity checks name on each budget's survivors: "
                            "Square (5000 queries), APGD-CE with EoT over 20 draws on log-probabilities, and a "
                            "transfer attack from --surrogate; robust accuracy is the worst case over all attacks.",
                            default=False, parse=p.flag, is_flag=True, secondary="--no-adaptive", show_default=True)
    surrogate: object = option("--surrogate", "With --adaptive: a model spec to craft transfer attacks on (judged on "
                               "--model), e.g. the undefended network behind a non-differentiable defense.",
                               parse=surrogate_spec, metavar="MODEL", path=PathKind.INPUT, input_kind="model",
                               maybe_name=True)
    min_norm: str | None = option(
        "--min-norm", "Also give every sample its smallest fooling distance with a minimum-norm attack (FMN, "
        "Pintor et al. 2021: fmn-linf, fmn-l2, fmn-l1, fmn-l0) and report their median, quantiles and the robust "
        "accuracy they imply at every eps.", parse=p.choice(*MIN_NORM), choices=MIN_NORM)
    min_norm_steps: int | None = option("--min-norm-steps", "Iterations of --min-norm (default 100).",
                                        parse=p.integer(1, 100_000), metavar="INTEGER")
    binarization_test: bool = option(
        "--binarization-test", "Also run the binarization test (Zimmermann et al. 2022) on the sanity checks' 16 "
        "samples: the model's last linear layer replaced by a readout with a known adversarial inside the largest "
        "budget, which the attack must find (about 1,000 passes per sample with the default 999 inner points, "
        "plus the attack's).",
        default=False, parse=p.flag, is_flag=True, secondary="--no-binarization-test", show_default=True)
    binarization_inner_points: int | None = option(
        "--binarization-inner-points", "With --binarization-test: random points inside the ball per sample that the "
        "readout must separate from the boundary point (default 999, the reference's; each costs a forward).",
        parse=p.integer(1, 9_999), metavar="INTEGER")

    def attack_id(self) -> str:
        """The registered attack: --attack (default pgd), and for autoattack[-l2] the --autoattack-version."""
        attack, version = self.attack or "pgd", self.autoattack_version
        if version is None or version == "standard" and attack in ("autoattack", "autoattack-l2"):
            return attack
        if attack not in ("autoattack", "autoattack-l2"):
            raise p.UsageError(f"--autoattack-version needs --attack autoattack or autoattack-l2, not {attack}.")
        return attack.replace("autoattack", f"autoattack-{version}")


@dataclass(frozen=True)
class FoolAttackOptions(AttackOptions):
    eps: tuple[float, ...] | None = option(
        "--eps", "Budget in pixel units: 2/255, 0.01, or a list 1/255,2/255,4/255 (one item per image and eps; "
        "FGSM computes one gradient for all).", parse=budgets, metavar="EPS[,EPS...]", show_default="2/255")
    min_eps: bool = option("--min-eps", "Per photo, search for the smallest budget (1/255 grid) whose 8-bit PNG "
                           "fools the model: from FMN's minimum-norm distance, checked on the grid with an iterative "
                           "attack (default pgd); excludes --eps.", default=False, parse=p.flag, is_flag=True)
    min_eps_search: str = option("--min-eps-search", "How --min-eps searches: fmn (FMN's distance, then the grid "
                                 "levels at and below it) or bisection (doubling then bisection with the attack).",
                                 default="fmn", parse=p.choice(*MIN_EPS_SEARCH), choices=MIN_EPS_SEARCH,
                                 show_default=True)
    max_eps: float | None = option("--max-eps", "Cap of the --min-eps search (default 64/255 for L∞, 2048/255 for "
                                   "L2).", parse=budget, metavar="EPS")
    target: str | int | None = option("--target", "Targeted: make the model answer this class (index, name such "
                                      "as 'toaster', or wnid).", metavar="INDEX|NAME")
    space: str = option("--space", "image: attack the photo at its own size through the differentiable "
                        "resize/crop; model: attack the cropped model input.", default="image",
                        parse=p.choice(*SPACES), choices=SPACES, show_default=True)
    out_dir: str = option("--out", "Folder for <stem>.adv.png and <stem>.panel.png (never an input's path).",
                          default="nnprobe-fool", parse=p.path, metavar="DIR", path=PathKind.OUTPUT_FOLDER,
                          show_default=True)
    panels: bool = option("--panel", "Write side-by-side panels beside the adversarial PNGs (--no-panel: only "
                          "the adversarial PNGs).", default=True, parse=p.flag, is_flag=True,
                          secondary="--no-panel", show_default=True)
    fail_if_fooled: bool = option("--fail-if-fooled", "Gate: exit 1 when any written image fools the model (for "
                                  "robustness CI).", default=False, parse=p.flag, is_flag=True)

    def check(self) -> None:
        if self.min_eps and self.eps is not None:
            raise p.UsageError("--eps and --min-eps exclude each other: the search picks the budgets (cap them "
                               "with --max-eps).")


@dataclass(frozen=True)
class PhotoInputs(Options):
    images: tuple[str, ...] = argument("IMAGE...", "", default=(), parse=p.paths, nargs=-1, required=True,
                                       path=PathKind.INPUT, input_kind="image", what="Image")
