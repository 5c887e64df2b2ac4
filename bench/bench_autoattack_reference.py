"""nnprobe's AutoAttack (standard, plus, rand) and FAB-T against the original code (fra31/auto-attack), per
sample, on the same model, images, eps and seed. The reference is not on PyPI and is not vendored: fetch a
checkout and put it on PYTHONPATH (its `autoattack` package), e.g.

    git clone https://github.com/fra31/auto-attack /tmp/aaref   # or any snapshot of it
    PYTHONPATH=.:/tmp/aaref python bench/bench_autoattack_reference.py                 # tiny net, 48 images
    PYTHONPATH=.:/tmp/aaref python bench/bench_autoattack_reference.py --model default --n 4 --versions standard

Per row: robust images out of the clean-right ones for nnprobe and for the reference, per-sample agreement,
and the samples each calls robust that the other fooled. The two draw different random numbers (nnprobe per
sample from (seed, id); the reference one stream per batch), so randomised components (APGD's starts,
Square) may differ sample by sample; FAB-T with one restart is deterministic and must agree exactly. What
must hold for a result labelled AutoAttack: nnprobe never reports a higher robust accuracy than the
reference by more than the randomness explains.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(n: int):
    sys.path.insert(0, os.path.join(ROOT, "tests", "attacks"))
    import tinymodels

    x, y = tinymodels.make_data(n, seed=7)
    return tinymodels.tiny_classifier(), x, y


def default(n: int):
    """The embedded default model on the bundled ImageNet photos (their folders are their labels)."""
    from nnprobe.data.layouts import find_images
    from nnprobe.models import load_classifier
    from nnprobe.models.preprocessing import pil_resize_crop
    import numpy as np
    from PIL import Image

    model = load_classifier().eval()
    data = find_images(os.path.join(ROOT, "samples", "imagenet"), class_names=model.class_names,
                       wnids=model.wnids, num_classes=len(model.class_names))
    xs, ys = [], []
    for path, label in data.samples[:n]:
        image = pil_resize_crop(Image.open(path).convert("RGB"), model.preprocessing)
        xs.append(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float() / 255)
        ys.append(label)
    return model, torch.stack(xs), torch.tensor(ys)


def compare(name: str, ours: torch.Tensor, theirs: torch.Tensor, right: torch.Tensor, seconds: tuple) -> str:
    ours, theirs = ours & right, theirs & right  # robust = still right after the attack
    line = (f"| {name} | {int(ours.sum())} | {int(theirs.sum())} | {int((ours == theirs)[right].sum())}/"
            f"{int(right.sum())} | {int((ours & ~theirs).sum())} | {int((theirs & ~ours).sum())} | "
            f"{seconds[0]:.1f} / {seconds[1]:.1f} |")
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=("tiny", "default"))
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--eps", default="4,8", help="comma list, in 1/255 units")
    parser.add_argument("--versions", default="standard,plus,rand")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from autoattack import AutoAttack as Reference
    from autoattack.fab_pt import FABAttack_PT

    from nnprobe.attacks import build

    model, x, y = tiny(args.n) if args.model == "tiny" else default(args.n)
    with torch.no_grad():
        logits = model(x)
    right, classes = logits.argmax(1) == y, logits.shape[1]
    ids = torch.arange(len(y))
    print(f"# {datetime.date.today()} {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
          f"model {args.model}, {len(y)} images ({int(right.sum())} right), seed {args.seed}")
    print("| attack | robust (nnprobe) | robust (reference) | per-sample agreement | robust only in nnprobe | "
          "robust only in reference | seconds nnprobe / reference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for eps in (float(e) / 255 for e in args.eps.split(",")):
        started = time.perf_counter()
        fab = build("fab-t", eps, seed=args.seed)(model, x, y)
        mid = time.perf_counter()
        reference = FABAttack_PT(model, norm="Linf", n_restarts=1, n_iter=100, eps=eps, seed=args.seed,
                                 targeted=True, device=x.device, n_target_classes=min(9, classes - 1))
        with torch.no_grad():
            theirs = model(reference.perturb(x, y)).argmax(1) == y
        compare(f"fab-t, eps {eps * 255:g}/255", ~fab.success, theirs, right,
                (mid - started, time.perf_counter() - mid))
        for version in args.versions.split(","):
            attack_id = "autoattack" if version == "standard" else f"autoattack-{version}"
            started = time.perf_counter()
            ours = build(attack_id, eps, seed=args.seed)(model, x, y, first_success=True, early_stop=True,
                                                         sample_ids=ids)
            mid = time.perf_counter()
            reference = Reference(model, norm="Linf", eps=eps, version=version, seed=args.seed, verbose=False,
                                  device=x.device)
            if classes < 10:  # the reference's 9 target classes need 10 classes
                reference.apgd_targeted.n_target_classes = reference.fab.n_target_classes = classes - 1
            adversarial = reference.run_standard_evaluation(x, y, bs=len(y))
            with torch.no_grad():
                theirs = model(adversarial).argmax(1) == y
            compare(f"autoattack {version}, eps {eps * 255:g}/255", ~ours.success, theirs, right,
                    (mid - started, time.perf_counter() - mid))


if __name__ == "__main__":
    main()
