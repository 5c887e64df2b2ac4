"""`--model x.onnx` through onnxruntime, and `--reference-model`: a faithful export agrees with its source
image by image, a perturbed one fails the gates; counts and the largest logit difference against a plain
loop over both models' logits; external-data paths that leave the model's folder are refused."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch
from helpers import PLAIN, PLAIN_FLAGS, TESTS, make_wnid_folders, run_cli
from onnx import numpy_helper

import nnprobe
from nnprobe.errors import ModelLoadError, UsageError
from nnprobe.models import load_classifier

FACTORY = f"{TESTS / 'tiny_models.py'}:color_net_1000"


def _export(net, path, scale: float = 1.0) -> str:
    """`net` as ONNX (legacy exporter: no onnxscript needed), its last layer's weights times `scale`."""
    import copy
    import warnings

    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        net[-1].weight.mul_(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(2, 3, 32, 32),), str(path), dynamo=False, input_names=["pixels"],
                          output_names=["logits"], dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    data = make_wnid_folders(root / "data", {5: 3, 350: 2, 998: 3}, wrong={5: 1})
    reference = load_classifier(FACTORY, **PLAIN)
    good = _export(reference.net, root / "good.onnx")
    bad = _export(reference.net, root / "bad.onnx", scale=0.8)  # answers move near grid boundaries
    return root, data, reference, good, bad


def _plain_logits(classifier, data):
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(40, antialias=True), transforms.CenterCrop(32), transforms.ToTensor()])
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(data) for f in files)
    with torch.no_grad():
        return paths, torch.cat([classifier(tf(Image.open(p).convert("RGB"))[None]) for p in paths])


def test_onnx_model_equals_its_torch_source(setup):
    _, _, reference, good, _ = setup
    candidate = load_classifier(good, **PLAIN)
    assert candidate.info.source == "onnx" and candidate.num_classes == 1000
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(candidate(x), reference(x), atol=1e-5)


def test_faithful_export_has_no_changes_and_passes(setup):
    _, data, reference, good, _ = setup
    result = nnprobe.evaluate(good, str(data), reference_model=reference, workers=0, **PLAIN)
    parity = result.parity
    assert (parity.images, parity.top1_changed, parity.top5_changed) == (9, 0, 0)
    assert parity.max_logit_diff < 1e-4 and result.passed
    assert [g.name for g in result.gates] == ["max-flips"]  # --max-flips 0 is the default with a reference
    assert result.to_dict()["parity"]["agreement"]["lo"] == pytest.approx(0.6637, abs=1e-4)  # 9/9 exact


def test_perturbed_export_fails_and_counts_equal_a_plain_loop(setup):
    _, data, reference, good, bad = setup
    result = nnprobe.evaluate(bad, str(data), reference_model=reference, workers=0, max_logit_diff=0.01, **PLAIN)
    candidate = load_classifier(bad, **PLAIN)
    paths, theirs = _plain_logits(reference, data)
    _, mine = _plain_logits(candidate, data)
    changed = int((mine.argmax(1) != theirs.argmax(1)).sum())
    top5 = sum(set(a.tolist()) != set(b.tolist()) for a, b in zip(mine.topk(5, 1).indices, theirs.topk(5, 1).indices))
    parity = result.parity
    assert changed > 0 and (parity.top1_changed, parity.top5_changed) == (changed, top5)
    assert parity.max_logit_diff == pytest.approx(float((mine - theirs).abs().max()), rel=1e-4)
    row, column = divmod(int((mine - theirs).abs().argmax()), 1000)
    assert (os.path.basename(parity.max_logit_diff_path), parity.max_logit_diff_class) == (os.path.basename(paths[row]), column)
    assert not result.passed and {g.name: g.passed for g in result.gates} == {"max-flips": False, "max-logit-diff": False}


def test_cli_exit_codes_and_json(setup, tmp_path):
    _, data, _, good, bad = setup
    ok = run_cli("eval", str(data), "--model", good, "--reference-model", FACTORY, *PLAIN_FLAGS, "--workers", "0",
                 "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["parity"]["top1_changed"] == 0
    drift = run_cli("eval", str(data), "--model", bad, "--reference-model", FACTORY, *PLAIN_FLAGS, "--workers", "0")
    assert drift.returncode == 1 and "top-1 answers changed" in drift.stdout
    loose = run_cli("eval", str(data), "--model", bad, "--reference-model", FACTORY, *PLAIN_FLAGS, "--workers", "0",
                    "--max-flips", "1000")
    assert loose.returncode == 0, loose.stdout


def test_reference_without_the_same_pixels_or_classes_is_refused(setup):
    _, data, reference, good, _ = setup
    with pytest.raises(UsageError, match="same pixels"):
        nnprobe.evaluate(good, str(data), reference_model=reference, workers=0, **dict(PLAIN, crop=30))
    with pytest.raises(UsageError, match="reference"):
        nnprobe.evaluate(good, str(data), workers=0, max_flips=0, **PLAIN)


def _with_external(root, location: str) -> str:
    """A copy of a tiny ONNX model whose head weights live in an external file named `location`."""
    model = onnx.load(os.path.join(root, "good.onnx"))
    tensor = next(t for t in model.graph.initializer if t.dims and t.dims[0] == 1000 and len(t.dims) == 2)
    array = numpy_helper.to_array(tensor)
    target = os.path.normpath(os.path.join(root, "ext", location))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(array.tobytes())
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = os.path.join(root, "ext", f"model-{abs(hash(location))}.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)  # a location outside ext/ leaves it uncreated
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())
    return path


def test_external_data_beside_the_model_is_read(setup):
    root, _, reference, _, _ = setup
    candidate = load_classifier(_with_external(root, "weights.bin"), **PLAIN)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(candidate(x), reference(x), atol=1e-5)


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin"])
def test_external_data_outside_the_folder_is_refused(setup, location):
    root, _, _, _, _ = setup
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load_classifier(_with_external(root, location))


def test_absolute_external_path_and_links_out_are_refused(setup, tmp_path):
    root, _, _, _, _ = setup
    path = _with_external(root, "linked.bin")
    outside = tmp_path / "elsewhere.bin"
    os.replace(os.path.join(root, "ext", "linked.bin"), outside)
    os.symlink(outside, os.path.join(root, "ext", "linked.bin"))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load_classifier(path)
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = str(outside)
    absolute = tmp_path / "absolute.onnx"
    absolute.write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load_classifier(str(absolute))


def test_not_an_onnx_model_is_one_sentence(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf" * 10)
    with pytest.raises(ModelLoadError):
        load_classifier(str(junk))
    result = run_cli("eval", str(tmp_path), "--model", str(junk))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    with pytest.raises(UsageError, match="--arch"):
        load_classifier(str(junk), arch="resnet18")
