"""`--x264-roundtrip`: each ImageNet-P sequence encoded and decoded as the published videos were. The decoded
frames against the generation code's own command line (hendrycks/robustness make_imagenet_p.py: PNGs through
`ffmpeg -r 1 -framerate 1 -i img%01d.png -vcodec libx264 ...`, here imageio-ffmpeg's static binary) read back
as ImageNet-P/test.py reads them (OpenCV's VideoCapture, BGR to RGB); the encoder's options against that
file's; the sweep's flip counts against a plain loop over those videos; refusals in one sentence."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinymodels
from corruption_reference import photos
from nnprobe.errors import UsageError
from nnprobe.imagenet_c import perturb, x264
from nnprobe.imagenet_c.perturb import FRAMES, NOISES
from nnprobe.imagenet_c.sweep import corruption_sweep
from nnprobe.options import video
from test_perturb import reference_metrics, ten_class_model

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
# the generation code's command per sequence (make_imagenet_p.py), the noises' and the others'
COMMAND = {True: ["-vcodec", "libx264", "-tune", "grain", "-preset", "veryslow"],
           False: ["-vcodec", "libx264", "-crf", "20", "-preset", "veryslow"]}


def published_video(frames: list[np.ndarray], noise: bool, folder) -> bytes:
    """The sequence (HWC uint8 RGB) as make_imagenet_p.py writes it: PNGs, then its ffmpeg command line."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"img{i}.png")
    out = folder / "video.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-r", "1", "-framerate", "1", "-i",
                    str(folder / "img%01d.png"), *COMMAND[noise], "-y", str(out)], check=True, timeout=120)
    return out.read_bytes()


def our_video(frames: list[np.ndarray], name: str, folder) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    x264.encode(np.stack(frames), name, str(folder / "ours.mp4"))
    return (folder / "ours.mp4").read_bytes()


def opencv_frames(path) -> np.ndarray:
    """ImageNet-P/utils/video_loader.py's reading: cv2.VideoCapture, each frame BGR to RGB."""
    import cv2

    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def x264_options(data: bytes) -> dict[str, str]:
    """The encoder's settings as x264 writes them into the stream, less its thread counts."""
    text = re.search(rb"options: ([^\x00]*)", data).group(1).decode()
    return {k: v for k, v in (item.split("=", 1) for item in text.split()) if "threads" not in k}


def ten_class_classifier():
    from nnprobe.models.classifier import Classifier

    return Classifier(ten_class_model(), tinymodels.info("ten", classes=10), [f"c{i}" for i in range(10)]).eval()


def sequences(x: torch.Tensor, name: str) -> list[list[np.ndarray]]:
    """Each image's frames of `name` as nnprobe makes them (uint8 HWC RGB), before any encoding."""
    gens = [torch.Generator().manual_seed(7 + k) for k in range(len(x))]
    frames = [torch.round(f * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy() for f in perturb.frames(x, name, gens)]
    return [[frame[i] for frame in frames] for i in range(len(x))]


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    return torch.from_numpy(np.stack(photos(32)[:2])).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("name", ["gaussian_noise", "zoom_blur"])
def test_decoded_frames_equal_the_published_command_line_read_by_opencv(name, crops, tmp_path):
    made = sequences(crops, name)
    gens = [torch.Generator().manual_seed(7 + k) for k in range(len(crops))]
    ours = [torch.round(f * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for f in x264.roundtrip_frames(perturb.frames(crops, name, gens), name)]
    assert len(ours) == FRAMES
    for i, frames in enumerate(made):
        data = published_video(frames, name in NOISES, tmp_path / f"{name}{i}")
        reference = opencv_frames(tmp_path / f"{name}{i}" / "video.mp4")
        decoded = np.stack([frame[i] for frame in ours])
        assert decoded.shape == reference.shape == (FRAMES, 32, 32, 3)
        np.testing.assert_array_equal(decoded, reference)
        assert x264_options(our_video(frames, name, tmp_path / "ours")) == x264_options(data)  # every setting
        moved = np.abs(decoded.astype(int) - np.stack(frames).astype(int))
        assert 0.5 < moved.mean() < 12 and moved.max() >= 5  # lossy, by a grey level or a few


def test_the_noises_are_encoded_with_the_grain_tuning_and_the_rest_at_crf_20(tmp_path):
    still = [np.full((16, 16, 3), 100, np.uint8)] * 3
    noise = x264_options(our_video(still, "shot_noise", tmp_path / "noise"))
    other = x264_options(our_video(still, "brightness", tmp_path / "other"))
    assert (noise["crf"], noise["psy_rd"], noise["deblock"]) == ("23.0", "1.00:0.25", "1:-2:-2")
    assert (other["crf"], other["psy_rd"], other["deblock"]) == ("20.0", "1.00:0.00", "1:0:0")
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "other/ours.mp4")],
                           capture_output=True).stderr
    assert b"h264 (High 4:4:4 Predictive)" in probe and b"yuv444p" in probe and b"1 fps" in probe


def test_the_round_trip_gives_the_same_frames_every_time():
    """x264 at preset veryslow inside one long-lived process (FFmpeg's libraries through PyAV) gave other
    frames from one call to the next at 48 px and more; a fresh ffmpeg per video gives the same ones."""
    crops = torch.from_numpy(np.stack(photos(64)[:2])).permute(0, 3, 1, 2).float() / 255

    def once():
        gens = [torch.Generator().manual_seed(3 + k) for k in range(len(crops))]
        return torch.stack(list(x264.roundtrip_frames(perturb.frames(crops, "speckle_noise", gens), "speckle_noise")))

    first = once()
    assert all(torch.equal(first, once()) for _ in range(3))


def test_the_sweep_counts_flips_on_the_published_videos(six_images, tmp_path):
    """A plain loop over make_imagenet_p.py's videos (ffmpeg's command line, OpenCV's reading) of nnprobe's
    frames, scored by test.py's formulas, equals the sweep's counts, at any batch size."""
    pixels, labels = six_images
    model = ten_class_classifier()
    names = ("speckle_noise", "brightness")
    options = dict(corruptions="contrast", severities=1, device="cpu", seed=4, perturbations=",".join(names),
                   x264_roundtrip=True)
    whole = corruption_sweep(model, [(pixels, labels)], **options)
    split = corruption_sweep(model, [(pixels[:4], labels[:4]), (pixels[4:], labels[4:], torch.arange(4, 6))],
                             **options)
    plain = corruption_sweep(model, [(pixels, labels)], **dict(options, x264_roundtrip=False))
    assert whole.perturbations == split.perturbations and whole.settings.x264_roundtrip == x264.describe()
    assert plain.settings.x264_roundtrip is None
    x = pixels.float() / 255
    for point, name in zip(whole.perturbations, names):
        gens = [torch.Generator().manual_seed(perturb.perturbation_seed(4, p, name)) for p in range(6)]
        frames = [torch.round(f * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                  for f in perturb.frames(x, name, gens)]
        videos = []
        for i in range(6):
            published_video([frame[i] for frame in frames], name in NOISES, tmp_path / f"{name}{i}")
            decoded = torch.from_numpy(opencv_frames(tmp_path / f"{name}{i}" / "video.mp4")).permute(0, 3, 1, 2)
            with torch.no_grad():
                videos.append(model(decoded.float() / 255).numpy())
        fp, t5d = reference_metrics(np.stack(videos), name in NOISES)
        assert point.flip_probability == pytest.approx(fp, abs=1e-12)
        assert point.top5_distance == pytest.approx(t5d, abs=1e-12)
    assert whole.perturbations != plain.perturbations  # the encoder's loss moves the counts on this model


def test_the_option_is_refused_without_sequences_or_ffmpeg(tmp_path, invoke, monkeypatch):
    tinymodels.save_class_folders(tmp_path / "data", 2, seed=3)
    spec = f"{tinymodels.__file__}:tiny_classifier"
    alone = invoke("corruptions", str(tmp_path / "data"), "--model", spec, "--x264-roundtrip")
    assert alone.returncode == 2 and "give --perturbations too" in alone.stderr and "Traceback" not in alone.stderr
    assert alone.stderr.strip().count("\n") == 0
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` fails as where not installed
    missing = invoke("corruptions", str(tmp_path / "data"), "--model", spec, "--perturbations", "brightness",
                     "--x264-roundtrip", "-o", str(tmp_path / "out.json"), "--format", "json")
    assert missing.returncode == 2 and "pip install 'nnprobe[video]'" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "out.json").exists()
    with pytest.raises(UsageError, match=r"nnprobe\[video\]"):
        corruption_sweep(ten_class_classifier(), [(torch.zeros(1, 3, 16, 16), torch.zeros(1, dtype=torch.long))],
                         device="cpu", corruptions="contrast", perturbations="brightness", x264_roundtrip=True)


def test_an_ffmpeg_without_libx264_is_one_sentence(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V....D libopenh264  OpenH264 H.264'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    with pytest.raises(UsageError, match=f"libx264 encoder, which {fake} lacks"):
        video.check_request(("brightness",))


def test_the_setting_is_in_every_report_and_a_baseline_must_match(six_images, tmp_path):
    from nnprobe.imagenet_c.relative import with_perturbation_baseline
    from nnprobe.report import render

    pixels, labels = six_images
    options = dict(corruptions="contrast", severities=1, device="cpu", perturbations="brightness")
    encoded = corruption_sweep(ten_class_classifier(), [(pixels, labels)], x264_roundtrip=True, **options)
    plain = corruption_sweep(ten_class_classifier(), [(pixels, labels)], **options)
    assert json.loads(render(encoded, "json"))["settings"]["x264_roundtrip"] == x264.describe()
    for fmt in ("table", "markdown", "html"):
        assert "x264-encoded and decoded as the published videos (libx264 core" in render(encoded, fmt), fmt
        assert "x264" not in render(plain, fmt), fmt
    with pytest.raises(UsageError, match="same --x264-roundtrip"):
        with_perturbation_baseline(encoded, plain)
    assert with_perturbation_baseline(encoded, encoded).mfr_vs_baseline == pytest.approx(1.0)


def test_a_baseline_scored_the_other_way_is_refused_before_the_sweep(tmp_path, monkeypatch):
    """A --perturbation-baseline in memory under --x264-roundtrip, or encoded by another x264 build, is one
    sentence before any frame is encoded (the round trip is the sweep's dearest part)."""
    import nnprobe
    from nnprobe.imagenet_c import sweep

    tinymodels.save_class_folders(tmp_path / "data", 2, seed=5)
    options = dict(data=str(tmp_path / "data"), corruptions="contrast", severity=1, device="cpu", workers=0,
                   perturbations="brightness")
    plain = nnprobe.corruptions(tinymodels.tiny_classifier(), **options).to_dict()
    encoded = nnprobe.corruptions(tinymodels.tiny_classifier(), **options, x264_roundtrip=True).to_dict()

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep ran before the baseline was checked")

    monkeypatch.setattr(sweep, "corruption_sweep", no_sweep)
    other_build = dict(encoded, settings=dict(encoded["settings"], x264_roundtrip="libx264 core 155; ..."))
    for baseline, x264_roundtrip, message in ((plain, True, r"scored other frames \(in memory; this run: libx264"),
                                              (encoded, False, r"\(libx264 core .*; this run: in memory\)"),
                                              (other_build, True, "core 155")):
        with pytest.raises(UsageError, match=message):
            nnprobe.corruptions(tinymodels.linear_classifier(), **options, perturbation_baseline=baseline,
                                x264_roundtrip=x264_roundtrip)
    with pytest.raises(AssertionError, match="the sweep ran"):  # the same frames get to the sweep
        nnprobe.corruptions(tinymodels.linear_classifier(), **options, perturbation_baseline=encoded,
                            x264_roundtrip=True)
