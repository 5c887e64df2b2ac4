"""FGSM and PGD-10 throughput of nnprobe vs torchattacks on the same model, batch and device, in one run.

    PYTHONPATH=. python bench/bench_attacks.py                       # CPU: resnet18 (random init), batch 16
    PYTHONPATH=. python bench/bench_attacks.py --model default --eps 0.0019608   # EfficientNet-Lite0, photos
    PYTHONPATH=. python bench/bench_attacks.py --model resnet50 --batch 256 --precision fp32,bf16   # GPU

Every workload ends with the verdict (is each image fooled?), since that is what a user attacks for:
nnprobe's attacks return it (one forward on the returned images); for torchattacks the benchmark adds
the same forward. Workloads:

- fgsm: one eps, like for like (one gradient + one forward each).
- fgsm-sweep: eps 1/255, 2/255, 4/255; nnprobe computes one gradient for the sweep, torchattacks one per eps.
- pgd10: ten steps for every image, last iterate (torchattacks' semantics), like for like.
- pgd10-robust: robust accuracy with PGD-10: nnprobe stops working on an image once it is fooled
  (first_success + early_stop); torchattacks runs every step. Both robust accuracies are printed.
- apgd-ce100-robust, autoattack100q5000-robust: robust accuracy with APGD-CE and with AutoAttack's standard
  sequence (APGD-CE -> APGD-T -> FAB-T -> Square; `--apgd-steps` for APGD and FAB, `--queries`), nnprobe with
  per-sample early stop.

Timings interleave the two libraries round by round and keep the best of `--repeats` (the machine may be
shared); images/s = batch / seconds. Each run's CPU seconds (this process's, `time.process_time`) are printed
too, with their best-of ratio: on the CPU with one thread (`OMP_NUM_THREADS=1`) they are the work each
library did, however loaded the machine, where the wall clock also counts the waits for a core; on a GPU
they are not the cost (read the wall-clock columns there). The load average after each workload closes the row.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import time

import torch
import torchattacks
import torchvision

from nnprobe.attacks import build, sweep
from nnprobe.attacks.cost import Meter
from nnprobe.models.classifier import Classifier
from nnprobe.results import ModelInfo, Preprocessing

SWEEP = (1 / 255, 2 / 255, 4 / 255)


def sample_batch(model: Classifier, batch: int) -> torch.Tensor:
    """The bundled sample photos at the model's input size: 85% windows at the four corners and the
    centre, each also flipped (40 distinct views), repeated up to `batch`."""
    import glob
    import os

    import numpy as np
    from PIL import Image

    from nnprobe.models.preprocessing import pil_resize_crop

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "imagenet")
    photos = [Image.open(p).convert("RGB") for p in sorted(glob.glob(os.path.join(root, "*", "*")))]
    pre = model.preprocessing
    views = []
    for fx, fy in ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1)):
        for flip in (False, True):
            for photo in photos:
                w, h = round(photo.width * 0.85), round(photo.height * 0.85)
                left, top = round((photo.width - w) * fx), round((photo.height - h) * fy)
                image = photo.crop((left, top, left + w, top + h))
                image = image.transpose(Image.FLIP_LEFT_RIGHT) if flip else image
                views.append(np.asarray(pil_resize_crop(image, pre), dtype=np.uint8))
    views = (views * (batch // len(views) + 1))[:batch]
    # contiguous: torchattacks' FAB .view()s the input gradient, which keeps a channels-last input's strides
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).contiguous().float() / 255


def make_model(name: str, device) -> Classifier:
    if name == "default":
        from nnprobe.models import load_classifier

        return load_classifier().to(device).eval()
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None).eval()
    info = ModelInfo(spec=name, source="torchvision", weights=None, architecture=name, num_classes=1000,
                     preprocessing=Preprocessing())
    return Classifier(net, info, [str(i) for i in range(1000)]).to(device).eval()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def workloads(model, x, y, eps, autocast_fn):
    """name -> (nnprobe callable, torchattacks callable); each returns the number of images still right."""

    def verdict(adv):
        with torch.no_grad(), autocast_fn():
            return int((model(adv).float().argmax(1) == y).sum())

    def ta_fgsm():
        with autocast_fn():
            adv = torchattacks.FGSM(model, eps=eps)(x, y)
        return verdict(adv)

    def ta_sweep():
        right = 0
        for e in SWEEP:
            with autocast_fn():
                adv = torchattacks.FGSM(model, eps=e)(x, y)
            right += verdict(adv)
        return right

    def ta_pgd():
        with autocast_fn():
            adv = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=10, random_start=True)(x, y)
        return verdict(adv)

    def nn_fgsm():
        return int((~build("fgsm", eps)(model, x, y, autocast=autocast_fn()).success).sum())

    def nn_sweep():
        return sum(int((~out.success).sum()) for _, out in sweep("fgsm", model, x, y, SWEEP, autocast=autocast_fn()))

    def nn_pgd(**kw):
        out = build("pgd", eps, steps=10, step_size=eps / 4, seed=0)(model, x, y, autocast=autocast_fn(), **kw)
        return int((~out.success).sum())

    return {
        "fgsm": (nn_fgsm, ta_fgsm),
        "fgsm-sweep(3 eps)": (nn_sweep, ta_sweep),
        "pgd10": (nn_pgd, ta_pgd),
        "pgd10-robust": (lambda: nn_pgd(first_success=True, early_stop=True), ta_pgd),
    }


def torchattacks_chain(model, eps: float, steps: int, queries: int, classes: int) -> dict:
    """torchattacks' parts of AutoAttack-standard by nnprobe's component ids, in order: APGD, APGDT with 9
    targets, FAB multi-targeted with 9 targets, Square (the reference's sequence at these budgets)."""
    targets = min(classes, 10)
    return {"apgd-ce": torchattacks.APGD(model, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0),
            "apgd-t": torchattacks.APGDT(model, eps=eps, steps=steps, n_restarts=1, n_classes=targets, seed=0),
            "fab-t": torchattacks.FAB(model, eps=eps, steps=steps, n_restarts=1, multi_targeted=True,
                                      n_classes=targets, seed=0),
            "square": torchattacks.Square(model, eps=eps, n_queries=queries, n_restarts=1, seed=0)}


def robust_workloads(model, x, y, eps, autocast_fn, steps: int, queries: int):
    """APGD-CE and AutoAttack for robust accuracy: nnprobe with per-sample early stop (first_success), and
    torchattacks' APGD / the same sequence from its own parts (MultiAttack of APGD, APGDT with 9 targets, FAB
    multi-targeted with 9 targets, Square), which hands only still-robust samples to the next attack as the
    reference does (torchattacks' own `AutoAttack` would run APGD at 10 steps, not the reference's 100)."""
    classes = int(model(x[:1]).shape[1])

    def verdict(adv):
        with torch.no_grad(), autocast_fn():
            return int((model(adv).float().argmax(1) == y).sum())

    def ta_apgd():
        with autocast_fn():
            adv = torchattacks.APGD(model, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0)(x, y)
        return verdict(adv)

    def ta_autoattack():
        with autocast_fn():
            adv = torchattacks.MultiAttack(list(torchattacks_chain(model, eps, steps, queries, classes).values()))(x, y)
        return verdict(adv)

    def nn_run(attack_id, **options):
        out = build(attack_id, eps, seed=0, **options)(model, x, y, autocast=autocast_fn(), first_success=True,
                                                       early_stop=True)
        return int((~out.success).sum())

    return {
        f"apgd-ce{steps}-robust": (lambda: nn_run("apgd-ce", steps=steps), ta_apgd),
        f"autoattack{steps}q{queries}-robust": (lambda: nn_run("autoattack", steps=steps, queries=queries),
                                                 ta_autoattack),
    }


def measure(fn, device, repeats_out: list, cpu_out: list) -> int:
    """Runs fn once; appends its wall seconds and this process's CPU seconds (on a CPU run with one thread the
    CPU seconds are what the attack cost, however many other jobs share the cores; on a GPU they are not)."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    repeats_out.append(time.perf_counter() - start)
    cpu_out.append(time.process_time() - cpu)
    return result


def _per_run(meter: Meter, repeats: int) -> str:
    return f"{meter.forwards / repeats:.0f} / {meter.backwards / repeats:.0f}"


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", help="torchvision name (random init) or 'default' "
                        "(the embedded EfficientNet-Lite0 on the bundled photos, flipped and rescaled)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", type=float, default=4 / 255)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="comma list: fp32,bf16")
    parser.add_argument("--only", default=None, help="comma list of workloads")
    parser.add_argument("--apgd-steps", type=int, default=100, help="APGD iterations (apgd-ce, autoattack)")
    parser.add_argument("--queries", type=int, default=5000, help="Square queries inside autoattack")
    parser.add_argument("--passes", action="store_true", help="count each library's image passes through the "
                        "model (nnprobe/attacks/cost.py: a forward 1, a backward 2) and print them under each row")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up round (long workloads: the "
                        "first call's one-time costs are small against them)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    model = make_model(args.model, device)
    if args.model == "default":  # a trained model on real photos: fooling takes several steps
        x = sample_batch(model, args.batch).to(device)
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, 3, 224, 224, generator=g).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)  # the model's own answers: every image starts "correct"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# {datetime.date.today()} {args.model} batch {args.batch} on {device} ({gpu}), "
          f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, threads {torch.get_num_threads()}, "
          f"eps {args.eps * 255:.3g}/255, best of {args.repeats}")
    print("| workload | precision | nnprobe img/s | torchattacks img/s | ratio | still right (nnprobe / torchattacks) "
          "| CPU s per run (nnprobe / torchattacks) | CPU ratio (best) | load average after |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | --- |")
    for precision in args.precision.split(","):
        if precision == "fp32":
            autocast_fn = contextlib.nullcontext
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            autocast_fn = lambda: torch.autocast(device.type, dtype=dtype)  # noqa: E731
        jobs = workloads(model, x, y, args.eps, autocast_fn)
        jobs.update(robust_workloads(model, x, y, args.eps, autocast_fn, args.apgd_steps, args.queries))
        if args.only:
            jobs = {k: v for k, v in jobs.items() if k in args.only.split(",")}
        for name, (ours, theirs) in jobs.items():
            if not args.no_warmup:
                ours(), theirs()  # warm-up
            t_ours, t_theirs, c_ours, c_theirs = [], [], [], []
            meters = (Meter(), Meter())  # counted in every round when --passes (a pre-hook: negligible work)
            for _ in range(args.repeats):
                with meters[0].counting(model if args.passes else None):
                    right_ours = measure(ours, device, t_ours, c_ours)
                with meters[1].counting(model if args.passes else None):
                    right_theirs = measure(theirs, device, t_theirs, c_theirs)
            a, b = min(t_ours), min(t_theirs)
            load = "/".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"| {name} | {precision} | {args.batch / a:.2f} | {args.batch / b:.2f} | {b / a:.2f}x | "
                  f"{right_ours} / {right_theirs} (median s: {statistics.median(t_ours):.2f} / "
                  f"{statistics.median(t_theirs):.2f}) | {_runs(c_ours)} / {_runs(c_theirs)} | "
                  f"{min(c_theirs) / min(c_ours):.2f}x | {load} |", flush=True)
            if args.passes:
                print(f"|   passes per run ({name}) | | forwards / backwards: nnprobe "
                      f"{_per_run(meters[0], args.repeats)}, torchattacks {_per_run(meters[1], args.repeats)} | | "
                      f"pass equivalents {meters[0].cost / args.repeats:.0f} / {meters[1].cost / args.repeats:.0f} "
                      f"| {meters[1].cost / max(meters[0].cost, 1):.2f}x | | | |", flush=True)


if __name__ == "__main__":
    main()
