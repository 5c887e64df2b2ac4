"""evaluate(): exact counts on models with known answers, and agreement with an independent
torchvision ImageFolder + DataLoader reference loop."""
from __future__ import annotations

import os

import pytest
import torch
from helpers import PLAIN, TESTS, make_wnid_folders, noise_image
from data.test_decode import make_broken_files, make_odd_images
from torchvision import datasets, transforms

from nnprobe.data.layouts import find_images
from nnprobe.errors import DataError
from nnprobe.evaluation import evaluate
from nnprobe.models import load_classifier
from nnprobe.models.imagenet import imagenet_wnids
from nnprobe.per_sample import read


def images_of(root, clf):
    return find_images(str(root), class_names=clf.class_names, wnids=clf.wnids, num_classes=clf.num_classes)


def test_known_answers_exact_counts(tmp_path, color_classifier):
    # 3 classes x 4 correct images, plus 2 + 1 images painted the colour of another class.
    make_wnid_folders(tmp_path, {5: 4, 350: 4, 998: 4}, wrong={5: 2, 998: 1})
    result = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0,
                      batch_size=5)
    assert (result.correct_top1, result.total) == (12, 15)
    # Colour (k + 500) is 5 grid steps away: never in the true class's top-5.
    assert result.correct_top5 == 12
    assert {pc.index: (pc.correct_top1, pc.total) for pc in result.per_class if pc.total} == {
        5: (4, 6), 350: (4, 4), 998: (4, 5)}
    # the 3 wrong images are predicted as the class 500 away
    assert {pc.index: pc.predicted for pc in result.per_class if not pc.total} == {505: 2, 498: 1}
    assert result.top1 == pytest.approx(12 / 15)
    assert result.skipped == () and result.converted == 0
    assert result.run.world_size == 1 and result.data["layout"] == "folders:wnid"


def test_top5_counts_near_misses(tmp_path, color_classifier):
    # An image of class 123's colour labelled as its grid neighbour 124: wrong top-1, right top-5.
    from helpers import solid_image
    from tiny_models import class_color

    wn = imagenet_wnids()
    solid_image(tmp_path / wn[124] / "near.png", class_color(123))
    solid_image(tmp_path / wn[124] / "exact.png", class_color(124))
    result = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0)
    assert (result.correct_top1, result.correct_top5, result.total) == (1, 2, 2)


def test_restrict_to_present_classes(tmp_path, color_classifier):
    # Class 124's colour labelled 124 (right either way), and class 128's colour labelled 129: over all
    # 1000 classes the model answers 128 (wrong); restricted to the present classes {124, 129} the nearer
    # colour is 129 (one grid step, against four to 124), so it is right.
    from helpers import solid_image
    from tiny_models import class_color

    wn = imagenet_wnids()
    solid_image(tmp_path / wn[124] / "a.png", class_color(124))
    solid_image(tmp_path / wn[129] / "b.png", class_color(128))
    full = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0)
    restricted = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0,
                          restrict_to_present=True)
    assert (full.correct_top1, restricted.correct_top1) == (1, 2)
    assert restricted.correct_top5 == 2 and restricted.data["top_k"] == 2
    assert "restricted to the 2 classes" in restricted.data["logits"]


def test_broken_and_odd_files_are_counted_not_fatal(tmp_path, color_classifier):
    make_wnid_folders(tmp_path, {7: 3})
    folder = tmp_path / imagenet_wnids()[7]
    odd = make_odd_images(folder / "odd")
    broken = make_broken_files(folder / "broken")
    result = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=2, batch_size=3)
    assert result.total == 3 + len(odd)
    assert result.converted == len(odd)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in result.skipped}
    assert set(reasons) == set(broken)
    for name, prefix in broken.items():
        assert reasons[name].startswith(prefix)


def test_strict_fails_on_first_broken_file(tmp_path, color_classifier):
    make_wnid_folders(tmp_path, {7: 2})
    make_broken_files(tmp_path / imagenet_wnids()[7] / "broken")
    with pytest.raises(DataError, match="--strict"):
        evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0, strict=True)


def test_agrees_exactly_with_torchvision_reference_loop(tmp_path):
    """A seeded random CNN on noise photos of many sizes: nnprobe's counts equal those of a plain
    ImageFolder + DataLoader + transforms loop on the same model, image for image."""
    classifier = load_classifier(f"{TESTS / 'tiny_models.py'}:random_cnn_10", **PLAIN)
    sizes = [(50, 37), (64, 64), (41, 90), (33, 33), (120, 45), (40, 40)]
    for i in range(30):
        noise_image(tmp_path / "src" / f"{i:02d}.png", seed=i, size=sizes[i % len(sizes)])
    ref_tf = transforms.Compose([transforms.Resize(40, interpolation=transforms.InterpolationMode.BILINEAR,
                                                   antialias=True), transforms.CenterCrop(32), transforms.ToTensor()])
    net = classifier.net
    # Label each photo from the reference's own ranking: 12 with its top-1, 9 with its 3rd choice,
    # 9 with its last choice -> expected top-1 = 12, top-5 = 21 exactly.
    from PIL import Image

    root = tmp_path / "data"
    expected = []
    for i in range(30):
        path = tmp_path / "src" / f"{i:02d}.png"
        with torch.no_grad():
            order = net(ref_tf(Image.open(path).convert("RGB"))[None]).argsort(dim=1, descending=True)[0]
        label = int(order[0] if i < 12 else order[2] if i < 21 else order[-1])
        expected.append(label)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        path.rename(root / str(label) / path.name)
    # Independent reference loop (torchvision's ImageFolder sorts folder names as text: map back).
    dataset = datasets.ImageFolder(str(root), transform=ref_tf)
    loader = torch.utils.data.DataLoader(dataset, batch_size=7)
    ref1 = ref5 = 0
    reference = {}  # relative path -> (top-5, loss, confidence, Brier), from the plain loop
    with torch.no_grad():
        for batch, (x, y) in enumerate(loader):
            y = torch.tensor([int(dataset.classes[i]) for i in y])
            logits = net(x)
            top = logits.topk(5, dim=1).indices
            ref1 += int((top[:, 0] == y).sum())
            ref5 += int((top == y[:, None]).any(dim=1).sum())
            p = logits.softmax(1)
            for j in range(len(y)):
                path = dataset.samples[batch * 7 + j][0]
                onehot = torch.nn.functional.one_hot(y[j], p.shape[1]).float()
                reference[os.path.relpath(path, root).replace(os.sep, "/")] = (
                    top[j].tolist(), float(-p[j, y[j]].log()), float(p[j].max()), float(((p[j] - onehot) ** 2).sum()))
    assert (ref1, ref5) == (12, 21)
    result = evaluate(classifier, images_of(root, classifier), device="cpu", workers=2, batch_size=4,
                      save_predictions=str(tmp_path / "rows.jsonl"))
    assert (result.correct_top1, result.correct_top5, result.total) == (ref1, ref5, 30)
    # per sample, image for image: the rows written and the arrays returned agree with the plain loop
    header, rows = read(str(tmp_path / "rows.jsonl"))
    assert header["rows"] == len(rows) == 30 == len(result.samples.labels)
    assert {r["path"] for r in rows} == set(reference)
    for row, brier in zip(rows, result.samples.brier.tolist()):
        top5, loss, confidence, ref_brier = reference[row["path"]]
        assert row["top5"] == top5 and row["correct"] == (top5[0] == row["label"])
        assert row["loss"] == pytest.approx(loss, abs=1e-5) and row["confidence"] == pytest.approx(confidence, abs=1e-5)
        assert brier == pytest.approx(ref_brier, abs=1e-5)
    assert sum(r["correct"] for r in rows) == ref1 and [r["i"] for r in rows] == list(range(30))
    assert result.mean_loss == pytest.approx(sum(v[1] for v in reference.values()) / 30, rel=1e-5)


def test_gates(tmp_path, color_classifier):
    make_wnid_folders(tmp_path, {5: 3}, wrong={5: 1})
    images = images_of(tmp_path, color_classifier)
    ok = evaluate(color_classifier, images, device="cpu", workers=0, min_top1=0.75, min_top5=0.7)
    assert ok.passed and [g.passed for g in ok.gates] == [True, True]
    bad = evaluate(color_classifier, images, device="cpu", workers=0, min_top1=0.76)
    assert not bad.passed and bad.gates[0].measured == 0.75
    from nnprobe.report.junit import junit_cases

    assert [c.status for c in junit_cases(bad)] == ["failed"]


def test_bf16_autocast_runs_on_cpu(tmp_path, color_classifier):
    make_wnid_folders(tmp_path, {5: 2, 600: 2})
    result = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu", workers=0,
                      precision="bf16")
    assert result.run.precision == "bf16" and result.total == 4


def test_prediction_spread_detects_a_constant_model(tmp_path, color_classifier):
    # Every image painted class 42's colour: the model answers 42 for all 6 -> share 1, entropy 0.
    from helpers import solid_image
    from tiny_models import class_color

    wn = imagenet_wnids()
    for k in (1, 2, 3):
        for i in range(2):
            solid_image(tmp_path / wn[k] / f"{i}.png", class_color(42))
    spread = evaluate(color_classifier, images_of(tmp_path, color_classifier), device="cpu",
                      workers=0).predictions
    assert (spread.distinct_classes, spread.most_predicted, spread.most_predicted_share) == (1, 42, 1.0)
    assert spread.entropy_nats == 0.0
    varied = evaluate(color_classifier, images_of(make_wnid_folders(tmp_path / "v", {1: 1, 2: 1, 3: 1, 4: 1}),
                                                  color_classifier), device="cpu", workers=0).predictions
    assert varied.distinct_classes == 4 and abs(varied.entropy_nats - __import__("math").log(4)) < 1e-12


class _RunsOutOfMemory(torch.nn.Module):
    """The wrapped net, raising out-of-memory for forwards of more than `limit` images (as a full GPU)."""

    def __init__(self, net, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.sizes = net, limit, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.net(x)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (the empty_cache branch)"))])
def test_out_of_memory_halves_the_chunk_and_keeps_the_counts(tmp_path, color_classifier, device):
    from nnprobe.errors import NnprobeError
    from nnprobe.models.classifier import Classifier

    make_wnid_folders(tmp_path, {5: 4, 350: 3}, wrong={5: 1})
    images = images_of(tmp_path, color_classifier)
    plain = evaluate(color_classifier, images, device=device, workers=0, batch_size=8)
    net = _RunsOutOfMemory(color_classifier.net, limit=2)
    tight = Classifier(net, color_classifier.info, color_classifier.class_names, color_classifier.wnids)
    result = evaluate(tight, images, device=device, workers=0, batch_size=8)
    assert (result.correct_top1, result.correct_top5, result.total) == (plain.correct_top1, plain.correct_top5, 8)
    assert net.sizes[:3] == [8, 4, 2] and max(net.sizes[3:]) == 2  # halved twice, then kept
    never = Classifier(_RunsOutOfMemory(color_classifier.net, limit=0), color_classifier.info,
                       color_classifier.class_names, color_classifier.wnids)
    with pytest.raises(NnprobeError, match="Out of memory even with one image per batch"):
        evaluate(never, images, device=device, workers=0, batch_size=8)
