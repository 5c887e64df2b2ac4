"""ImageNet-P's geometric sequences (translate, rotate, tilt, scale, shear) against a plain-loop port of
make_imagenet_p.py: the whole resized image transformed by PIL's Image.transform with torchvision 0.2's
affine matrix (the version the generation code called), or by cv2.warpPerspective for tilt, then
torchvision's CenterCrop. The port's matrices are checked against today's torchvision where the two agree
(no shear) and against their defining formulas; the canvas the data path hands the sequences against the
model's own crop; the sweep's flip counts on a data folder against the port's frames through the same model."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import tinymodels
from corruption_reference import SAMPLES
from nnprobe.data.context import context_canvas, crop_offset
from nnprobe.data.transforms import resize_crop
from nnprobe.imagenet_c import geometric
from nnprobe.imagenet_c.geometric import GEOMETRIC, affine_arguments, frame_count, inverse_affine, tilt_matrix
from nnprobe.results import Preprocessing

PRE = Preprocessing()  # resize 256, crop 224, bilinear


def reference_frames(resized, name: str, frames, crop: int = 224) -> list[np.ndarray]:
    """make_imagenet_p.py's frames of one resized PIL image, as uint8 HWC crops (the port)."""
    import cv2
    import torchvision.transforms as trn
    from PIL import Image

    out = []
    for i in frames:
        if name == "tilt":
            x = np.array(resized)
            h, w = x.shape[:2]
            moved = Image.fromarray(cv2.warpPerspective(x, tilt_matrix(w, h, i), (w, h)))
        else:
            w, h = resized.size
            matrix = inverse_affine((w * 0.5 + 0.5, h * 0.5 + 0.5), *affine_arguments(name, i))
            moved = resized.transform(resized.size, Image.AFFINE, matrix,
                                      Image.NEAREST if name == "translate" else Image.BILINEAR)
        out.append(np.array(trn.CenterCrop(crop)(moved)))
    return out


def images():
    """A landscape and a square sample photo, and a portrait one of odd width (the crop rounds unevenly)."""
    from PIL import Image

    paths = sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    square = [p for p in paths if p.suffix == ".png"][0]
    chosen = [Image.open(paths[0]).convert("RGB"), Image.open(square).convert("RGB")]
    chosen.append(chosen[0].rotate(90, expand=True).resize((301, 377)))
    return chosen


def ours(image, name: str, frames, pre: Preprocessing = PRE) -> list[np.ndarray]:
    size = geometric.canvas_size([name], pre.crop_size, pre.resize_size)
    canvas, box = context_canvas(image, pre, size)
    c, b = torch.from_numpy(canvas).permute(2, 0, 1)[None], torch.tensor([box])
    return [torch.round(geometric.geometric_frame(c, b, pre.crop_size, name, i)[0] * 255).permute(1, 2, 0)
            .numpy().astype(np.uint8) for i in frames]


def test_the_canvas_centre_is_the_models_crop_and_the_box_places_the_resized_image():
    for image in images() + [images()[0].resize((200, 150))]:  # the last smaller than the crop: padded
        resized = np.array(resize_crop(dataclasses.replace(PRE, crop_size=None))(image))
        for size in (224, 300, 564):
            canvas, (top, left, h, w) = context_canvas(image, PRE, size)
            m = crop_offset(size, 224)
            assert np.array_equal(canvas[m:m + 224, m:m + 224], np.array(resize_crop(PRE)(image)))
            assert (h, w) == resized.shape[:2]
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, size), min(left + w, size)
            assert np.array_equal(canvas[y0:y1, x0:x1], resized[y0 - top:y1 - top, x0 - left:x1 - left])
            outside = np.ones((size, size), bool)
            outside[y0:y1, x0:x1] = False
            assert not canvas[outside].any()  # black beyond the image


def test_the_affine_port_is_torchvision_02s_matrix():
    """Without shear today's torchvision computes the same inverse for a given centre; with shear the port
    inverts the documented RSS = [[cos a, -sin(a + s)], [sin a, cos(a + s)]] * scale."""
    from torchvision.transforms.functional import _get_inverse_affine_matrix

    center = (128.5, 96.5)
    for angle, translate, scale in ((7.0, (3, -2), 1.0), (-15.0, (0, 0), 0.4), (0.0, (-20, 0), 1.15)):
        assert np.allclose(inverse_affine(center, angle, translate, scale, 0.0),
                           _get_inverse_affine_matrix(list(center), angle, list(translate), scale, [0.0, 0.0]))
    for angle, shear, scale in ((0.0, 15.0, 1.0), (5.0, -9.0, 0.8)):
        a, s = math.radians(angle), math.radians(shear)
        rss = np.array([[math.cos(a), -math.sin(a + s)], [math.sin(a), math.cos(a + s)]]) * scale
        inv = np.array(inverse_affine((0.0, 0.0), angle, (0, 0), scale, shear)).reshape(2, 3)
        assert np.allclose(inv[:, :2] @ rss, np.eye(2)) and np.allclose(inv[:, 2], 0)


def test_tilt_at_zero_degrees_is_the_pinhole_shrink_about_the_centre():
    """Frame 15 (no rotation): P2 T P1 moves a point p to c + (p - c) f / (f + 1), f the diagonal."""
    w, h = 341, 256
    f = math.hypot(w, h)
    for x, y in ((0, 0), (340, 17), (100, 255)):
        p = tilt_matrix(w, h, 15) @ np.array([x, y, 1.0])
        expected = (w / 2 + (x - w / 2) * f / (f + 1), h / 2 + (y - h / 2) * f / (f + 1))
        assert np.allclose(p[:2] / p[2], expected)
    assert not np.allclose(tilt_matrix(w, h, 0), tilt_matrix(w, h, 30))


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_frames_equal_the_generation_code(name):
    step = 8 if name == "translate" else 6
    frames = range(0, frame_count(name), step)
    for image in images():
        resized = resize_crop(dataclasses.replace(PRE, crop_size=None))(image)
        for i, mine, theirs in zip(frames, ours(image, name, frames), reference_frames(resized, name, frames)):
            diff = np.abs(mine.astype(int) - theirs.astype(int))
            if name == "tilt":  # OpenCV's float arithmetic: a grey level apart on a few pixels
                assert diff.max() <= 1 and diff.mean() < 0.01, (i, diff.max(), diff.mean())
            else:  # PIL's sampling and its truncation to 8 bits, bit for bit
                assert diff.max() == 0, (name, i, diff.max(), (diff > 0).mean())


def test_the_sequences_show_pixels_from_outside_the_crop():
    image = images()[0]
    first = ours(image, "translate", [0])[0]  # moved 20 pixels left: 20 columns from right of the crop come in
    resized = np.array(resize_crop(dataclasses.replace(PRE, crop_size=None))(image))
    top, left = (resized.shape[0] - 224) // 2, int(round((resized.shape[1] - 224) / 2))
    assert np.array_equal(first, resized[top:top + 224, left + 20:left + 244])
    assert first[:, -20:].any()


def test_the_sweep_counts_flips_of_the_generation_codes_frames(tmp_path):
    """A data folder through the sweep (canvases from the loader, two batch sizes) against the port's frames
    of each resized image through the same model, counted with test.py's formulas."""
    from test_perturb import reference_metrics, ten_class_model

    from nnprobe.data.decode import decode_rgb
    from nnprobe.data.layouts import find_images
    from nnprobe.imagenet_c.sweep import corruption_sweep
    from nnprobe.models.classifier import Classifier

    tinymodels.save_class_folders(tmp_path / "data", 5, seed=4)
    model = Classifier(ten_class_model(), tinymodels.info("ten", tinymodels.PRE, classes=10),
                       [f"class{k}" for k in range(10)])
    data = find_images(str(tmp_path / "data"), class_names=model.class_names, wnids=None,
                       num_classes=model.num_classes)
    names = ("translate", "rotate", "shear")
    runs = [corruption_sweep(model, data, corruptions="contrast", severities=1, device="cpu", workers=0,
                             batch_size=size, perturbations=",".join(names)) for size in (2, 5)]
    assert runs[0].perturbations == runs[1].perturbations
    assert all(p.flips > 0 for p in runs[0].perturbations)  # the counts have something to agree on
    pre = model.preprocessing
    for point in runs[0].perturbations:
        videos = []
        for path, _ in data.samples:
            resized = resize_crop(dataclasses.replace(pre, crop_size=None))(decode_rgb(path)[0])
            frames = reference_frames(resized, point.perturbation, range(frame_count(point.perturbation)),
                                      crop=pre.crop_size)
            with torch.no_grad():
                videos.append(model(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255).numpy())
        fp, t5d = reference_metrics(np.stack(videos).astype(np.float64), noise=False)
        assert point.comparisons == len(data.samples) * (frame_count(point.perturbation) - 1)
        assert point.flips / point.comparisons == pytest.approx(fp, abs=1e-12)
        assert point.top5_distance == pytest.approx(t5d, abs=1e-12)
