"""Shared test helpers: tiny classifiers, generated image folders, CLI runners (offline, CPU)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import tiny_models  # noqa: E402

PLAIN = dict(resize=40, crop=32, interpolation="bilinear", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def solid_image(path: Path, color, size=(48, 40), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = tuple(int(round(c * 255)) for c in color)
    Image.new("RGB", size, rgb).save(path, format=fmt)
    return path


def noise_image(path: Path, seed: int, size) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def make_wnid_folders(root: Path, classes_and_counts: dict[int, int], *, wrong: dict[int, int] | None = None,
                      fmt="png") -> Path:
    """One folder per ImageNet wnid; `wrong[k] = n` adds n images of class k painted another colour."""
    from nnprobe.models.imagenet import imagenet_wnids

    wn = imagenet_wnids()
    for k, count in classes_and_counts.items():
        for i in range(count):
            solid_image(root / wn[k] / f"img{i:03d}.{fmt}", tiny_models.class_color(k), size=(48 + i, 40))
        for i in range((wrong or {}).get(k, 0)):
            solid_image(root / wn[k] / f"wrong{i:03d}.{fmt}", tiny_models.class_color((k + 500) % 1000))
    return root


def factory_spec(name: str) -> str:
    return f"{TESTS / 'tiny_models.py'}:{name}"


PLAIN_FLAGS = ["--resize", "40", "--crop", "32", "--interpolation", "bilinear", "--mean", "0,0,0", "--std", "1,1,1"]


def run_cli(*args: str, env: dict | None = None, cwd=None):
    """Run `python -m nnprobe ...` in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    full_env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "nnprobe", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


class Invocation:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def wait_in_main(proc, seconds: float = 120.0) -> None:
    """Until `python -m nnprobe` (a Popen) runs nnprobe's main: its SIGTERM handler is installed (the SigCgt
    mask in /proc/PID/status), so a signal sent now reaches nnprobe's own handling, not the interpreter's
    start-up (a fixed sleep raced with start-up on a loaded machine)."""
    import signal
    import time

    bit, deadline = 1 << (signal.SIGTERM - 1), time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/status") as status:
            caught = next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))
        if caught & bit:
            return
        time.sleep(0.02)
    raise AssertionError(f"nnprobe (pid {proc.pid}) did not reach its main within {seconds} s: {proc.poll()}")
