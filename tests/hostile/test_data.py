"""Hostile data for eval, fool and robust, through the CLI: link loops, FIFOs and devices named like
images, decompression bombs, binary or absurd label files and class maps, NaN/Inf logits, colliding
output names, --out among the inputs, impossible numbers. Each case: the exact exit code, the one-line
message (or the exact counts where skipping is right), and no input changed.

FIFOs and /dev/zero run in a subprocess with a timeout: a regression there hangs or fills memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import Inputs, expect_refusal, one_line_error
from PIL import Image

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "attacks"))
sys.path.insert(0, str(TESTS / "data"))
import tinymodels  # noqa: E402
from image_makers import bomb_png, gray16_png  # noqa: E402

MODELS = TESTS / "attacks" / "tinymodels.py"
TINY = f"{MODELS}:tiny_classifier"
NAN = f"{MODELS}:nan_classifier"
INF = f"{MODELS}:inf_on_bright_classifier"
HALF = f"{MODELS}:half_overflow_classifier"
WNID = "n01440764"


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """`python -m nnprobe ...` in a subprocess that cannot hang the suite."""
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "nnprobe", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=180)


@pytest.fixture
def data(tmp_path) -> Path:
    """class0..class3 folders, 8 images in all (class-name layout of the tiny model)."""
    root = tmp_path / "data"
    tinymodels.save_class_folders(root, 8, seed=3)
    return root


def json_of(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def eval_args(data: Path, *extra: str, model: str = TINY) -> list[str]:
    return ["eval", str(data), "--model", model, "--workers", "0", "--format", "json", *extra]


def robust_args(data: Path, *extra: str, model: str = TINY) -> list[str]:
    return ["robust", str(data), "--model", model, "--workers", "0", "--eps", "0,2/255", "--steps", "2",
            "--format", "json", *extra]


# ---------------------------------------------------------------- eval / robust: the data folder

def test_eval_link_loop_counts_each_image_once(data, invoke):
    os.symlink("..", data / "class0" / "loop")
    os.symlink("../..", data / "class1" / "root")
    inputs = Inputs(data)
    proc = invoke(*eval_args(data))
    report = json_of(proc)
    assert report["total"] == 8 and report["skipped"] == []
    assert "note: 2 linked folder(s) not followed" in proc.stderr
    inputs.unchanged()


def test_eval_link_to_a_sibling_class_keeps_its_labels(data, invoke):
    plain = json_of(invoke(*eval_args(data)))
    os.symlink("../class3", data / "class0" / "more")  # sorted first: must not relabel class3's images
    inputs = Inputs(data)
    report = json_of(invoke(*eval_args(data)))
    assert report["total"] == 8
    assert {c["index"]: c["total"] for c in report["per_class"]} == {0: 2, 1: 2, 2: 2, 3: 2}
    assert (report["correct_top1"], report["correct_top5"]) == (plain["correct_top1"], plain["correct_top5"])
    inputs.unchanged()


def test_eval_file_reached_twice_is_counted_once_and_listed(data, invoke):
    os.symlink("../class1/img001.png", data / "class0" / "twin.png")
    inputs = Inputs(data)
    report = json_of(invoke(*eval_args(data)))
    assert report["total"] == 8
    assert [(s["path"], s["reason"]) for s in report["skipped"]] == [
        (str(data / "class0" / "twin.png"), f"same file as {data / 'class1' / 'img001.png'} (reached again through a link)")]
    inputs.unchanged()


@pytest.mark.parametrize("command", ["eval", "robust"])
def test_fifo_named_like_an_image_is_skipped_not_read(data, command):
    os.mkfifo(data / "class2" / "pipe.png")
    inputs = Inputs(data)
    proc = cli(*(eval_args(data) if command == "eval" else robust_args(data)))
    report = json_of(proc)
    skipped = report["skipped"] if command == "eval" else report["data"]["skipped"]
    assert skipped == [{"path": str(data / "class2" / "pipe.png"), "reason": "a FIFO (named pipe), not an image file"}]
    total = report["total"] if command == "eval" else report["points"][0]["total"]
    assert total == 8
    inputs.unchanged()


def test_dev_zero_named_like_an_image_is_skipped_not_read(data):
    os.symlink("/dev/zero", data / "class1" / "zero.jpg")
    inputs = Inputs(data)
    report = json_of(cli(*eval_args(data, "--decode", "device")))  # the JPEG byte reader too
    assert report["total"] == 8
    assert report["skipped"] == [{"path": str(data / "class1" / "zero.jpg"), "reason": "a device, not an image file"}]
    inputs.unchanged()


def test_eval_bomb_in_a_class_folder_is_skipped(data, invoke):
    bomb_png(data / "class0" / "bomb.png", 20000)
    inputs = Inputs(data)
    report = json_of(invoke(*eval_args(data)))
    assert report["total"] == 8
    assert [s["reason"] for s in report["skipped"]] == ["decompression bomb refused"]
    inputs.unchanged()


def test_eval_strict_refuses_a_bomb(data, invoke):
    bomb_png(data / "class0" / "bomb.png", 10000)
    inputs = Inputs(data)
    expect_refusal(invoke(*eval_args(data, "--strict")), 2, "bomb.png: decompression bomb refused (--strict)")
    inputs.unchanged()


# ---------------------------------------------------------------- label files and class maps

def flat_with_image(tmp_path: Path) -> Path:
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(flat / "a.png")
    return flat


LABELS = {
    "random-bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096) + b"\0"), "is a binary file"),
    "png-renamed": (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), "is a binary file"),
    "latin-1": (lambda p: p.write_bytes("a.png,caf\xe9\n".encode("latin-1")), "is not UTF-8 text"),
    "huge-index": (lambda p: p.write_text("file,label\na.png," + "1" * 5000 + "\n"), "is not a wnid, a class index"),
}


@pytest.mark.parametrize("case", sorted(LABELS))
def test_bad_labels_file_is_one_sentence(tmp_path, invoke, case):
    flat = flat_with_image(tmp_path)
    labels = tmp_path / "labels.csv"
    LABELS[case][0](labels)
    inputs = Inputs(flat, labels)
    expect_refusal(invoke("eval", str(flat), "--labels", str(labels), "--model", TINY, "--workers", "0"), 2,
                   LABELS[case][1])
    inputs.unchanged()


@pytest.mark.parametrize("kind, fragment", [("fifo", "is a FIFO (named pipe), not a regular file"),
                                            ("zero", "is a device, not a regular file")])
def test_special_labels_file_is_refused_not_read(tmp_path, kind, fragment):
    flat = flat_with_image(tmp_path)
    labels = tmp_path / "labels.csv"
    os.mkfifo(labels) if kind == "fifo" else os.symlink("/dev/zero", labels)
    inputs = Inputs(flat)
    expect_refusal(cli("eval", str(flat), "--labels", str(labels), "--model", TINY, "--workers", "0"), 2,
                   f"labels file {labels} {fragment}")
    inputs.unchanged()


CLASS_MAPS = {
    "binary": (bytes(range(256)), "is a binary file"),
    "png": (None, "is a binary file"),
    "deep-object": ('{"class0": ' + "[" * 100_000 + "]" * 100_000 + "}", "is nested too deeply"),
    "deep-list": ("[" * 100_000, "is not JSON {folder: index}"),
    "5000-digits": ('{"class0": %s}' % ("7" * 5000), "is not JSON {folder: index}"),
    "negative": ('{"class0": -1, "class1": 1, "class2": 2, "class3": 3}', "'class0' maps to class -1"),
    "inf": ('{"class0": 1e999}', "is not JSON {folder: index}"),
}


@pytest.mark.parametrize("case", sorted(CLASS_MAPS))
def test_bad_class_map_is_one_sentence(data, tmp_path, invoke, case):
    content, fragment = CLASS_MAPS[case]
    path = tmp_path / "map.json"
    if content is None:
        Image.new("RGB", (8, 8)).save(path, format="PNG")
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    inputs = Inputs(data, path)
    expect_refusal(invoke(*eval_args(data, "--class-map", str(path))), 2, fragment)
    inputs.unchanged()


# ---------------------------------------------------------------- non-finite logits

def test_eval_nan_model_is_refused_with_a_count(data, invoke):
    inputs = Inputs(data)
    expect_refusal(invoke(*eval_args(data, model=NAN)), 2, "NaN or infinite logits for 8 of 8 images")
    inputs.unchanged()


def test_eval_inf_on_some_images_is_counted(data, invoke):
    for i in range(2):
        Image.new("RGB", (16, 16), (255, 255, 255)).save(data / "class1" / f"white{i}.png")
    inputs = Inputs(data)
    expect_refusal(invoke(*eval_args(data, "--min-top1", "0", model=INF)), 2,
                   "NaN or infinite logits for 2 of 10 images, so no accuracy is computed")
    inputs.unchanged()


def test_eval_autocast_overflow_names_the_precision(data, invoke):
    inputs = Inputs(data)
    expect_refusal(invoke(*eval_args(data, "--precision", "bf16", model=HALF)), 2,
                   "--precision bf16 runs under autocast, which can overflow to Inf")
    assert json_of(invoke(*eval_args(data, model=HALF)))["total"] == 8  # fp32 is finite
    inputs.unchanged()


def test_robust_nan_model_is_refused_with_a_count(data, invoke):
    inputs = Inputs(data)
    expect_refusal(invoke(*robust_args(data, model=NAN)), 2,
                   "NaN or infinite logits for 8 of 8 images, so no robust accuracy")
    inputs.unchanged()


def test_fool_nan_model_is_never_fooled(tmp_path, invoke):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", 1)
    inputs = Inputs(tmp_path / "in")
    expect_refusal(invoke("fool", photo, "--model", NAN, "--out", str(tmp_path / "out")), 2,
                   "NaN or infinite logits for 1 of 1 photos", "so no verdict")
    assert not (tmp_path / "out").exists()
    inputs.unchanged()


def test_fool_inf_on_one_photo_of_two(tmp_path, invoke):
    dark = tinymodels.save_photo(tmp_path / "in" / "dark.png", 1)
    white = tmp_path / "in" / "white.png"
    Image.new("RGB", (20, 20), (255, 255, 255)).save(white)
    inputs = Inputs(tmp_path / "in")
    expect_refusal(invoke("fool", dark, str(white), "--model", INF, "--out", str(tmp_path / "out")), 2,
                   f"for 1 of 2 photos (first: {white})")
    assert not (tmp_path / "out").exists()
    inputs.unchanged()


# ---------------------------------------------------------------- fool inputs

@pytest.mark.parametrize("kind, fragment", [("fifo", "is a FIFO (named pipe), not a regular file"),
                                            ("zero", "is a device, not a regular file")])
def test_fool_special_file_is_refused_not_read(tmp_path, kind, fragment):
    photo = tmp_path / "in" / "x.jpg"
    photo.parent.mkdir()
    os.mkfifo(photo) if kind == "fifo" else os.symlink("/dev/zero", photo)
    expect_refusal(cli("fool", str(photo), "--model", TINY, "--out", str(tmp_path / "out")), 2,
                   f"Image {photo} {fragment}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("side", [10000, 20000])
def test_fool_bomb_is_refused_before_decoding(tmp_path, invoke, side):
    bomb = bomb_png(tmp_path / "in" / "bomb.png", side)
    assert bomb.stat().st_size < 100_000
    inputs = Inputs(tmp_path / "in")
    expect_refusal(invoke("fool", str(bomb), "--model", TINY, "--out", str(tmp_path / "out")), 2,
                   f"Image '{bomb}' is too large to decode safely (decompression bomb refused")
    assert not (tmp_path / "out").exists()
    inputs.unchanged()


def test_fool_truncated_jpeg_is_refused(tmp_path, invoke):
    full = tinymodels.save_photo(tmp_path / "full.png", 1)
    Image.open(full).save(tmp_path / "in.jpg", quality=90)
    data = (tmp_path / "in.jpg").read_bytes()
    cut = tmp_path / "in" / "cut.jpg"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    inputs = Inputs(cut)
    expect_refusal(invoke("fool", str(cut), "--model", TINY, "--out", str(tmp_path / "out")), 2,
                   f"Image '{cut}' cannot be decoded (truncated image)")
    inputs.unchanged()


def test_fool_16bit_png_is_attacked_as_eval_reads_it(tmp_path, invoke):
    photo = gray16_png(tmp_path / "in" / "g16.png")
    inputs = Inputs(tmp_path / "in")
    report = json_of(invoke("fool", str(photo), "--model", TINY, "--eps", "2/255", "--out", str(tmp_path / "out"),
                            "--format", "json"))
    written = np.asarray(Image.open(report["items"][0]["adversarial_image"]).convert("RGB"), dtype=np.int64)
    assert np.abs(written - 200).max() <= 2  # grey 200 (eval's reading), not PIL's clipped 255
    inputs.unchanged()


def test_fool_same_stems_all_written(tmp_path, invoke):
    paths = [tinymodels.save_photo(tmp_path / "a" / "cat.png", 1), tinymodels.save_photo(tmp_path / "b" / "cat.png", 2),
             tinymodels.save_photo(tmp_path / "cat-2.png", 3)]
    inputs = Inputs(*paths)
    report = json_of(invoke("fool", *paths, "--model", TINY, "--no-panel", "--out", str(tmp_path / "out"),
                            "--format", "json"))
    assert [Path(i["adversarial_image"]).name for i in report["items"]] == ["a-cat.adv.png", "b-cat.adv.png",
                                                                            "cat-2.adv.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-cat.adv.png", "b-cat.adv.png", "cat-2.adv.png"]
    inputs.unchanged()


def test_fool_out_in_the_photos_folder_is_refused(tmp_path, invoke):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", 1)
    inputs = Inputs(tmp_path / "in")
    expect_refusal(invoke("fool", photo, "--model", TINY, "--out", str(tmp_path / "in")), 2,
                   f"--out {tmp_path / 'in'} is the folder of the input {photo}")
    inputs.unchanged()


def test_fool_out_inside_a_data_set_is_refused(data, tmp_path, invoke):
    photo = tinymodels.save_photo(tmp_path / "val" / WNID / "fish.png", 1)
    inputs = Inputs(tmp_path / "val")
    expect_refusal(invoke("fool", photo, "--model", TINY, "--out", str(tmp_path / "val" / "fooled")), 2,
                   f"lies inside the data set {tmp_path / 'val'}")
    inputs.unchanged()
    assert not (tmp_path / "val" / "fooled").exists()


# ---------------------------------------------------------------- impossible numbers

@pytest.mark.parametrize("command, option, value", [("eval", "--workers", "-1"), ("eval", "--batch-size", "0"),
                                                    ("robust", "--workers", "-1"), ("robust", "--seed", "-1"),
                                                    ("eval", "--limit", "0")])
def test_impossible_numbers_are_usage_errors(data, invoke, command, option, value):
    inputs = Inputs(data)
    args = eval_args(data, option, value) if command == "eval" else robust_args(data, option, value)
    proc = invoke(*args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert "Traceback" not in proc.stderr and option in proc.stderr, proc.stderr
    if "Error:" in proc.stderr:
        one_line_error(proc.stderr)
    inputs.unchanged()
