"""Which models can be loaded offline, and the model lists of a many-model eval: torch-free.

- The Hugging Face hub cache (timm's pretrained weights): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
  `~/.cache/huggingface/hub`, one folder `models--timm--ARCH.TAG` per weight, whose `snapshots/REV/` holds
  `model.safetensors` or `pytorch_model.bin` (huggingface_hub's layout; a blob that is only a dangling
  link is not there).
- The torch hub cache (torchvision's weights): `$TORCH_HOME/hub/checkpoints`, else
  `$XDG_CACHE_HOME/torch/hub/checkpoints`, else `~/.cache/torch/hub/checkpoints` (torch.hub.get_dir's rule),
  file names as the weights' URLs end.
- `timm:convnext_*` (a glob after `timm:`) expands to the cached timm weights whose name matches, never a
  download; `--models FILE` holds one spec per line, `#` starts a comment.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from nnprobe.errors import UsageError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
GLOB = set("*?[")
MAX_SPECS = 1000  # a file of specs is a list a person wrote, not a data set


def hf_cache() -> Path:
    """The Hugging Face hub cache folder, by huggingface_hub's environment rule."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def torch_checkpoints() -> Path:
    """torch hub's checkpoint folder (torch.hub.get_dir() + /checkpoints), without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def _has_weights(repo: Path) -> bool:
    snapshots = repo / "snapshots"
    try:
        revisions = sorted(snapshots.iterdir())
    except OSError:
        return False
    return any((rev / name).is_file() for rev in revisions for name in WEIGHT_FILES)


def cached_timm(cache: Path | None = None) -> list[str]:
    """timm weight names (`ARCH.TAG`) whose files are in the Hugging Face cache, sorted."""
    root = cache if cache is not None else hf_cache()
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    prefix = "models--timm--"
    return [e.name[len(prefix):] for e in entries if e.name.startswith(prefix) and _has_weights(e)]


def is_wildcard(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith("timm:") and bool(GLOB & set(spec))


def _matches(pattern: str, name: str) -> bool:
    """`convnext_*` matches `convnext_tiny.fb_in1k` (the architecture) and `*.fb_in1k` the full name."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.split(".", 1)[0], pattern)


def expand_wildcard(spec: str, cache: Path | None = None) -> list[str]:
    """`timm:PATTERN` -> the cached timm weights it matches, as `timm:ARCH.TAG` specs; none is a UsageError."""
    pattern = spec[len("timm:"):]
    found = [f"timm:{name}" for name in cached_timm(cache) if _matches(pattern, name)]
    if not found:
        raise UsageError(f"No timm weights matching {pattern!r} are in the local cache ({cache or hf_cache()}); a "
                         "wildcard only takes what is cached (nnprobe models lists it), it never downloads.")
    return found


def read_spec_file(path: str | os.PathLike) -> list[str]:
    """One model spec per line of a text file; blank lines and `#` comments (whole-line or trailing) skipped."""
    from nnprobe.io import INPUT_CAPS, read_input

    data = read_input(path, "Model list", INPUT_CAPS["model-list"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"Model list {os.fspath(path)} is not UTF-8 text (one model spec per line).") from None
    specs = []
    for line in text.splitlines():
        spec = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if spec:
            specs.append(spec)
    if not specs:
        raise UsageError(f"Model list {os.fspath(path)} names no model (one spec per line, # for comments).")
    return specs


def model_list(given: tuple, spec_file: str | os.PathLike | None = None, cache: Path | None = None) -> list:
    """The models of one run in order: each --model (a timm wildcard expanded), then the file's; a spec named
    twice is run once. Objects from the Python API (a Classifier, a module) pass through."""
    specs = list(given) + (read_spec_file(spec_file) if spec_file is not None else [])
    out: list = []
    for spec in specs:
        for one in (expand_wildcard(spec, cache) if is_wildcard(spec) else [spec]):
            if isinstance(one, str) and one in out:
                continue
            out.append(one)
    if len(out) > MAX_SPECS:
        raise UsageError(f"{len(out)} models in one run; at most {MAX_SPECS}.")
    return out
