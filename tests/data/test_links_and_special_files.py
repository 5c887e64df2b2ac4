"""Links are followed once (each real folder read once, each real file counted once, the way with the
fewest links wins); FIFOs and devices are never read; label files and class maps are checked."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import make_wnid_folders
from image_makers import bomb_png, gray16_png
from PIL import Image, ImageFile

from nnprobe.data.decode import UndecodableImage, check_header, decode_rgb
from nnprobe.data.layouts import find_images
from nnprobe.errors import DataError
from nnprobe.models.imagenet import imagenet_names, imagenet_wnids

WN = imagenet_wnids()


def find(root, **kw):
    return find_images(str(root), class_names=imagenet_names(), wnids=WN, num_classes=1000, **kw)


def by_class(found):
    counts = {}
    for _, label in found.samples:
        counts[label] = counts.get(label, 0) + 1
    return counts


@pytest.fixture
def data(tmp_path):
    return make_wnid_folders(tmp_path / "val", {1: 2, 2: 3})  # n01443537: 2 images, n01484850: 3


def test_plain_walk_order_is_imagefolder_order(tmp_path):
    root = make_wnid_folders(tmp_path / "val", {1: 2})
    (root / WN[1] / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(root / WN[1] / "sub" / "a.png")
    Image.new("RGB", (8, 8)).save(root / WN[1] / "z.png")
    names = [p.split(WN[1] + "/")[1] for p, _ in find(root).samples]
    assert names == ["img000.png", "img001.png", "z.png", "sub/a.png"]  # files of a folder, then subfolders


def test_link_loop_counts_each_image_once(data):
    os.symlink("..", data / WN[1] / "loop")  # class folder -> itself
    os.symlink("../..", data / WN[2] / "up")  # -> the data set root
    os.symlink("/", data / WN[2] / "slash")  # -> a folder above the root
    found = find(data)
    assert len(found.samples) == 5 and by_class(found) == {1: 2, 2: 3}
    assert found.skipped == ()
    assert any("3 linked folder(s) not followed" in note for note in found.notes), found.notes


def test_link_to_a_sibling_class_never_relabels_its_images(data):
    os.symlink(f"../{WN[2]}", data / WN[1] / "other")  # sorted first, yet n01484850 keeps its images
    found = find(data)
    assert by_class(found) == {1: 2, 2: 3}
    assert any("1 linked folder(s) not followed" in note for note in found.notes)


def test_a_file_reached_twice_is_counted_once_and_listed(data):
    target = data / WN[2] / "img000.png"
    os.symlink(f"../{WN[2]}/img000.png", data / WN[1] / "again.png")
    found = find(data)
    assert by_class(found) == {1: 2, 2: 3}  # the real file wins over the link, whatever the order
    assert [(s.path, s.reason) for s in found.skipped] == [
        (str(data / WN[1] / "again.png"), f"same file as {target} (reached again through a link)")]


def test_a_linked_folder_outside_the_data_set_is_followed_once(data, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    Image.new("RGB", (8, 8)).save(extra / "x.png")
    os.symlink(extra, data / WN[1] / "more")
    os.symlink(extra, data / WN[2] / "more")  # a second way to the same folder
    found = find(data)
    assert by_class(found) == {1: 3, 2: 3}
    assert any("1 linked folder(s) not followed" in note for note in found.notes)


def test_special_files_are_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    (tmp_path / "dir.png").mkdir()
    for name, kind, reason in [("pipe.jpg", "special", "a FIFO"), ("zero.jpg", "special", "a device"),
                               ("dir.png", "folder", "a folder"), ("missing.png", "missing", "cannot read file")]:
        for decode in (decode_rgb, check_header):
            with pytest.raises(UndecodableImage) as info:
                decode(str(tmp_path / name))
            assert info.value.kind == kind and str(info.value).startswith(reason), (name, str(info.value))


@pytest.mark.parametrize("side", [10000, 20000])
def test_real_bombs_are_refused_from_the_header(tmp_path, side):
    path = bomb_png(tmp_path / "bomb.png", side)
    assert path.stat().st_size < 100_000  # small on disk, 100 M / 400 M pixels decoded
    for decode in (decode_rgb, check_header):
        with pytest.raises(UndecodableImage) as info:
            decode(str(path))
        assert info.value.kind == "bomb"


def test_16bit_scaled_and_header_size(tmp_path):
    path = gray16_png(tmp_path / "g.png")
    image, converted = decode_rgb(str(path))
    assert converted and (np.asarray(image) == 200).all()
    assert check_header(str(path)) == (24, 20)


def test_truncated_images_refused_whatever_the_global_setting(tmp_path):
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = True  # a user's process may set this
        with pytest.raises(UndecodableImage, match="truncated"):
            decode_rgb(str(tmp_path / "cut.jpg"))
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored, not changed for the process
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def test_importing_the_decoder_leaves_pil_settings_alone():
    import subprocess
    import sys

    code = ("from PIL import ImageFile; ImageFile.LOAD_TRUNCATED_IMAGES = True; import nnprobe.data.decode; "
            "print(ImageFile.LOAD_TRUNCATED_IMAGES)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120).stdout.strip() == "True"


CLASS_MAPS = {
    "binary.json": (bytes(range(256)) * 4, "binary file"),
    "latin1.csv": ("caf\xe9,1\n".encode("latin-1"), "not UTF-8 text"),
    "png.json": (None, "binary file"),
    "deep.json": ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    "brackets.json": ("[" * 100_000, "is not JSON"),
    "huge.json": ('{"%s": %s}' % (WN[1], "9" * 5000), "is not JSON"),
    "huge.csv": (f"{WN[1]},{'9' * 5000}\n", "is not JSON"),
    "overflow.json": ('{"%s": 1e400}' % WN[1], "is not JSON"),
    "bool.json": ('{"%s": true}' % WN[1], "is not JSON"),
    "fraction.json": ('{"%s": 1.5}' % WN[1], "is not JSON"),
    "negative.json": ('{"%s": -1}' % WN[1], "maps to class -1"),
    "big.csv": (f"{WN[1]},1000\n", "maps to class 1000"),
}


@pytest.mark.parametrize("name", sorted(CLASS_MAPS))
def test_bad_class_maps_are_data_errors(tmp_path, name):
    root = make_wnid_folders(tmp_path / "val", {1: 1})
    content, message = CLASS_MAPS[name]
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (8, 8)).save(path, format="PNG")
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        find(root, class_map=str(path))


def test_integral_json_numbers_still_map(tmp_path):
    root = make_wnid_folders(tmp_path / "val", {1: 1})
    (tmp_path / "map.json").write_text(json.dumps({WN[1]: 7.0}))
    assert by_class(find(root, class_map=str(tmp_path / "map.json"))) == {7: 1}


@pytest.mark.parametrize("kind", ["fifo", "zero", "binary", "png", "nul", "too-long-label"])
def test_bad_labels_files_are_data_errors(tmp_path, kind):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    labels = tmp_path / "labels.csv"
    message = {"fifo": "FIFO", "zero": "a device", "binary": "not UTF-8", "png": "binary file",
               "nul": "binary file", "too-long-label": "is not a wnid"}[kind]
    if kind == "fifo":
        os.mkfifo(labels)
    elif kind == "zero":
        os.symlink("/dev/zero", labels)
    elif kind == "binary":
        labels.write_bytes(b"\xff\xfe\x80" * 100)
    elif kind == "png":
        Image.new("RGB", (8, 8)).save(labels, format="PNG")
    elif kind == "nul":
        labels.write_bytes(b"a.png,1\0\n")
    else:
        labels.write_text("file,label\na.png," + "7" * 5000 + "\n")
    with pytest.raises(DataError, match=message):
        find(flat, labels_file=str(labels))


def test_oversized_labels_file_is_refused_before_reading(tmp_path, monkeypatch):
    import nnprobe.data.layouts as layouts

    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    (tmp_path / "labels.csv").write_text("a.png,1\n" * 200)
    monkeypatch.setattr(layouts, "LABELS_MAX_BYTES", 1024)
    with pytest.raises(DataError, match="larger than"):
        find(flat, labels_file=str(tmp_path / "labels.csv"))
