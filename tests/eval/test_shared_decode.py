"""Several models on one data set decode each image once (nnprobe.data.shared_decode): each model's result is
what it gives evaluated alone — every field but the run's time — whether it shares its tensor with another model
(same resize and crop) or takes its own resize of the same decoded image; the models take turns batch by batch;
a failing model stops the run with its own error and leaves no thread behind."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import nnprobe
from helpers import PLAIN, factory_spec, make_wnid_folders, noise_image
from nnprobe import api
from nnprobe.data import loader, shared_decode
from nnprobe.evaluation import evaluate
from nnprobe.models.imagenet import imagenet_wnids

WNIDS = imagenet_wnids()
KEYWORDS = dict(device="cpu", batch_size=3, workers=0, setup_checks=False)
COLOR = factory_spec("color_net_1000")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_wnid_folders(tmp_path_factory.mktemp("shared") / "data", {5: 3, 400: 2}, wrong={400: 1})
    noise_image(root / WNIDS[5] / "noise.png", 1, (61, 47))
    noise_image(root / WNIDS[400] / "noise.png", 2, (37, 55))
    Image.new("L", (50, 44), 128).save(root / WNIDS[5] / "grey.png")  # converted to RGB
    (root / WNIDS[400] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)  # skipped
    return root


@pytest.fixture
def decodes(monkeypatch):
    """Every decode of an image file, whichever path makes it."""
    seen: list[str] = []

    def counting(path):
        seen.append(path)
        return real(path)

    real = loader.decode_rgb
    monkeypatch.setattr(loader, "decode_rgb", counting)
    monkeypatch.setattr(shared_decode, "decode_rgb", counting)
    return seen


def _classifiers():
    flat = dict(mean=(0, 0, 0), std=(1, 1, 1))
    return [api.load_classifier(COLOR, resize=40, crop=32, **flat),
            api.load_classifier("default", resize=40, crop=32),  # shares the first model's tensor
            api.load_classifier(COLOR, resize=36, crop=28, interpolation="bicubic", **flat),
            api.load_classifier("default", resize=48, crop=40, interpolation="bicubic")]


def _comparable(result) -> str:
    body = result.to_dict()
    for key in ("run", "images_per_second"):
        body.pop(key)
    return json.dumps(body, sort_keys=True, default=str)


def test_each_model_equals_its_own_eval_and_each_file_is_decoded_once(data, decodes):
    classifiers = _classifiers()
    images = api.find_images(str(data), classifiers[0])
    files = len(images.samples)
    shared = shared_decode.evaluate_shared(classifiers, images, KEYWORDS)
    assert len(decodes) == files == 10 and sorted(decodes) == sorted(p for p, _ in images.samples)
    decodes.clear()
    for classifier, result in zip(classifiers, shared):
        alone = evaluate(classifier, images, **KEYWORDS)
        assert _comparable(result) == _comparable(alone)
        assert np.array_equal(result.samples.loss, alone.samples.loss)
        assert np.array_equal(result.samples.top, alone.samples.top)
        assert result.converted == 1 and [s.path.rsplit("/", 1)[-1] for s in result.skipped] == ["broken.png"]
    assert len(decodes) == 4 * files  # each model alone decodes every file again
    pixels = {c.preprocessing.crop_size for c in classifiers}
    assert pixels == {32, 28, 40}  # three resizes of one decode (the first two models share theirs)
    assert shared[0].samples.loss.tolist() != shared[2].samples.loss.tolist()  # a resize of its own, not the first's


def test_models_take_turns_batch_by_batch(data):
    turns: list[tuple[str, tuple[int, ...]]] = []

    def observe(pixels, positions, labels, logits):
        turns.append((threading.current_thread().name, tuple(positions.tolist())))

    classifiers = _classifiers()[:3]
    images = api.find_images(str(data), classifiers[0])
    shared_decode.evaluate_shared(classifiers, images, dict(KEYWORDS, observe=observe))
    batches = [turns[i][1] for i in range(0, len(turns), 3)]
    assert [name for name, _ in turns] == [f"nnprobe-model-{k}" for _ in batches for k in range(3)]
    assert all(turns[3 * b + k][1] == positions for b, positions in enumerate(batches) for k in range(3))
    assert sorted(p for b in batches for p in b) == [p for p in range(10) if "broken" not in images.samples[p][0]]


class _FailsOnSecondBatch:
    def __init__(self, net) -> None:
        self.net, self.calls = net, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == 2:
            raise ValueError("planted failure in the second batch")
        return self.net(x)


def test_a_failing_model_stops_the_run_with_its_error(data):
    classifiers = _classifiers()[:3]
    planted = _FailsOnSecondBatch(classifiers[1].net)
    classifiers[1].forward = lambda pixels: planted((pixels - classifiers[1].mean) / classifiers[1].std)
    images = api.find_images(str(data), classifiers[0])
    with pytest.raises(ValueError, match="planted failure in the second batch"):
        shared_decode.evaluate_shared(classifiers, images, KEYWORDS)
    assert not [t for t in threading.enumerate() if t.name.startswith("nnprobe-model-")]


def test_the_api_shares_one_pass_between_models(data, decodes):
    both = nnprobe.evaluate([COLOR, "default"], str(data), workers=0, batch_size=4, setup_checks=False, **PLAIN)
    assert len(decodes) == 10 and [r.total for r in both.runs] == [9, 9]


def test_with_loader_workers(data):
    classifiers = _classifiers()[1:3]
    images = api.find_images(str(data), classifiers[0])
    keywords = dict(KEYWORDS, workers=1)
    shared = shared_decode.evaluate_shared(classifiers, images, keywords)
    assert [_comparable(r) for r in shared] == [_comparable(evaluate(c, images, **keywords)) for c in classifiers]
