"""Reading checkpoint files safely, and fitting a state dict onto an architecture.

`torch.load(weights_only=True)` never runs code; a file that needs full unpickling is refused with
`UnsafeCheckpointError` unless the caller passed `trust_pickle=True` (the `--trust-pickle` flag).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable

import torch
from torch import nn

from nnprobe.errors import InputError, ModelLoadError, UnsafeCheckpointError

# Where trainers nest the weights inside a checkpoint dict (Lightning, timm, common scripts).
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "net")


def is_torchscript(path: str) -> bool:
    """TorchScript archives are zips with a `code/` folder and `constants.pkl`."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_checkpoint(path: str, *, trust_pickle: bool = False):
    """The object stored in a .pth/.ckpt/.pt file; safetensors files give their tensor dict."""
    if not os.path.isfile(path):
        raise InputError(f"Checkpoint {path} does not exist or is not a file.")
    if path.lower().endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}).") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f"{path} holds pickled Python objects beyond tensors, and unpickling can run arbitrary "
                "code; re-save it as a state dict or safetensors, or pass --trust-pickle if you trust "
                "the file.") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}).") from exc
    try:  # only reached with trust_pickle=True: the user opted in to running the file's code
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be unpickled ({_first_line(exc)}).") from exc


def extract_state_dict(obj, path: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: plain, or nested under state_dict/model/... (Lightning)."""
    if isinstance(obj, dict):
        for key in NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
    raise ModelLoadError(f"{path} does not contain a state dict (a mapping of parameter names to tensors).")


def fit_state_dict(build: Callable[[int | None], nn.Module], state: dict[str, torch.Tensor], path: str,
                   num_classes: int | None) -> nn.Module:
    """Build the architecture and load `state` strictly, stripping wrapper prefixes (`module.`, `model.`)
    and adopting the checkpoint's class count when only the head differs."""
    net = build(num_classes)
    target = net.state_dict()
    state = _strip_prefix(state, set(target))
    if num_classes is None:
        mismatched = [k for k in target if k in state and state[k].shape != target[k].shape]
        if mismatched and all(state[k].shape[1:] == target[k].shape[1:] for k in mismatched):
            heads = {int(state[k].shape[0]) for k in mismatched}
            if len(heads) == 1:
                net = build(heads.pop())
                target = net.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = sorted(k for k in set(target) & set(state) if state[k].shape != target[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (e.g. {wrong[0]})")
        raise ModelLoadError(f"{path} does not fit the chosen architecture: {', '.join(parts)} keys; "
                             "check --arch and --num-classes.")
    net.load_state_dict(state)
    return net


def _strip_prefix(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    if set(state) & wanted:
        return state
    for prefix in ("module.", "model.", "net.", "model.module.", "_orig_mod.", "module.model."):
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if stripped and set(stripped) & wanted:
            return stripped
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
