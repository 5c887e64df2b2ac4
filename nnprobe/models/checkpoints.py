"""Reading checkpoint files safely, and fitting a state dict onto an architecture.

`torch.load(weights_only=True)` never runs code; a file that needs full unpickling is refused with
`UnsafeCheckpointError` unless the caller passed `trust_pickle=True` (the `--trust-pickle` flag).
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Callable

import torch
from torch import nn

from nnprobe.errors import InputError, ModelLoadError, UnsafeCheckpointError

# Where trainers nest the weights inside a checkpoint dict (Lightning, timm, common scripts).
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "net")


def is_torchscript(data: bytes) -> bool:
    """TorchScript archives are zips with a `code/` folder and `constants.pkl`."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _open_model(path: str, what: str = "Model file"):
    """`path` opened for reading through the one input guard (nnprobe.io.open_regular): a folder, a FIFO
    (which would block the open), /dev/zero (which never ends) or a socket is refused without reading a byte."""
    from nnprobe.io import INPUT_CAPS, NotRegularFile, open_regular

    try:
        return open_regular(path, INPUT_CAPS["model"])
    except NotRegularFile as exc:
        kind = exc.kind if exc.kind == "a folder" or "bytes" in exc.kind else \
            "not a regular file (a device, pipe or socket)"
        raise InputError(f"{what} {path} is {kind}; give the path of a model file.") from None
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise InputError(f"{what} {path} does not exist.") from exc
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read ({exc.strerror}).") from exc


def read_regular(path: str, what: str = "Model file") -> bytes:
    """The whole file, read once (the loaders then parse exactly these bytes)."""
    with _open_model(path, what) as stream:
        try:
            return stream.read()
        except OSError as exc:
            raise InputError(f"{what} {path} cannot be read ({exc.strerror}).") from exc


def read_checkpoint(path: str, *, trust_pickle: bool = False, data: bytes | None = None):
    """The object stored in a .pth/.ckpt/.pt file; safetensors files give their tensor dict. `data`: the
    file's bytes when the caller has read them already."""
    import io

    if data is None:
        data = read_regular(path, "Checkpoint")
    if path.lower().endswith(".safetensors"):
        return _read_safetensors(data, path)
    try:
        with warnings.catch_warnings(), _safe_globals():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4": noise when refused
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch reports random bytes and a refused global alike ("Weights only load failed"): only a file
        # that parses as a pickle is "unsafe"; anything else is simply not a checkpoint.
        if not looks_like_pickle_bytes(data):
            raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint (neither a torch.save zip "
                                 "archive nor a pickle).") from exc
        if not trust_pickle:
            found = _refused_global(exc)
            raise UnsafeCheckpointError(
                f"{path} holds pickled Python objects beyond tensors{found}, and unpickling can run arbitrary "
                "code; re-save it as a state dict or safetensors, or pass --trust-pickle if you trust "
                "the file.") from exc
    except Exception as exc:  # RuntimeError, EOFError, BadZipFile, struct.error ...: not a checkpoint
        # the unpickler's own internals (KeyError 101, "pop from empty list") say nothing to a user
        why = ("empty or cut short" if isinstance(exc, EOFError) or not data else
               "neither a torch.save zip archive nor a pickle" if isinstance(exc, (KeyError, IndexError, ValueError))
               else _first_line(exc))
        raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint ({why}).") from exc
    try:  # only reached with trust_pickle=True: the user opted in to running the file's code
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be unpickled ({_first_line(exc)}).") from exc


def _read_safetensors(data: bytes, path: str):
    """safetensors parses a JSON header and raw tensor bytes: no code, whatever the file holds."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({_first_line(exc)}).") from exc


def _refused_global(exc: BaseException) -> str:
    """' (e.g. argparse.Action)': the first class torch's weights-only unpickler refused, when it says."""
    import re

    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f" (e.g. {match.group(1)})" if match else ""


def _safe_globals():
    """Plain-data classes allowed besides tensors: torchvision's reference scripts (and many others) save
    their argparse.Namespace next to the weights; unpickling one only fills its __dict__ with values that
    themselves pass the weights-only unpickler."""
    import argparse
    import contextlib

    safe = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    return safe([argparse.Namespace]) if safe is not None else contextlib.nullcontext()


def looks_like_pickle(path: str) -> bool:
    """Whether the file (or the `data.pkl` of a torch.save zip) parses as a pickle opcode stream."""
    try:
        return looks_like_pickle_bytes(read_regular(path))
    except InputError:
        return False


def looks_like_pickle_bytes(data: bytes) -> bool:
    """`pickletools.genops` only reads opcodes, it never imports or calls anything."""
    import io
    import pickletools

    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return False
                with archive.open(names[0]) as stream:
                    return _parses(pickletools, stream)
        return _parses(pickletools, io.BytesIO(data))
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError):
        return False


def _parses(pickletools, stream) -> bool:
    try:
        last = None
        for last, _arg, _pos in pickletools.genops(stream):
            pass
        return last is not None and last.name == "STOP"
    except Exception:  # genops raises ValueError and friends on bytes that are not pickle opcodes
        return False


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
    target = _shapes(build, num_classes)
    state = _strip_prefix(state, set(target))
    if num_classes is None:
        mismatched = [k for k in target if k in state and state[k].shape != target[k].shape]
        if mismatched and all(state[k].shape[1:] == target[k].shape[1:] for k in mismatched):
            heads = {int(state[k].shape[0]) for k in mismatched}
            if len(heads) == 1:
                num_classes = heads.pop()
                target = _shapes(build, num_classes)
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
    net = build(num_classes)  # built for real once, with the head the checkpoint needs
    net.load_state_dict(state)
    return net


def _shapes(build: Callable[[int | None], nn.Module], num_classes: int | None) -> dict[str, torch.Tensor]:
    """Parameter names and shapes of the architecture, built on the meta device (no memory, no random init:
    a real resnet50 costs seconds to initialise)."""
    try:
        with torch.device("meta"):
            net = build(num_classes)
    except Exception:  # an architecture that cannot be built on meta: build it for real
        net = build(num_classes)
    return net.state_dict()


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
