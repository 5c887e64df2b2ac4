"""The binarization test (`robust --binarization-test`, nnprobe/attacks/binarization.py) behind every planted
defense of tests/attacks/planted.py and each control, with every attack nnprobe offers: per cell, how many of
the probed samples the attack fails the test on, of those whose readout could be set up.

    PYTHONPATH=. python bench/bench_binarization.py                          # the table (tiny net, 16 samples)
    PYTHONPATH=. python bench/bench_binarization.py --attacks pgd --inner 63  # one column at another strength
    PYTHONPATH=. python bench/bench_binarization.py --cost-default 1         # cost per photo, default model
    PYTHONPATH=. python bench/bench_binarization.py --readout sklearn        # the reference's solver instead

The samples are the tests' (tinymodels.make_data(16, seed=21) on the 8-bit grid), the budget 8/255 (L∞), each
attack at its default settings and seed 0, exactly as `robust --attack ATTACK --eps 0,8/255
--binarization-test` runs it on its first 16 samples (`binarization.check`). A cell reads FAILED/CHECKED
(+R: random surface points were already adversarial for R of the checked samples). `--cost-default N`
measures the test on EfficientNet-Lite0 and N bundled photos instead: pass equivalents (cost.Meter) and
seconds per photo, for PGD-10 at 1/255, at 63 and at the reference's 999 inner points. `--readout sklearn`
fits the readout as the reference does (scikit-learn's LogisticRegression without penalty, max_iter 1000, on
the raw features; a fit that does not separate every point is not set up, as the reference's "perfect"
solution check) instead of nnprobe's L-BFGS on standardised features.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(HERE), "tests", "attacks"), HERE]

ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t", "square", "autoattack", "fast")
EPS = 8 / 255
NONE = contextlib.nullcontext()


def cell(attack_id: str, kind: str, x: torch.Tensor, inner: int) -> tuple[int, int, int, int, float]:
    """(failed, checked, random, cost, seconds) of the test on the samples x behind `kind`."""
    import planted
    from nnprobe.attacks import binarization, build

    torch.manual_seed(0)  # the randomised defenses draw from torch's global generator
    model = planted.classifier(kind)
    attack = build(attack_id, EPS, seed=0)
    started = time.perf_counter()
    flags = binarization.check(attack, model, x, torch.arange(x.shape[0]), 0, NONE, inner=inner)
    seconds = time.perf_counter() - started
    return (int(flags["binarization_failed"].sum()), int(flags["binarization_checked"].sum()),
            int(flags["binarization_random"].sum()), int(flags["binarization_cost"].sum()), seconds)


def sklearn_readout(inner: torch.Tensor, boundary: torch.Tensor):
    """The reference's readout fit (decision_boundary_binarization.py, optimizer "sklearn"), scaled as nnprobe's."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    f = torch.cat([inner, boundary]).double()
    labels = np.r_[np.zeros(len(inner)), np.ones(len(boundary))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs rarely converges on separable points: the reference warns too
        fit = LogisticRegression(penalty=None, max_iter=1000).fit(f.numpy(), labels)
    w, b = torch.tensor(fit.coef_[0], dtype=f.dtype), torch.tensor(fit.intercept_[0], dtype=f.dtype)
    z = f @ w + b
    if not ((z[:len(inner)] < 0).all() and (z[len(inner):] > 0).all()):
        return None
    return w / (2 * z.abs().max()), b / (2 * z.abs().max())


def table(attacks, kinds, n: int, inner: int) -> None:
    import planted
    import tinymodels

    x = planted.on_grid(tinymodels.make_data(n, seed=21)[0])
    from nnprobe.attacks import binarization

    print(f"# binarization test, {n} samples, L∞ 8/255, {inner} inner points, readout "
          f"{'sklearn' if binarization.fit_readout is sklearn_readout else 'nnprobe'}; {platform.processor() or 'cpu'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {datetime.date.today()}")
    print("| defense | " + " | ".join(attacks) + " |")
    print("|---|" + "---:|" * len(attacks))
    totals = {a: [0, 0.0] for a in attacks}
    for kind in kinds:
        cells = []
        for attack_id in attacks:
            failed, checked, random, cost, seconds = cell(attack_id, kind, x, inner)
            totals[attack_id][0] += cost
            totals[attack_id][1] += seconds
            cells.append(f"{failed}/{checked} (+{random})")
        role = " (control)" if kind in planted.CONTROLS else ""
        print(f"| {kind}{role} | " + " | ".join(cells) + " |", flush=True)
    print("| cost, passes per sample | " + " | ".join(f"{totals[a][0] / (n * len(kinds)):.0f}" for a in attacks) + " |")
    print("| seconds, all rows | " + " | ".join(f"{totals[a][1]:.1f}" for a in attacks) + " |")


def cost_default(photos: int) -> None:
    """The test's cost per photo on the default model at 63 and 999 inner points (PGD-10 at 1/255)."""
    import bench_attacks
    from nnprobe.attacks import binarization, build

    model = bench_attacks.make_model("default", torch.device("cpu"))
    x = bench_attacks.sample_batch(model, photos)
    attack = build("pgd", 1 / 255, seed=0)
    for inner in (63, binarization.INNER):
        started, cpu = time.perf_counter(), time.process_time()
        flags = binarization.check(attack, model, x, torch.arange(photos), 0, NONE, inner=inner)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"default model, {inner} inner points: {int(flags['binarization_cost'].sum()) / photos:.0f} passes, "
              f"{wall / photos:.1f} s wall, {cpu / photos:.1f} s CPU per photo ({photos} photo(s), "
              f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}); failed "
              f"{int(flags['binarization_failed'].sum())} of {int(flags['binarization_checked'].sum())}", flush=True)


def main() -> None:
    import planted

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--kinds", default=",".join((*planted.PLANTED, *planted.CONTROLS)))
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--inner", type=int, default=None, help="inner points (default: binarization.INNER)")
    parser.add_argument("--cost-default", type=int, default=0, metavar="PHOTOS")
    parser.add_argument("--readout", choices=("nnprobe", "sklearn"), default="nnprobe")
    args = parser.parse_args()
    if args.readout == "sklearn":
        from nnprobe.attacks import binarization

        binarization.fit_readout = sklearn_readout
    if args.cost_default:
        cost_default(args.cost_default)
        return
    from nnprobe.attacks import binarization

    table(args.attacks.split(","), args.kinds.split(","), args.n, args.inner or binarization.INNER)


if __name__ == "__main__":
    main()
