"""timm classifiers (`timm:NAME`), preprocessing from the model's `pretrained_cfg` (optional dependency
at runtime for users; nnprobe's default model already needs timm's architecture)."""
from __future__ import annotations

import math
import os
import socket

from nnprobe.errors import ModelLoadError, WeightsUnavailableError
from nnprobe.models.checkpoints import extract_state_dict, fit_state_dict, read_checkpoint
from nnprobe.results import Preprocessing


def preprocessing_from_cfg(net, name: str, pretrained_cfg: dict | None = None) -> Preprocessing:
    """timm's eval transform: resize to floor(crop / crop_pct), centre crop (timm.data.create_transform); from
    the model, or from a weight's `pretrained_cfg` alone (`nnprobe models`, nothing loaded)."""
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=net) if net is not None else \
        timm.data.resolve_data_config({}, pretrained_cfg=pretrained_cfg)
    crop = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bicubic"
    return Preprocessing(resize_size=int(math.floor(crop / crop_pct)), crop_size=crop, interpolation=interpolation,
                         antialias=True, mean=tuple(float(v) for v in cfg["mean"]),
                         std=tuple(float(v) for v in cfg["std"]), source=f"timm pretrained_cfg of {name}")


def load_timm(name: str, *, weights: str | None, trust_pickle: bool, num_classes: int | None,
              state: dict | None = None):
    """`state`: the checkpoint at `weights`, when the caller has read it already (it is not read twice)."""
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError("timm:NAME models need timm: pip install timm") from exc
    from nnprobe.models.classifier import from_network

    if not timm.is_model(name):
        raise ModelLoadError(f"{name!r} is not a timm model name; see timm.list_models().")
    spec = f"timm:{name}"
    extra = {"num_classes": num_classes} if num_classes else {}
    if weights and weights.lower() != "none":
        if state is None:
            state = extract_state_dict(read_checkpoint(weights, trust_pickle=trust_pickle), weights)
        net = fit_state_dict(lambda k: timm.create_model(name, pretrained=False, **({"num_classes": k} if k else {})),
                             state, weights, num_classes)
        source_weights = os.path.abspath(weights)
    elif weights and weights.lower() == "none":
        net = timm.create_model(name, pretrained=False, **extra)
        source_weights = None
    else:
        net = _pretrained(timm, name, extra)
        source_weights = getattr(net, "pretrained_cfg", {}).get("hf_hub_id") or "timm pretrained"
    k = getattr(net, "num_classes", None)
    return from_network(net, spec=spec, source="timm", weights=source_weights, architecture=name,
                        preprocessing=preprocessing_from_cfg(net, name), num_classes=k if k else None)


def _pretrained(timm, name: str, extra: dict):
    """timm's pretrained model: from the local cache without touching the network, else downloaded; offline,
    a WeightsUnavailableError at once (huggingface_hub otherwise retries DNS failures for ~50 s)."""
    try:
        from huggingface_hub import constants as hf
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        hf = None
    cache = getattr(hf, "HF_HUB_CACHE", "~/.cache/huggingface/hub")
    where = (f"offline, put them in the Hugging Face cache ({cache}), set TORCH_HOME for torch hub URLs, "
             "or pass --weights PATH")
    first_error: Exception | None = None
    if hf is not None:
        previous = hf.HF_HUB_OFFLINE
        hf.HF_HUB_OFFLINE = True  # is_offline_mode() reads this: cached files only, no request at all
        try:
            return timm.create_model(name, pretrained=True, **extra)
        except Exception as exc:  # not cached (LocalEntryNotFoundError, OfflineModeIsEnabled, ...)
            first_error = exc
        finally:
            hf.HF_HUB_OFFLINE = previous
        if previous or os.environ.get("NNPROBE_OFFLINE"):
            raise WeightsUnavailableError(f"timm's pretrained weights for {name} are not cached and offline "
                                          f"mode is set; {where}.") from first_error
        if not _reachable(hf.ENDPOINT):
            raise WeightsUnavailableError(f"Could not get timm's pretrained weights for {name}: {hf.ENDPOINT} "
                                          f"cannot be reached; {where}.") from first_error
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        return timm.create_model(name, pretrained=True, **extra)
    except Exception as exc:  # hub errors come in many types; all mean "weights not obtainable"
        raise WeightsUnavailableError(
            f"Could not get timm's pretrained weights for {name} ({type(exc).__name__}); {where}.") from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """One TCP connection to the hub's host: fails in milliseconds without DNS, in `timeout` s at worst."""
    from urllib.parse import urlparse

    parsed = urlparse(endpoint)
    if not parsed.hostname:
        return True  # let the real request report what is wrong
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
