"""One resize/crop definition (nnprobe/data/transforms.py) for the workers, the device decoder and the
attack path, with exact parity to the calls each path made before it existed.

References are independent of nnprobe's code: the PIL path against torchvision's v1 `transforms.Resize`
+ `CenterCrop` (what a torchvision reference loop runs), uint8 equal; the tensor paths against direct
`transforms.v2.functional` calls with the same arguments, bit-equal (`torch.equal`, tolerance zero).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F2
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from nnprobe.data.decode import decode_rgb
from nnprobe.data.device_decode import decode_resize_crop
from nnprobe.data.transforms import resize_crop
from nnprobe.models.preprocessing import pil_resize_crop, tensor_resize_crop
from nnprobe.results import Preprocessing

from data.image_makers import gray16_png

# antialias=False on a PIL image: PIL always antialiases and torchvision says so (as before this module)
pytestmark = pytest.mark.filterwarnings("ignore:Anti-alias option is always applied:UserWarning",
                                        "ignore:The image decoding:DeprecationWarning")

PRES = [Preprocessing(resize_size=r, crop_size=c, interpolation=i, antialias=a)
        for r, c in [(64, 56), (None, 32), (40, None), (31, 31)]
        for i in ("bilinear", "bicubic", "nearest") for a in (True, False)]


def _images(tmp_path):
    """Odd sizes, 16-bit grey, 8-bit grey, RGBA, a 5x3 image and extreme aspect ratios, as decoded."""
    rng = np.random.default_rng(0)
    made = {"odd.png": Image.fromarray(rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)),
            "grey.png": Image.fromarray(rng.integers(0, 256, (45, 61), dtype=np.uint8), "L"),
            "rgba.png": Image.fromarray(rng.integers(0, 256, (40, 57, 4), dtype=np.uint8), "RGBA"),
            "tiny.png": Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)),
            "wide.png": Image.fromarray(rng.integers(0, 256, (7, 900, 3), dtype=np.uint8)),
            "tall.png": Image.fromarray(rng.integers(0, 256, (700, 9, 3), dtype=np.uint8))}
    for name, image in made.items():
        image.save(tmp_path / name)
    paths = sorted(tmp_path / name for name in made) + [gray16_png(tmp_path / "g16.png", size=(37, 23))]
    return [decode_rgb(str(p))[0] for p in paths]


def _reference_pil(image, pre):
    steps = []
    if pre.resize_size is not None:
        steps.append(T.Resize(pre.resize_size, interpolation=InterpolationMode(pre.interpolation)))
    if pre.crop_size is not None:
        steps.append(T.CenterCrop(pre.crop_size))
    return T.Compose(steps)(image)


def _reference_tensor(x, pre):
    if pre.resize_size is not None:
        x = F2.resize(x, [pre.resize_size], interpolation=InterpolationMode(pre.interpolation),
                      antialias=pre.antialias)
        if pre.interpolation == "bicubic" and x.is_floating_point():
            x = x.clamp(0, 1)
    if pre.crop_size is not None:
        x = F2.center_crop(x, [pre.crop_size])
    return x


def _as_tensor(image):
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("pre", PRES, ids=lambda p: f"{p.resize_size}-{p.crop_size}-{p.interpolation}-{p.antialias}")
def test_every_path_keeps_its_numbers(tmp_path, pre):
    for image in _images(tmp_path):
        ours = np.asarray(pil_resize_crop(image, pre))
        assert ours.dtype == np.uint8
        assert np.array_equal(ours, np.asarray(_reference_pil(image, pre))), image.size
        pixels = _as_tensor(image)
        assert torch.equal(resize_crop(pre)(pixels), _reference_tensor(pixels, pre)), image.size  # uint8
        x = (pixels.float() / 255)[None].requires_grad_(True)
        out = tensor_resize_crop(x, pre)
        assert torch.equal(out, _reference_tensor(x, pre)), image.size
        assert out.shape[-2:] == ours.shape[:2]  # one definition: the same size on every path
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert grad.abs().sum() > 0


def test_device_decoder_uses_the_same_definition(tmp_path):
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (83, 129, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    from torchvision.io import decode_jpeg

    decoded = decode_jpeg(data)
    for pre in PRES:
        batch, reasons = decode_resize_crop([data], torch.device("cpu"), pre)
        assert reasons == [None] and batch.dtype == torch.uint8
        assert torch.equal(batch[0], _reference_tensor(decoded, pre)), pre


def test_the_definition_is_built_once_per_preprocessing():
    pre = Preprocessing(resize_size=48, crop_size=40, interpolation="bicubic")
    assert resize_crop(pre) is resize_crop(Preprocessing(resize_size=48, crop_size=40, interpolation="bicubic"))
    x = torch.full((1, 3, 50, 60), 0.5)
    x[..., ::2, ::2] = 1.0  # a checkerboard that bicubic overshoots above 1
    assert resize_crop(pre)(x).max() <= 1 and resize_crop(pre)(x).min() >= 0
    assert resize_crop(Preprocessing(resize_size=None, crop_size=None))(x) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_the_definition_on_cuda_tensors_is_the_cpu_one(tmp_path, interpolation):
    """The device decoder resizes on the GPU, and attacks run there: CUDA's kernels may round differently
    from the CPU's (not measured on a GPU yet: within 1 grey level for uint8, 1e-4 for float)."""
    pre = Preprocessing(resize_size=64, crop_size=56, interpolation=interpolation, antialias=True)
    for image in _images(tmp_path):
        pixels = _as_tensor(image)
        cpu, gpu = resize_crop(pre)(pixels), resize_crop(pre)(pixels.cuda()).cpu()
        assert (cpu.int() - gpu.int()).abs().max() <= 1, image.size
        x = (pixels.float() / 255)[None]
        y = tensor_resize_crop(x.cuda().requires_grad_(True), pre)
        assert (y.detach().cpu() - tensor_resize_crop(x, pre)).abs().max() < 1e-4, image.size
