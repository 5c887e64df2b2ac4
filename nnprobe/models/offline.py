"""`nnprobe models [PATTERN]`: every model that loads without a download, with the preprocessing each would
use, read from the weights' own metadata (torchvision `Weights.transforms()`, timm `pretrained_cfg`) without
loading any weights: the embedded default, torchvision weights in the torch hub cache, timm weights in the
Hugging Face cache (models/catalog.py says where), and local model files PATTERN matches. PATTERN filters the
named models too (shell-style: 'resnet*', 'timm:convnext_*')."""
from __future__ import annotations

import fnmatch
import glob
import os

from nnprobe.model_runs import CatalogEntry, ModelCatalog
from nnprobe.models import catalog
from nnprobe.results import Preprocessing


def _entry(spec: str, source: str, weights: str, where: str, pre: Preprocessing, origin: str) -> CatalogEntry:
    return CatalogEntry(spec, source, weights, where, pre.resize_size, pre.crop_size, pre.interpolation,
                        tuple(pre.mean), tuple(pre.std), origin)


def _default() -> list[CatalogEntry]:
    from nnprobe.models.default import PREPROCESSING, checkpoint_path

    return [_entry("default", "embedded", "efficientnet-lite0 (bundled)", checkpoint_path(), PREPROCESSING,
                   "timm pretrained_cfg of tf_efficientnet_lite0")]


def _torchvision(folder) -> list[CatalogEntry]:
    """Each torchvision weights enum member whose file (its URL's name) is in the torch hub cache."""
    try:
        present = set(os.listdir(folder))
    except OSError:
        return []
    from torchvision import models

    from nnprobe.models.torchvision_source import preprocessing_of

    out = []
    for name in models.list_models(module=models):
        for weights in models.get_model_weights(name):
            file = os.path.basename(weights.url)
            if file in present:
                pre = preprocessing_of(weights)
                out.append(_entry(name, "torchvision", weights.name, os.path.join(folder, file), pre,
                                  "Weights.transforms()"))
    return out


def _timm(cache) -> list[CatalogEntry]:
    names = catalog.cached_timm(cache)
    if not names:
        return []
    import timm.models

    from nnprobe.models.timm_source import preprocessing_from_cfg

    out = []
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:  # a cached repo timm does not know (another timm version's name)
            continue
        pre = preprocessing_from_cfg(None, name, cfg.to_dict())
        out.append(_entry(f"timm:{name}", "timm", f"timm/{name}", os.fspath(cache / f"models--timm--{name}"), pre,
                          "pretrained_cfg"))
    return out


def _files(pattern: str) -> list[CatalogEntry]:
    """Local model files PATTERN matches (by suffix; never opened: the preprocessing is the flags' or the
    ImageNet default, which an export may not carry)."""
    from nnprobe.models import FILE_SUFFIXES, IMAGENET_PREPROCESSING

    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p) and p.lower().endswith(
        FILE_SUFFIXES))
    return [_entry(p, "file", os.path.basename(p), os.path.abspath(p), IMAGENET_PREPROCESSING,
                   "--resize/--crop/--interpolation/--mean/--std, else the ImageNet default") for p in paths]


def list_offline(pattern: str | None = None) -> ModelCatalog:
    hf, tv = catalog.hf_cache(), catalog.torch_checkpoints()
    named = _default() + _torchvision(tv) + _timm(hf)
    if pattern:
        named = [e for e in named if fnmatch.fnmatchcase(e.spec, pattern) or fnmatch.fnmatchcase(e.weights, pattern)
                 or fnmatch.fnmatchcase(f"{e.spec}.{e.weights}", pattern)]
    files = _files(pattern) if pattern else []
    return ModelCatalog(pattern, tuple(named + files), {"torch hub": os.fspath(tv), "Hugging Face hub": os.fspath(hf)})
