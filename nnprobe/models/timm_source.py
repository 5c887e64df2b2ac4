"""timm classifiers (`timm:NAME`), preprocessing from the model's `pretrained_cfg` (optional dependency
at runtime for users; nnprobe's default model already needs timm's architecture)."""
from __future__ import annotations

import math
import os
import socket

from nnprobe.errors import ModelLoadError, WeightsUnavailableError
from nnprobe.models.checkpoints import extract_state_dict, fit_state_dict, read_checkpoint
from nnprobe.results import Preprocessing


def preprocessing_from_cfg(net, name: str) -> Preprocessing:
    """timm's eval transform: resize to floor(crop / crop_pct), centre crop (timm.data.create_transform)."""
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=net)
    crop = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bicubic"
    return Preprocessing(resize_size=int(math.floor(crop / crop_pct)), crop_size=crop, interpolation=interpolation,
                         antialias=True, mean=tuple(float(v) for v in cfg["mean"]),
                         std=tuple(float(v) for v in cfg["std"]), source=f"timm pretrained_cfg of {name}")


def load_timm(name: str, *, weights: str | None, trust_pickle: bool, num_classes: int | None):
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
        state = extract_state_dict(read_checkpoint(weights, trust_pickle=trust_pickle), weights)
        net = fit_state_dict(lambda k: timm.create_model(name, pretrained=False, **({"num_classes": k} if k else {})),
                             state, weights, num_classes)
        source_weights = os.path.abspath(weights)
    elif weights and weights.lower() == "none":
        net = timm.create_model(name, pretrained=False, **extra)
        source_weights = None
    else:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            net = timm.create_model(name, pretrained=True, **extra)
        except Exception as exc:  # hub errors come in many types; all mean "weights not obtainable"
            raise WeightsUnavailableError(
                f"Could not get timm's pretrained weights for {name} ({type(exc).__name__}); offline, put them "
                "in the Hugging Face cache (~/.cache/huggingface/hub) or pass --weights PATH.") from exc
        finally:
            socket.setdefaulttimeout(previous)
        source_weights = getattr(net, "pretrained_cfg", {}).get("hf_hub_id") or "timm pretrained"
    return from_network(net, spec=spec, source="timm", weights=source_weights, architecture=name,
                        preprocessing=preprocessing_from_cfg(net, name))
