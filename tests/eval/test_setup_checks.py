"""Setup checks ("why is my accuracy near chance?"): each usual setup mistake, made on purpose with a tiny
model that is right on its data when set up well, is found by its own finding and no other, and the fix
the finding names, applied, gives back exactly the right setup's top-1. References are independent:
scipy's assignment and binomial test."""
from __future__ import annotations

import colorsys
import copy

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.stats import binomtest
from torch import nn

import tinymodels as tm
from nnprobe import api
from nnprobe.setup_checks import SetupFinding, explain_low_accuracy, needs_explaining
from nnprobe.setup_checks.inputs import INV_255
from nnprobe.setup_checks.labels import max_weight_assignment
from nnprobe.setup_checks.verdicts import mcnemar_greater

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# four colours chosen so that normalising twice sends most of them to the wrong class
PALETTE = ((0.41, 0.24, 0.82), (0.53, 0.41, 0.49), (0.06, 0.24, 0.9), (0.26, 0.08, 0.65))
COLOUR_SIZE = 12


def colour_images(palette, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k: palette[k] plus pixel noise, 8-bit."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(palette)
    base = torch.tensor(palette)[y][:, :, None, None]
    x = (base + 0.04 * torch.randn(n, 3, COLOUR_SIZE, COLOUR_SIZE, generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8), y


def save_folders(root, pixels, folders) -> None:
    for i, folder in enumerate(folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy()).save(root / folder / f"{i:03d}.png")


class NearestColour(nn.Module):
    """Nearest class centroid of the mean colour, fitted on training images. With `normalise`, it
    normalises its input itself (ImageNet mean/std, centroids too); with `scale`, it expects pixels
    multiplied by it (255: 0-255 input); with `bgr`, it expects the channels reversed."""

    def __init__(self, palette, *, normalise=False, scale=1.0, bgr=False, seed=1) -> None:
        super().__init__()
        x, y = colour_images(palette, 40 * len(palette), seed)
        centroids = torch.stack([(x[y == k].float() / 255).mean((0, 2, 3)) for k in range(len(palette))])
        mean = torch.tensor(IMAGENET_MEAN if normalise else (0.0,) * 3)
        std = torch.tensor(IMAGENET_STD if normalise else (1.0,) * 3)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("centroids", (centroids - mean) / std)
        self.scale, self.bgr = scale, bgr

    def forward(self, x):
        colour = x.mean((2, 3)) / self.scale
        if self.bgr:
            colour = colour.flip(1)
        z = (colour - self.mean) / self.std
        return -((z[:, None] - self.centroids[None]) ** 2).sum(-1)


class Expects255(nn.Module):
    """The trained tiny stripes net behind its own normalisation, fed pixels in 0-255."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tm.tiny_classifier().net

    def forward(self, x):
        return self.net((x / 255 - 0.5) / 0.25)


class StuckInTraining(tm.TinyNet):
    """The tiny net whose train()/eval() is ignored: BatchNorm on batch statistics, dropout on."""

    def train(self, mode: bool = True):
        return super().train(True)


@pytest.fixture(scope="module")
def stripes(tmp_path_factory):
    """64 stripe images in class0..class3 (the tiny classifier's class names)."""
    root = tmp_path_factory.mktemp("stripes")
    tm.save_class_folders(root, 64, seed=7)
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """64 colour images in folders 0..3."""
    root = tmp_path_factory.mktemp("colours")
    pixels, y = colour_images(PALETTE, 64, seed=2)
    save_folders(root, pixels, [str(int(k)) for k in y])
    return root


def run(model, data, **options):
    """eval through the public API, then the setup checks on its per-image answers."""
    result = api.evaluate(model, str(data), device="cpu", workers=0, **options)
    model_options = {k: v for k, v in options.items() if k in ("resize", "crop", "num_classes", "mean", "std")}
    classifier = api.load_classifier(model, **model_options)
    images = api.find_images(str(data), classifier, class_map=options.get("class_map"),
                             labels_file=options.get("labels_file"))
    findings = explain_low_accuracy(classifier, images, labels=result.samples.labels,
                                    predicted=result.samples.predicted, device="cpu")
    return result, findings


def flagged(result) -> bool:
    present = len({pc.index for pc in result.per_class if pc.total})
    return needs_explaining(result.top1, present, result.predictions.most_predicted_share)


COLOUR = dict(resize=COLOUR_SIZE, crop=COLOUR_SIZE, num_classes=4)
RAW = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_healthy_setups_have_no_finding(stripes, colours):
    for model, data, options in ((tm.tiny_classifier(), stripes, {}),
                                 (NearestColour(PALETTE, normalise=True), colours, {**COLOUR, **RAW}),
                                 (NearestColour(PALETTE), colours, {**COLOUR, **RAW})):
        result, findings = run(model, data, **options)
        assert (result.correct_top1, result.total) == (64, 64)
        assert not flagged(result) and findings == ()


def test_permuted_class_map_found_and_its_csv_restores_top1(stripes, tmp_path):
    right, _ = run(tm.tiny_classifier(), stripes)
    permuted = tmp_path / "permuted.csv"
    permuted.write_text("class0,2\nclass1,3\nclass2,1\nclass3,0\n")
    result, findings = run(tm.tiny_classifier(), stripes, class_map=str(permuted))
    assert result.correct_top1 == 0 and flagged(result)
    assert [f.id for f in findings] == ["class-permutation"]
    finding = findings[0]
    assert finding.severity == "error" and "from 0.0% to 100.0%" in finding.message
    assert "folder 'class0' is labelled 2 (class2) but answered 0 (class0) for 16 of its 16 images" in finding.message
    assert finding.evidence["held_out_images"] == 32 and finding.evidence["held_out_top1_after"] == 1.0
    assert finding.evidence["class_map_csv"] == "class0,0\nclass1,1\nclass2,2\nclass3,3\n"
    fixed_map = tmp_path / "fixed.csv"
    fixed_map.write_text(finding.evidence["class_map_csv"])
    fixed = api.evaluate(tm.tiny_classifier(), str(stripes), device="cpu", workers=0, class_map=str(fixed_map))
    assert fixed.correct_top1 == right.correct_top1 == 64


def test_double_normalisation_found_and_identity_normalisation_restores_top1(colours):
    model = NearestColour(PALETTE, normalise=True)
    right, _ = run(model, colours, **COLOUR, **RAW)
    result, findings = run(model, colours, **COLOUR)  # nnprobe's default ImageNet normalisation on top
    assert result.correct_top1 < 32 and flagged(result)
    assert [f.id for f in findings] == ["double-normalisation"]
    assert findings[0].fix.startswith("--mean 0,0,0 --std 1,1,1")
    assert findings[0].evidence["top1_after"] == 1.0
    fixed = api.evaluate(model, str(colours), device="cpu", workers=0, **COLOUR, mean=(0, 0, 0), std=(1, 1, 1))
    assert fixed.correct_top1 == right.correct_top1 == 64


def test_model_expecting_0_255_found_and_std_1_over_255_restores_top1(stripes):
    tiny = dict(resize=tm.SIZE, crop=tm.SIZE, num_classes=tm.CLASSES)
    right = api.evaluate(Expects255(), str(stripes), device="cpu", workers=0, **tiny, mean=(0, 0, 0),
                         std=(1 / 255,) * 3)
    result, findings = run(Expects255(), stripes, **tiny, **RAW)
    assert result.correct_top1 <= 32 and flagged(result)
    assert [f.id for f in findings] == ["expects-0-255"]
    fix = findings[0].fix
    assert fix.startswith(f"--mean 0,0,0 --std {INV_255},{INV_255},{INV_255}")
    std = tuple(float(v) for v in fix.split()[3].split(","))  # the flag's text, parsed as the CLI does
    fixed = api.evaluate(Expects255(), str(stripes), device="cpu", workers=0, **tiny, mean=(0, 0, 0), std=std)
    assert fixed.correct_top1 == right.correct_top1 == 64


def test_bgr_model_found(colours):
    model = NearestColour(PALETTE, bgr=True)
    result, findings = run(model, colours, **COLOUR, **RAW)
    assert flagged(result)
    assert [f.id for f in findings] == ["expects-bgr"]
    assert "--bgr option would be needed" in findings[0].fix

    class Flipped(nn.Module):  # the wrapper the fix describes
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x.flip(1))

    fixed = api.evaluate(Flipped(model), str(colours), device="cpu", workers=0, **COLOUR, **RAW)
    assert fixed.correct_top1 == 64


def test_numeric_folders_sorted_as_text(tmp_path):
    # A model trained with ImageFolder on folders 0..10 numbers them in text order (0, 1, 10, 2, ...);
    # nnprobe labels folder "10" as class 10.
    names = [str(k) for k in range(11)]
    text_index = {name: i for i, name in enumerate(sorted(names))}
    palette = tuple(colorsys.hsv_to_rgb(k / 11, 0.8, 0.8) for k in range(11))
    pixels, y = colour_images(palette, 44, seed=3)
    inverse = {i: name for name, i in text_index.items()}
    save_folders(tmp_path, pixels, [inverse[int(k)] for k in y])
    model, options = NearestColour(palette), dict(resize=COLOUR_SIZE, crop=COLOUR_SIZE, num_classes=11, **RAW)
    result, findings = run(model, tmp_path, **options)
    assert (result.correct_top1, result.total) == (8, 44)  # folders 0 and 1 only
    assert [f.id for f in findings] == ["numeric-folders-sorted-as-text"]
    assert findings[0].evidence["order"] == "text"
    csv_text = findings[0].evidence["class_map_csv"]
    assert csv_text == "".join(f"{name},{i}\n" for name, i in sorted(text_index.items()))
    class_map = tmp_path.parent / "numeric-map.csv"
    class_map.write_text(csv_text)
    fixed = api.evaluate(model, str(tmp_path), device="cpu", workers=0, class_map=str(class_map), **options)
    assert fixed.correct_top1 == 44


def test_model_stuck_in_training_mode(stripes):
    net = StuckInTraining()
    net.load_state_dict(tm._trained_state())
    classifier = api.load_classifier(net, resize=tm.SIZE, crop=tm.SIZE, num_classes=tm.CLASSES,
                                     mean=tm.PRE.mean, std=tm.PRE.std)
    assert net.training  # eval() did not take
    # eval's own train-mode forwards move the BatchNorm statistics: run it on a copy, explain the original
    result = api.evaluate(copy.deepcopy(classifier), str(stripes), device="cpu", workers=0)
    images = api.find_images(str(stripes), classifier)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    findings = explain_low_accuracy(classifier, images, labels=result.samples.labels,
                                    predicted=result.samples.predicted, batch_size=16)
    assert "training-mode" in [f.id for f in findings]
    finding = next(f for f in findings if f.id == "training-mode")
    assert finding.severity == "error" and "net.features.1" in finding.evidence["modules_in_training_mode"]
    assert finding.evidence["top1_after"] == 1.0  # every training flag cleared: the trained net's answers
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics left as found
    assert net.training


def test_findings_are_json():
    finding = SetupFinding("x", "error", "m", "f", {"a": (1, 2), "b": float("nan")})
    assert finding.to_dict() == {"id": "x", "severity": "error", "message": "m", "fix": "f",
                                 "evidence": {"a": [1, 2], "b": None}}


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (5, 9), (12, 12), (30, 45)])
def test_assignment_matches_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        weights = rng.integers(0, 20, size=shape)
        columns = max_weight_assignment(weights)
        assert len(set(columns.tolist())) == shape[0]
        rows, reference = linear_sum_assignment(weights, maximize=True)
        assert weights[np.arange(shape[0]), columns].sum() == weights[rows, reference].sum()


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        before, after = rng.random(200) < 0.3, rng.random(200) < rng.random()
        b, c = int((~before & after).sum()), int((before & ~after).sum())
        expected = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
        assert mcnemar_greater(before, after) == pytest.approx(expected, rel=1e-9)


def test_needs_explaining_thresholds():
    assert needs_explaining(0.09, 1000, 0.01) and not needs_explaining(0.11, 1000, 0.01)
    assert needs_explaining(0.19, 10, 0.1) and not needs_explaining(0.21, 10, 0.1)
    assert needs_explaining(0.49, 2, 0.5) and not needs_explaining(0.9, 2, 0.5)  # capped at 0.5
    assert needs_explaining(0.9, 4, 0.51) and not needs_explaining(0.9, 1, 1.0)
    assert not needs_explaining(0.9, 4, 0.6, largest_class_share=0.55)


def test_more_logits_than_classes_found(tmp_path):
    # A 12-way model whose classes 4..11 are near-duplicates of 0..3 (lighter and darker, like ImageNet's
    # many similar breeds); the data holds classes 0..3, each image a little lighter or darker: the
    # answers split over two absent classes per folder, so no folder remap explains them, and the argmax
    # over the classes present does.
    base = NearestColour(PALETTE)
    shift = torch.full((1, 3), 0.03)
    centroids = torch.cat([base.centroids, base.centroids + shift, base.centroids - shift])
    model = NearestColour(PALETTE)
    model.centroids = centroids
    pixels, y = colour_images(PALETTE, 64, seed=4)
    sign = torch.where(torch.arange(64) % 8 < 4, 1.0, -1.0)[:, None, None, None]
    pixels = (pixels.float() + sign * 0.03 * 255).round().clamp(0, 255).to(torch.uint8)
    save_folders(tmp_path, pixels, [str(int(k)) for k in y])
    options = dict(resize=COLOUR_SIZE, crop=COLOUR_SIZE, num_classes=12, **RAW)
    result, findings = run(model, tmp_path, **options)
    assert result.correct_top1 == 0 and flagged(result)
    assert [f.id for f in findings] == ["logits-classes-mismatch"]
    finding = findings[0]
    assert "--restrict-to-present" in finding.fix
    assert finding.evidence["answers_outside_present"] == 1.0 and finding.evidence["classes_present"] == 4
    fixed = api.evaluate(model, str(tmp_path), device="cpu", workers=0, restrict_to_present=True, **options)
    assert fixed.correct_top1 == 64


def test_labels_beyond_the_logits_are_one_finding(stripes):
    classifier = tm.tiny_classifier()
    images = api.find_images(str(stripes), classifier)
    labels = np.array([0, 1, 7], dtype=np.int64)
    findings = explain_low_accuracy(classifier, images, labels=labels, predicted=np.array([0, 1, 2]))
    assert [f.id for f in findings] == ["logits-classes-mismatch"]
    assert findings[0].evidence == {"min_label": 0, "max_label": 7, "num_classes": 4}


def test_class_map_in_text_order_for_a_numeric_model(tmp_path):
    # The other way round: the model numbers folders 0..10 as integers, the user's class map (copied from
    # ImageFolder's class_to_idx) numbers them in text order.
    names = [str(k) for k in range(11)]
    palette = tuple(colorsys.hsv_to_rgb(k / 11, 0.8, 0.8) for k in range(11))
    pixels, y = colour_images(palette, 44, seed=5)
    data = tmp_path / "data"
    save_folders(data, pixels, [names[int(k)] for k in y])
    text_map = tmp_path / "text.csv"
    text_map.write_text("".join(f"{name},{i}\n" for i, name in enumerate(sorted(names))))
    options = dict(resize=COLOUR_SIZE, crop=COLOUR_SIZE, num_classes=11, **RAW)
    result, findings = run(NearestColour(palette), data, class_map=str(text_map), **options)
    assert result.correct_top1 == 8
    assert [f.id for f in findings] == ["numeric-folders-sorted-as-text"]
    assert findings[0].evidence["order"] == "numeric"
    assert findings[0].evidence["class_map_csv"] == "".join(f"{name},{name}\n" for name in sorted(names))


def test_permuted_labels_file_gives_the_remap(stripes, tmp_path):
    # A flat folder with a labels file (no class folders, so no --class-map): the remap is old -> new label.
    import shutil

    swap = {0: 1, 1: 0, 2: 3, 3: 2}
    lines = []
    for i, path in enumerate(sorted(stripes.glob("class*/*.png"))):
        shutil.copy(path, tmp_path / f"{i:03d}.png")
        lines.append(f"{i:03d}.png,{swap[int(path.parent.name[-1])]}\n")
    labels_file = tmp_path.parent / "labels.csv"
    labels_file.write_text("".join(lines))
    result, findings = run(tm.tiny_classifier(), tmp_path, labels_file=str(labels_file))
    assert result.correct_top1 == 0
    assert [f.id for f in findings] == ["class-permutation"]
    assert findings[0].evidence["remap"] == {str(old): new for old, new in swap.items()}
    assert "class_map_csv" not in findings[0].evidence
