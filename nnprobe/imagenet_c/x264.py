"""`--x264-roundtrip`: ImageNet-P's sequences encoded and decoded as the published videos were.

The generation code (hendrycks/robustness, ImageNet-P/create_p/make_imagenet_p.py) saves each sequence's
frames as RGB PNGs and encodes them with the FFmpeg 4.0.2 static build shipped beside it (libx264 core 155):

    ffmpeg -r 1 -framerate 1 -i img%01d.png -vcodec libx264 -tune grain -preset veryslow -y OUT.mp4   (noises)
    ffmpeg -r 1 -framerate 1 -i img%01d.png -vcodec libx264 -crf 20 -preset veryslow -y OUT.mp4       (the rest)

so the noises are encoded at x264's default CRF 23 with the film-grain tuning, the others at CRF 20. No pixel
format is given: for RGB input ffmpeg picks yuv444p (High 4:4:4 Predictive), converting with swscale's
BT.601 limited-range matrix; ImageNet-P/test.py reads the videos back with OpenCV (BGR, turned to RGB).
Here each image's sequence goes through that command line, the raw frames piped in, x264 on one thread,
with the static ffmpeg binary of imageio-ffmpeg (`pip install 'nnprobe[video]'`), and is decoded to RGB by a
second ffmpeg; the decoded frames are what the model sees. A fresh process per video, not FFmpeg's libraries
in this one (PyAV): x264 at preset veryslow gave other frames from one call to the next inside one long-lived
process (5 encodes of the same 224 px noisy sequence, 4 different decodes; PyAV 18.1), the command line
the same frames every time. tests/corruptions/test_x264.py holds the frames equal to the generation
code's own command (PNG frames) read back by OpenCV as test.py reads them. The encoder is lossy: the frames
move by a few grey levels, which is why the published videos' flip rates differ from in-memory sequences'.
Encoding runs on the CPU whatever the device, the batch's videos in parallel processes.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from nnprobe.options.video import require_ffmpeg

if TYPE_CHECKING:
    import torch

NOISE_OPTIONS = ("-tune", "grain", "-preset", "veryslow")  # x264's default CRF 23
OTHER_OPTIONS = ("-crf", "20", "-preset", "veryslow")
PIXEL_FORMAT = "yuv444p"  # what ffmpeg chooses for RGB frames and libx264
FRAME_RATE = "1"
CONTAINER = "mp4"
TIMEOUT = 600  # seconds for one sequence's encoding or decoding


def encoder_options(name: str) -> tuple[str, ...]:
    from nnprobe.options.corruptions import NOISES

    return NOISE_OPTIONS if name in NOISES else OTHER_OPTIONS


def _run(command: list[str], data: bytes | None, what: str) -> bytes:
    done = subprocess.run(command, input=data, capture_output=True, timeout=TIMEOUT)
    if done.returncode:
        raise RuntimeError(f"ffmpeg failed to {what}: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return done.stdout


def encode(frames: np.ndarray, name: str, path: str) -> None:
    """One sequence (T x H x W x 3 uint8 RGB) written to `path` as the generation code's command writes `name`."""
    exe = require_ffmpeg()
    _run([exe, "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size",
          f"{frames.shape[2]}x{frames.shape[1]}", "-r", FRAME_RATE, "-framerate", FRAME_RATE, "-i", "pipe:0",
          "-vcodec", "libx264", *encoder_options(name), "-threads", "1", "-pix_fmt", PIXEL_FORMAT, "-f", CONTAINER,
          "-y", path], np.ascontiguousarray(frames).tobytes(), "encode a sequence")


def decode(path: str, height: int, width: int) -> np.ndarray:
    """A video's frames as T x H x W x 3 uint8 RGB."""
    raw = _run([require_ffmpeg(), "-nostdin", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt",
                "rgb24", "pipe:1"], None, "decode a sequence")
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def roundtrip(frames: np.ndarray, name: str) -> np.ndarray:
    """One sequence (T x H x W x 3 uint8) encoded as the published video of `name` and decoded."""
    with tempfile.TemporaryDirectory(prefix="nnprobe-x264-") as folder:
        path = os.path.join(folder, f"sequence.{CONTAINER}")
        encode(frames, name, path)
        decoded = decode(path, *frames.shape[1:3])
    if decoded.shape != frames.shape:
        raise RuntimeError(f"x264 round trip of {name}: {len(frames)} frames encoded, {len(decoded)} decoded")
    return decoded


def roundtrip_frames(frames: Iterator["torch.Tensor"], name: str) -> Iterator["torch.Tensor"]:
    """The batch's frames of perturbation `name` (float B x 3 x H x W on the 8-bit grid, one frame of every
    image at a time), each image's sequence encoded as one video and decoded (the batch's videos in parallel
    processes); yields the decoded frames the same way, on the frames' device."""
    import torch

    require_ffmpeg()
    like, kept = None, []
    for frame in frames:
        like = frame
        kept.append(torch.round(frame.detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    if like is None:
        return
    videos = np.stack(kept, axis=1)  # B x T x H x W x 3
    del kept
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, min(len(videos), cores))) as pool:  # the CPUs this process may use
        decoded = np.stack(list(pool.map(lambda video: roundtrip(video, name), videos)), axis=1)
    for pixels in decoded:
        yield torch.from_numpy(pixels).permute(0, 3, 1, 2).to(like.device).to(like.dtype).div_(255)


@functools.cache
def encoder_build() -> str:
    """The x264 build the binary links, as its stream header names it ('core 165'), and ffmpeg's version."""
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory(prefix="nnprobe-x264-") as folder:
        path = os.path.join(folder, f"probe.{CONTAINER}")
        encode(np.zeros((1, 16, 16, 3), np.uint8), "brightness", path)
        with open(path, "rb") as file:
            found = re.search(rb"x264 - core (\d+)", file.read())
    core = f"core {found.group(1).decode()}" if found else "core unknown"
    return f"{core}, ffmpeg {imageio_ffmpeg.get_ffmpeg_version()}"


def describe() -> str:
    """The settings recorded in a result: the encoder, its build and the reference's options."""
    return (f"libx264 {encoder_build()}; preset veryslow, crf 20 (noises: tune grain, crf 23), {PIXEL_FORMAT}, "
            f"{FRAME_RATE} fps, {CONTAINER}")
