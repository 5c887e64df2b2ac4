"""ImageNet variants with their published protocols (issue 19 part 4), each held to a plain loop written from
the protocol's own definition: PIL decode, ObjectNet's border cut as its loader does (img.crop((2, 2, w-2, h-2))),
torchvision's Resize/CenterCrop, the model, then numpy argmaxes over the published class lists."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import tiny_models
from helpers import factory_spec, solid_image
from nnprobe import api
from nnprobe.models.imagenet import imagenet_wnids
from nnprobe.variants import protocols
from nnprobe.variants.protocols import detect, objectnet_folders, subset_wnids

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "imagenet"
PLAIN = dict(resize=40, crop=32, mean="0,0,0", std="1,1,1", device="cpu", workers=0, setup_checks=False)
WNIDS = imagenet_wnids()
# The published lists, independently of nnprobe's data files: ImageNet-A's `indices_in_1k` (natural-adv-examples
# eval.py; the same list is imagenet-testbed's class_sublist) starts and ends so; ObjectNet's mapping files put
# 'analog clock' (409) and 'digital clock' (530) in its class 'Alarm clock', 'banana' (954) in 'Banana';
# ImageNet-R's list starts with goldfish (1), great white shark (2), hammerhead (4).
A_HEAD, A_TAIL = [6, 11, 13, 15, 17, 22, 23, 27, 30, 37], [980, 981, 984, 986, 987, 988]
R_HEAD = [1, 2, 4, 6, 8, 9, 11, 13]


def color(k: int, shift: float = 0.0) -> tuple[float, float, float]:
    r, g, b = tiny_models.class_color(k)
    return (r, g, min(1.0, b + shift / 9))


def framed(path: Path, inner, size=32, frame=(1.0, 0.0, 0.0), border=2) -> Path:
    """A solid image with a `border`-pixel frame of another colour (ObjectNet's red frame, drawn wide)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.empty((size, size, 3), np.uint8)
    pixels[:] = np.round(np.array(frame) * 255)
    pixels[border:size - border, border:size - border] = np.round(np.array(inner) * 255)
    Image.fromarray(pixels).save(path)
    return path


def reference_logits(paths, *, resize, crop, border=0) -> np.ndarray:
    """The plain loop: PIL decode, the loader's border cut, torchvision's resize and centre crop, the model."""
    net = tiny_models.color_net_1000()
    prep = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor()])
    rows = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        if border:
            w, h = image.size
            image = image.crop((border, border, w - border, h - border))
        with torch.no_grad():
            rows.append(net(prep(image)[None])[0].numpy())
    return np.stack(rows)


def images_of(root: Path) -> list[tuple[Path, str]]:
    return [(p, p.parent.name) for p in sorted(root.glob("*/*")) if p.suffix in (".png", ".jpg")]


def test_the_shipped_lists_are_the_published_ones():
    a = sorted(WNIDS.index(w) for w in subset_wnids("imagenet-a"))
    r = sorted(WNIDS.index(w) for w in subset_wnids("imagenet-r"))
    assert len(set(a)) == len(set(r)) == 200 and a[:10] == A_HEAD and a[-6:] == A_TAIL and r[:8] == R_HEAD
    folders = objectnet_folders()
    mapped = [g for g in folders.values() if g]
    assert len(folders) == 313 and len(mapped) == 113 and len({c for g in mapped for c in g}) == 125
    assert folders["alarm_clock"] == (409, 530) and folders["banana"] == (954,) and folders["air_freshener"] == ()


@pytest.fixture
def imagenet_a(tmp_path) -> Path:
    """An ImageNet-A folder: right images, one painted nearer a non-A class (7), a real photo."""
    root = tmp_path / "imagenet-a"
    solid_image(root / WNIDS[6] / "right.png", color(6))
    solid_image(root / WNIDS[6] / "near7.png", color(6, 0.6))  # 1000-way: class 7 (not A); 200-way: 6
    solid_image(root / WNIDS[11] / "right.png", color(11))
    solid_image(root / WNIDS[13] / "zero.png", color(0))  # 1000-way: tench; 200-way: the nearest A class
    shutil.copy(SAMPLES / "n02123045" / "cat.jpg", (root / WNIDS[11] / "cat.jpg"))
    return root


def test_imagenet_a_restricted_and_all_classes_against_the_plain_loop(imagenet_a):
    result = api.evaluate(factory_spec("color_net_1000"), imagenet_a, **PLAIN)
    files = images_of(imagenet_a)
    logits = reference_logits([p for p, _ in files], resize=40, crop=32)
    labels = np.array([WNIDS.index(w) for _, w in files])
    columns = np.array(sorted(WNIDS.index(w) for w in subset_wnids("imagenet-a")))
    restricted = int((columns[logits[:, columns].argmax(1)] == labels).sum())
    every = int((logits.argmax(1) == labels).sum())
    assert restricted != every  # the data tells the two protocols apart
    assert (result.correct_top1, result.total) == (restricted, len(files))
    v = result.variant
    assert (v.name, v.classes, v.correct_top1_all, v.total) == ("imagenet-a", 200, every, len(files))
    assert "detected from the folder's name" in v.how
    body = result.to_dict()
    assert body["variant"]["top1_all"] == every / len(files) and body["top1_interval"]["method"] == "clopper-pearson"


def test_imagenet_a_said_in_every_report(imagenet_a):
    from nnprobe.report import render

    result = api.evaluate(factory_spec("color_net_1000"), imagenet_a, **PLAIN)
    for fmt in ("table", "markdown"):
        text = render(result, fmt)
        assert "top-1 (200-way, official)" in text and "top-1 (1000-way argmax)" in text
        assert "variant: ImageNet-A" in text


def test_objectnet_groups_border_and_left_out_classes(tmp_path):
    root = tmp_path / "objectnet-1.0" / "images"
    framed(root / "alarm_clock" / "digital.png", color(530))
    framed(root / "alarm_clock" / "analog.png", color(409))  # the other ImageNet class of Alarm clock: right
    framed(root / "alarm_clock" / "banana.png", color(954))  # wrong
    framed(root / "banana" / "banana.png", color(954))
    framed(root / "banana" / "near955.png", color(954, 0.6))  # 1000-way: 955 (not ObjectNet's); restricted: 954
    framed(root / "air_freshener" / "x.png", color(3))  # no ImageNet class: left out
    result = api.evaluate(factory_spec("color_net_1000"), root, **dict(PLAIN, resize=32, crop=32))
    files = [(p, f) for p, f in images_of(root) if f != "air_freshener"]
    logits = reference_logits([p for p, _ in files], resize=32, crop=32, border=2)
    accepted = [set(objectnet_folders()[f]) for _, f in files]
    union = np.array(sorted({c for g in objectnet_folders().values() for c in g}))
    restricted = sum(int(union[row[union].argmax()] in ok) for row, ok in zip(logits, accepted))
    every = sum(int(row.argmax() in ok) for row, ok in zip(logits, accepted))
    assert restricted != every
    assert (result.correct_top1, result.total) == (restricted, 5)
    v = result.variant
    assert (v.name, v.classes, v.correct_top1_all, v.excluded, v.border) == ("objectnet", 113, every, 1, 2)
    unframed = reference_logits([p for p, _ in files], resize=32, crop=32, border=0)
    assert (unframed.argmax(1) != logits.argmax(1)).any()  # the frame moves answers: the cut is tested


def test_v2_folders_are_indices_and_the_sampling_is_named(tmp_path):
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for k in (6, 954, 100):
        solid_image(root / str(k) / "a.png", color(k))
    solid_image(root / "100" / "b.png", color(101))
    result = api.evaluate(factory_spec("color_net_1000"), root, **PLAIN)
    files = images_of(root)
    logits = reference_logits([p for p, _ in files], resize=40, crop=32)
    right = int((logits.argmax(1) == np.array([int(f) for _, f in files])).sum())
    assert (result.correct_top1, result.total, result.variant.correct_top1_all) == (right, 4, right)
    assert result.variant.title == "ImageNetV2 matched-frequency" and result.variant.classes == 1000
    assert result.data["layout"] == "folders:index"


def test_given_variant_is_said_and_a_plain_subset_warns(tmp_path):
    plain = tmp_path / "mine"
    for k in sorted(WNIDS.index(w) for w in subset_wnids("imagenet-a"))[:12]:
        solid_image(plain / WNIDS[k] / "a.png", color(k))
    result = api.evaluate(factory_spec("color_net_1000"), plain, **PLAIN)
    assert result.variant is None and any("--variant imagenet-a" in n for n in result.data["notes"])
    given = api.evaluate(factory_spec("color_net_1000"), plain, variant="imagenet-a", **PLAIN)
    assert given.variant.how == "given (--variant)" and given.variant.classes == 200
    said = api.evaluate(factory_spec("color_net_1000"), plain, variant="val", **PLAIN)
    assert said.variant.name == "val" and not any("--variant" in n for n in said.data["notes"])


@pytest.mark.parametrize("name, folders, expected", [
    ("data", list(subset_wnids("imagenet-a")), "imagenet-a"),
    ("data", list(subset_wnids("imagenet-r")), "imagenet-r"),
    ("imagenet-r", list(subset_wnids("imagenet-r"))[:5], "imagenet-r"),
    ("data", list(objectnet_folders()), "objectnet"),
    ("objectnet-1.0", ["banana", "air_freshener"], "objectnet"),
    ("data", [str(i) for i in range(1000)], "v2"),
    ("ImageNetV2-threshold0.7", ["0", "17"], "v2"),
    ("data", list(WNIDS), "val"),
    ("imagenet-sketch", list(WNIDS[:3]), "sketch"),
    ("data", list(WNIDS[:3]), None),  # a plain 3-class subset: no variant
    ("data", ["banana", "umbrella"], None),  # ObjectNet names without the folder's name: not enough
    ("data", ["0", "1", "2"], None),  # index folders of a 3-class model
])
def test_detection(tmp_path, name, folders, expected):
    root = tmp_path / name
    root.mkdir()
    assert detect(str(root), folders).name == expected


def test_v2_sampling_from_the_folder_name(tmp_path):
    for folder, sampling in (("imagenetv2-matched-frequency-format-val", "matched-frequency"),
                             ("imagenetv2-threshold0.7-format-val", "threshold0.7"),
                             ("imagenetv2-top-images-format-val", "top-images"), ("v2data", None)):
        assert protocols.v2_sampling(str(tmp_path / folder)) == sampling


@pytest.mark.parametrize("variant, folders, extra, message", [
    ("imagenet-a", [WNIDS[0]], [], "folder 'n01440764' of"),
    ("imagenet-r", ["cats"], [], "is not one of ImageNet-R's 200 class wnids"),
    ("objectnet", ["not_a_class"], [], "is not one of ObjectNet's 313 class folders"),
    ("objectnet", ["air_freshener"], [], "None of the 1 class folders"),
    ("v2", ["1000"], [], "is not a class index 0..999"),
    ("real", [WNIDS[0]], [], "--variant real scores val against the ReaL labels"),
    ("imagenet-a", [WNIDS[6]], ["--restrict-to-present"], "both choose the logits"),
    ("imagenet-b", [WNIDS[6]], [], "imagenet-a"),
])
def test_bad_variant_folders_are_one_sentence_and_exit_2(tmp_path, invoke, variant, folders, extra, message):
    root = tmp_path / "data"
    for folder in folders:
        solid_image(root / folder / "a.png", (0.5, 0.5, 0.5))
    proc = invoke("eval", str(root), "--model", factory_spec("color_net_1000"), "--resize", "40", "--crop", "32",
                  "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--variant", variant, *extra)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_variant_needs_an_imagenet_model(tmp_path, invoke):
    root = tmp_path / "imagenet-a"
    solid_image(root / WNIDS[6] / "a.png", color(6))
    proc = invoke("eval", str(root), "--model", factory_spec("color_net_10"), "--resize", "40", "--crop", "32",
                  "--workers", "0", "--variant", "imagenet-a")
    assert proc.returncode == 2 and "needs a 1000-class ImageNet model" in proc.stderr


def test_variant_in_json_reads_back_and_merges(imagenet_a, tmp_path):
    from nnprobe import kinds
    from nnprobe.merging import merge

    parts = []
    for k in (1, 2):
        result = api.evaluate(factory_spec("color_net_1000"), imagenet_a, shard=f"{k}/2", **PLAIN)
        path = tmp_path / f"part{k}.json"
        path.write_text(json.dumps(result.to_dict()))
        kinds.read(path, "Result")
        parts.append(str(path))
    whole = api.evaluate(factory_spec("color_net_1000"), imagenet_a, **PLAIN)
    merged = merge(parts)
    assert merged.variant == whole.variant and merged.correct_top1 == whole.correct_top1
