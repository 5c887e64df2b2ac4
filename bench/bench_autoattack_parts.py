"""Where AutoAttack's time goes: CPU seconds per component, nnprobe against torchattacks, on the same images.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_autoattack_parts.py                  # default model, 0.1/255
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_autoattack_parts.py --eps 0.0039216  # 1/255

bench_attacks.py times the whole chain; this splits it. nnprobe's AutoAttack runs as usual (per-sample early
stop, each component on the samples every earlier one left robust) with each component's `_run` timed;
torchattacks' components (APGD, APGDT, FAB multi-targeted, Square: the MultiAttack bench_attacks.py builds) run
one after the other, each on the samples the earlier ones left robust, as MultiAttack hands them on. CPU
seconds of this process (`time.process_time`): with one thread they are the work done however loaded the
machine. One run each (a component on the survivors takes minutes at 0.1/255).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch
from bench_attacks import make_model, sample_batch, torchattacks_chain

from nnprobe.attacks import build


def nnprobe_parts(model, x, y, eps, steps, queries) -> tuple[dict, int]:
    attack = build("autoattack", eps, seed=0, steps=steps, queries=queries)
    seconds = {}
    for part in attack.parts:
        run = part._run

        def timed(*args, _run=run, _id=part.id, **kwargs):
            start = time.process_time()
            out = _run(*args, **kwargs)
            seconds[_id] = time.process_time() - start
            return out

        part._run = timed
    out = attack(model, x, y, first_success=True, early_stop=True)
    return seconds, int((~out.success).sum())


def torchattacks_parts(model, x, y, eps, steps, queries) -> tuple[dict, int]:
    parts = torchattacks_chain(model, eps, steps, queries, int(model(x[:1]).shape[1]))
    robust = torch.ones(len(y), dtype=torch.bool)
    seconds = {}
    for name, attack in parts.items():
        todo = robust.nonzero().flatten()
        if todo.numel() == 0:
            break
        start = time.process_time()
        adversarial = attack(x[todo], y[todo])
        seconds[name] = time.process_time() - start
        with torch.no_grad():
            robust[todo[model(adversarial).argmax(1) != y[todo]]] = False
    return seconds, int(robust.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eps", type=float, default=0.1 / 255)
    parser.add_argument("--apgd-steps", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    model = make_model(args.model, "cpu")
    x = sample_batch(model, args.batch)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels = the model's own answers, as bench_attacks.py
    ours, ours_robust = nnprobe_parts(model, x, y, args.eps, args.apgd_steps, args.queries)
    theirs, theirs_robust = torchattacks_parts(model, x, y, args.eps, args.apgd_steps, args.queries)
    print(f"# {datetime.date.today()} {args.model} batch {args.batch}, eps {args.eps * 255:.3g}/255, APGD/FAB "
          f"{args.apgd_steps} steps, Square {args.queries} queries, {platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    print("| component | nnprobe CPU s | torchattacks CPU s | ratio |\n| --- | ---: | ---: | ---: |")
    for name in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(name, 0.0), theirs.get(name, 0.0)
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f}x |")
    total_a, total_b = sum(ours.values()), sum(theirs.values())
    print(f"| all | {total_a:.1f} | {total_b:.1f} | **{total_b / total_a:.2f}x** |")
    print(f"robust: {ours_robust} (nnprobe) / {theirs_robust} (torchattacks) of {len(y)}")


if __name__ == "__main__":
    main()
