"""Every label layout maps to the model's class indices (not to listing order)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_wnid_folders, solid_image
from tiny_models import class_color

from nnprobe.data.layouts import find_images
from nnprobe.errors import DataError, UsageError
from nnprobe.models.imagenet import imagenet_names, imagenet_wnids

WN = imagenet_wnids()
NAMES = imagenet_names()


def find(root, **kw):
    kw.setdefault("class_names", NAMES)
    kw.setdefault("wnids", WN)
    kw.setdefault("num_classes", 1000)
    return find_images(str(root), **kw)


def labels_by_file(found):
    return {p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1]: label for p, label in found.samples}


def test_wnid_subset_keeps_1000_way_indices(tmp_path):
    # Imagenette's wnids keep their global indices, not 0..9.
    imagenette = [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]
    make_wnid_folders(tmp_path, {k: 1 for k in imagenette})
    found = find(tmp_path)
    assert found.layout == "folders:wnid"
    assert sorted(label for _, label in found.samples) == imagenette
    assert found.mapping[WN[217]] == 217
    assert found.classes_present == tuple(imagenette)


def test_numeric_folders_are_indices_not_text_order(tmp_path):
    # ImageNetV2 style: a text sort would put "10" before "2".
    for k in (0, 2, 10, 100, 999):
        solid_image(tmp_path / str(k) / "a.png", (0.5, 0.5, 0.5))
    found = find(tmp_path)
    assert found.layout == "folders:index"
    assert sorted(label for _, label in found.samples) == [0, 2, 10, 100, 999]
    assert {p.split("/")[-2]: label for p, label in found.samples} == {"0": 0, "2": 2, "10": 10, "100": 100,
                                                                         "999": 999}


def test_class_name_folders_match_model_names(tmp_path):
    for name in ("tabby", "Espresso", "missile"):
        solid_image(tmp_path / name / "a.png", (0.1, 0.2, 0.3))
    found = find(tmp_path)
    assert found.layout == "folders:class-name"
    assert {p.split("/")[-2]: label for p, label in found.samples} == {"tabby": 281, "Espresso": 967, "missile": 657}


def test_unknown_names_fall_back_to_sorted_order_with_a_note(tmp_path):
    for name in ("zebra-ish", "apple-ish", "mango-ish"):
        solid_image(tmp_path / name / "a.png", (0.1, 0.2, 0.3))
    found = find(tmp_path, class_names=["a", "b", "c"], wnids=None, num_classes=3)
    assert found.layout == "folders:sorted"
    assert found.mapping == {"apple-ish": 0, "mango-ish": 1, "zebra-ish": 2}
    assert any("sorted order" in note for note in found.notes)


def test_class_map_overrides(tmp_path):
    for name in ("cats", "cups"):
        solid_image(tmp_path / name / "a.png", (0.1, 0.2, 0.3))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"cats": 281, "cups": 968}))
    found = find(tmp_path / "", class_map=str(mapping))
    assert found.layout == "folders:class-map"
    assert sorted(label for _, label in found.samples) == [281, 968]
    csv_map = tmp_path / "map.csv"
    csv_map.write_text("cats,5\ncups,6\n")
    assert sorted(lbl for _, lbl in find(tmp_path, class_map=str(csv_map)).samples) == [5, 6]
    csv_map.write_text("cats,5\n")
    with pytest.raises(DataError, match="cups"):
        find(tmp_path, class_map=str(csv_map))


def test_index_outside_model_is_an_error(tmp_path):
    solid_image(tmp_path / "12" / "a.png", (0.1, 0.2, 0.3))
    with pytest.raises(DataError, match="outside the model's 10 classes"):
        find(tmp_path, class_names=[str(i) for i in range(10)], wnids=None, num_classes=10)


def test_non_image_names_are_listed_as_skipped(tmp_path):
    make_wnid_folders(tmp_path, {3: 2})
    (tmp_path / WN[3] / "notes.txt").write_text("hello")
    (tmp_path / WN[3] / ".DS_Store").write_bytes(b"\0")
    found = find(tmp_path)
    assert len(found.samples) == 2
    assert [(s.path.rsplit("/", 1)[-1], s.reason) for s in found.skipped] == [("notes.txt", "not an image file name")]


def test_kaggle_loc_val_solution(tmp_path):
    flat = tmp_path / "val"
    rows = ["ImageId,PredictionString"]
    for i, k in enumerate([65, 970, 230]):
        solid_image(flat / f"ILSVRC2012_val_{i + 1:08d}.JPEG", class_color(k), fmt="JPEG")
        rows.append(f"ILSVRC2012_val_{i + 1:08d},{WN[k]} 10 20 200 300 {WN[k]} 1 2 3 4")
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    found = find(flat, labels_file=str(tmp_path / "LOC_val_solution.csv"))
    assert found.layout == "flat:kaggle"
    assert [label for _, label in found.samples] == [65, 970, 230]


def test_generic_labels_file_with_names_indices_and_wnids(tmp_path):
    flat = tmp_path / "imgs"
    for name in ("a.png", "b.png", "c.png", "unlabelled.png"):
        solid_image(flat / name, (0.2, 0.2, 0.2))
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\na.png,tabby\nb,17\nc.png,n07920052\nmissing.png,3\n")
    found = find(flat, labels_file=str(labels))
    assert found.layout == "flat:labels-file"
    assert [(p.rsplit("/", 1)[-1], label) for p, label in found.samples] == [("a.png", 281), ("b.png", 17),
                                                                             ("c.png", 967)]
    assert [s.path.rsplit("/", 1)[-1] for s in found.skipped] == ["unlabelled.png"]
    assert any("1 rows" in note for note in found.notes)


def _write_meta_mat(path, leaf_ids_to_wnids, parents=()):
    from scipy.io import savemat

    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    rows = [(i, w, w, "", 0) for i, w in leaf_ids_to_wnids.items()]
    rows += [(i, w, w, "", 3) for i, w in parents]
    savemat(path, {"synsets": np.array(rows, dtype=dtype)})


def test_devkit_ids_are_not_the_sorted_index(tmp_path):
    # The devkit's ILSVRC2012_ID order differs from the sorted-wnid index: ID 490 is n01751748 (sea snake,
    # index 65). Map through meta.mat, never `id - 1`.
    devkit = tmp_path / "devkit" / "data"
    devkit.mkdir(parents=True)
    _write_meta_mat(str(devkit / "meta.mat"), {490: "n01751748", 1: WN[500], 7: WN[3]}, parents=[(1001, "n00001740")])
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n1\n7\n490\n")
    flat = tmp_path / "val"
    for i in range(1, 4):  # image 4 is absent
        solid_image(flat / f"ILSVRC2012_val_{i:08d}.JPEG", (0.3, 0.3, 0.3), fmt="JPEG")
    found = find(flat, devkit=str(tmp_path / "devkit"))
    assert found.layout == "devkit"
    assert [label for _, label in found.samples] == [65, 500, 3]
    assert any("1 of 4" in note for note in found.notes)


def test_limit_is_deterministic_and_spread(tmp_path):
    make_wnid_folders(tmp_path, {k: 5 for k in (1, 2, 3, 4)})
    found = find(tmp_path)
    limited = found.limited(4)
    assert limited.samples == found.limited(4).samples
    assert [label for _, label in limited.samples] == [1, 2, 3, 4]
    with pytest.raises(UsageError):
        found.limited(0)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        find(tmp_path / "empty")
