"""Golden outputs of the documented offline commands, to prove a refactoring changes no number.

    python tests/golden_commands/capture.py capture --tree /work/main OUT_OLD
    python tests/golden_commands/capture.py capture --tree .          OUT_NEW
    python tests/golden_commands/capture.py compare OUT_OLD OUT_NEW

Each command of README.md and docs/*.md that runs offline on the bundled samples is run in a scratch copy
of `samples/` with each report format (table, json, junit, markdown via $GITHUB_STEP_SUMMARY, github); the
exit code, stdout, stderr and every file written are kept. Timings, throughputs, dates and the scratch
folder's path are masked, nothing else. By hand (a few minutes on 2 cores), not part of the test suite.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# (name, arguments after `nnprobe`); later commands may read what earlier ones wrote (base.json ...).
COMMANDS: list[tuple[str, str]] = [
    ("eval", "eval samples/imagenet"),
    ("eval-gate", "eval samples/imagenet --min-top1 0.8"),
    ("eval-base", "eval samples/imagenet --save-predictions base.preds"),
    ("eval-cand", "eval samples/imagenet --mean 0.45,0.45,0.45 --save-predictions cand.preds"),
    ("eval-baseline", "eval samples/imagenet --mean 0.45,0.45,0.45 --baseline base.json --max-drop-top1 0.3pt"),
    ("eval-shard1", "eval samples/imagenet --shard 1/3 --save-predictions part1.preds"),
    ("eval-shard2", "eval samples/imagenet --shard 2/3 --save-predictions part2.preds"),
    ("eval-shard3", "eval samples/imagenet --shard 3/3 --save-predictions part3.preds"),
    ("merge", "merge part1.json part2.json part3.json --min-top1 0.7 --save-predictions all.preds"),
    ("merge-gap", "merge part1.json part3.json"),
    ("compare", "compare base.json cand.json --max-drop-top1 0.3pt --alpha 0.01"),
    ("fool", "fool samples/imagenet/n02123045/cat.jpg --out fooled-cat"),
    ("fool-target", "fool samples/imagenet/n07920052/coffee.jpg --attack pgd --eps 4/255 --steps 20 "
                    "--target toaster --out fooled"),
    ("fool-min-eps", "fool samples/imagenet/n04485082/camera.png --min-eps --steps 4 --target toaster --out min-eps"),
    ("fool-list", "fool samples/imagenet/n02123045/cat.jpg samples/imagenet/n03773504/rocket.jpg --attack fgsm "
                  "--eps 1/255,2/255,4/255 --out fooled-list"),
    ("fool-bad-eps", "fool samples/imagenet/n02123045/cat.jpg --eps 2/0"),
    ("fool-bad-target", "fool samples/imagenet/n02123045/cat.jpg --target tosater"),
    ("robust-pgd", "robust samples/imagenet --attack pgd --eps 0,1/255,2/255 --steps 10 --plot robust.png "
                   "--min-robust-top1 2/255=0.30"),
    ("robust-aa", "robust samples/imagenet --attack autoattack --eps 0,1/255,4/255 --limit 2"),
    ("robust-corr", "robust samples/imagenet --corruptions noise,blur --severity 1-5 --plot c.png "
                    "--min-corruption-top1 0.4"),
    ("diagnose-healthy", "diagnose samples/runs/healthy"),
    ("diagnose-overfitting", "diagnose samples/runs/overfitting"),
    ("diagnose-hf", "diagnose samples/runs/hf-masked-nan --fail-on warning"),
    ("diagnose-all", "diagnose samples/runs"),
    ("diagnose-baseline", "diagnose samples/runs/overfitting --baseline samples/runs/healthy"),
    ("compare-runs", "compare samples/runs/healthy samples/runs/overfitting"),
]
JSON_OUT = {"eval-base": "base.json", "eval-cand": "cand.json", "eval-shard1": "part1.json",
            "eval-shard2": "part2.json", "eval-shard3": "part3.json"}
FORMATS = ("table", "json", "junit", "github")

_MASKS = [
    (re.compile(r'"(seconds|duration[a-z_]*|elapsed[a-z_]*|images_per_second|time[a-z_]*|started|finished|'
                r'date|created)": [^,\n]+'), r'"\1": <masked>'),
    (re.compile(r'(time|timestamp)="[^"]*"'), r'\1="<masked>"'),
    (re.compile(r"[0-9.]+ ?(s|ms)(?![A-Za-z])(, [0-9.]+ images/s)?"), "<time>"),
    (re.compile(r"[0-9.]+ images/s"), "<rate>"),
    (re.compile(r"\b[0-9.]+/s\b"), "<rate>"),
    (re.compile(r"ETA [0-9:hms ]+"), "ETA <time>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<date>"),
    (re.compile(r"\d\d:\d\d:\d\d"), "<clock>"),
    # the progress line CI logs get at the start of a long loop appears or not depending on how long it took
    (re.compile(r"^[a-z]+: 0/\d+ \(0\.0%\)[^\n]*\n", re.M), ""),
]


def mask(text: str, scratch: str, tree: str) -> str:
    text = text.replace(os.path.realpath(scratch), "<scratch>").replace(scratch, "<scratch>")
    text = text.replace(os.path.realpath(tree), "<tree>")
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _snapshot(folder: str) -> dict[str, float]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = os.stat(path).st_mtime_ns
    return out


def capture(tree: str, out: str, only: list[str]) -> None:
    tree = os.path.abspath(tree)
    os.makedirs(out, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="nnprobe-golden-")
    shutil.copytree(os.path.join(tree, "samples"), os.path.join(scratch, "samples"))
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1", COLUMNS="120", NO_COLOR="1", TERM="dumb")
    env.pop("GITHUB_STEP_SUMMARY", None)
    for name, args in COMMANDS:
        if only and name not in only:
            continue
        for fmt in FORMATS:
            before = _snapshot(scratch)
            argv = [sys.executable, "-m", "nnprobe", *shlex.split(args)]
            run_env = dict(env)
            if fmt == "table":
                summary = os.path.join(scratch, "summary.md")
                open(summary, "w").close()
                run_env["GITHUB_STEP_SUMMARY"] = summary
            else:
                argv += ["--format", fmt]
            if fmt == "json" and name in JSON_OUT:
                argv += ["-o", JSON_OUT[name]]
            proc = subprocess.run(argv, cwd=scratch, env=run_env, capture_output=True, text=True, timeout=900)
            record = [f"$ nnprobe {args} ({fmt})", f"exit {proc.returncode}", "--- stdout", proc.stdout,
                      "--- stderr", proc.stderr]
            after = _snapshot(scratch)
            for path in sorted(after):
                if after[path] != before.get(path) and not path.endswith(".png"):
                    with open(os.path.join(scratch, path), "rb") as handle:
                        data = handle.read()
                    shown = data.decode("utf-8", "replace") if not path.endswith(".gz") else f"<{len(data)} bytes>"
                    if path.endswith((".preds", ".gz")):
                        import hashlib
                        shown = hashlib.sha256(data).hexdigest()
                    record += [f"--- file {path}", shown]
                elif after[path] != before.get(path):
                    record += [f"--- file {path}", "<png written>"]
            with open(os.path.join(out, f"{name}.{fmt}.txt"), "w") as handle:
                handle.write(mask("\n".join(record), scratch, tree))
            print(f"{name} {fmt}: exit {proc.returncode}", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)


def _masked(path: str) -> list[str]:
    """A capture's lines, masked again (captures taken before a mask was added compare too)."""
    if not os.path.exists(path):
        return []
    text = open(path).read()
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text.splitlines()


def compare(old: str, new: str) -> int:
    names = sorted(set(os.listdir(old)) & set(os.listdir(new)))
    bad = 0
    for name in names:
        a, b = _masked(os.path.join(old, name)), _masked(os.path.join(new, name))
        if a != b:
            bad += 1
            sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(a, b, f"old/{name}", f"new/{name}",
                                                                                n=1))
    alone = len(set(os.listdir(old)) ^ set(os.listdir(new)))
    print(f"{len(names)} outputs, {bad} differ" + (f" ({alone} captured on one side only)" if alone else ""),
          file=sys.stderr)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--tree", default=".")
    c.add_argument("--only", nargs="*", default=[])
    c.add_argument("out")
    d = sub.add_parser("compare")
    d.add_argument("old")
    d.add_argument("new")
    args = parser.parse_args()
    if args.verb == "capture":
        capture(args.tree, args.out, args.only)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
