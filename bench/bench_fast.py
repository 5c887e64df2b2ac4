"""`--attack fast` against AutoAttack-standard: robust accuracy and cost in pass equivalents (a forward 1, a
backward 2 per image; hardware-free, `nnprobe/attacks/cost.py`), with the seconds of this run beside them.

    PYTHONPATH=. python bench/bench_fast.py                      # the tests' tiny nets, 48 images
    PYTHONPATH=. python bench/bench_fast.py --models default --eps 0.1,1   # EfficientNet-Lite0, bundled photos

The tests' models: `tiny` (trained normally) and `robust-tiny` (FGSM-RS adversarial training at 8/255), both
from tests/attacks/tinymodels.py; `default` runs on the bundled photos (bench_attacks.sample_batch).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(HERE), "tests", "attacks"), HERE]


def load(name: str, n: int):
    import tinymodels

    if name == "default":
        import bench_attacks

        model = bench_attacks.make_model("default", torch.device("cpu"))
        x = bench_attacks.sample_batch(model, n)
        with torch.no_grad():
            y = model(x).argmax(1)  # the model's own answers: every image starts right
        return model, x, y
    model = tinymodels.tiny_classifier() if name == "tiny" else tinymodels.robust_tiny_classifier()
    x, y = tinymodels.make_data(n, seed=7)
    return model, x, y


def main() -> None:
    from nnprobe.attacks.robustness import robust

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,robust-tiny")
    parser.add_argument("--eps", default="4,8,16", help="k/255, comma list")
    parser.add_argument("--n", type=int, default=48)
    args = parser.parse_args()
    print(f"# {datetime.date.today()} on {platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {args.n} images")
    print("| model | eps | robust: fast / autoattack | cost per image: fast / autoattack | cost ratio | seconds |")
    print("| --- | --- | --- | --- | ---: | --- |")
    for name in args.models.split(","):
        model, x, y = load(name, args.n)
        for eps in args.eps.split(","):
            points, seconds = {}, {}
            for attack in ("fast", "autoattack"):
                start = time.perf_counter()
                points[attack] = robust(model, [(x, y)], attack=attack, eps=(float(eps) / 255,), device="cpu",
                                        batch_size=len(y)).points[0]
                seconds[attack] = time.perf_counter() - start
            f, a = points["fast"], points["autoattack"]
            print(f"| {name} | {eps}/255 | {f.correct_top1}/{f.total} / {a.correct_top1}/{a.total} | "
                  f"{f.cost_per_image:.1f} / {a.cost_per_image:.1f} | {f.cost / a.cost:.3f} | "
                  f"{seconds['fast']:.1f} / {seconds['autoattack']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
