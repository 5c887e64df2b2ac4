"""A copy of the embedded default model made worse on purpose, for trying `nnprobe compare` / `--baseline`.

Seeded Gaussian noise (10% of each conv kernel's std) on every convolution of EfficientNet-Lite0, saved as
safetensors; load it with `--arch timm:tf_efficientnet_lite0` (the default's architecture and preprocessing):

    python samples/make_worse_model.py worse.safetensors
    nnprobe eval samples/imagenet --model worse.safetensors --arch timm:tf_efficientnet_lite0 --baseline base.json
"""
from __future__ import annotations

import argparse

import torch
from safetensors.torch import save_file

from nnprobe import load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--scale", type=float, default=0.1, help="noise std as a fraction of each kernel's std")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    state = {}
    for name, tensor in load_classifier().net.state_dict().items():
        tensor = tensor.detach().clone().contiguous()
        if tensor.is_floating_point() and tensor.dim() == 4:  # conv kernels only: BatchNorm stays calibrated
            tensor += torch.randn(tensor.shape, generator=generator) * tensor.std() * args.scale
        state[name] = tensor
    save_file(state, args.out)
    print(f"wrote {args.out}: {len(state)} tensors, conv kernels perturbed by {args.scale:g} of their std")


if __name__ == "__main__":
    main()
