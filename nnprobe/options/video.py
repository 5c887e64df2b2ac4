"""The ffmpeg binary `--x264-roundtrip` runs (imageio-ffmpeg's static build, from the `video` extra), and the
option's rule, torch-free so the options can say it before any work (nnprobe/imagenet_c/x264.py encodes)."""
from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Sequence

from nnprobe.errors import UsageError

EXTRA = "video"


def require_ffmpeg() -> str:
    """The ffmpeg binary (imageio-ffmpeg's, or the one IMAGEIO_FFMPEG_EXE names) with libx264, or one sentence
    naming the extra that brings it."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UsageError(f"--x264-roundtrip encodes the sequences with imageio-ffmpeg's ffmpeg, which is not "
                         f"installed: pip install 'nnprobe[{EXTRA}]'.") from None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise UsageError(f"--x264-roundtrip found no ffmpeg binary: reinstall 'nnprobe[{EXTRA}]' (imageio-ffmpeg "
                         f"ships one for this platform) or set IMAGEIO_FFMPEG_EXE.") from None
    if not _has_libx264(exe):
        raise UsageError(f"--x264-roundtrip needs ffmpeg's libx264 encoder, which {exe} lacks: use imageio-ffmpeg's "
                         f"own binary (unset IMAGEIO_FFMPEG_EXE) or an ffmpeg built with libx264.")
    return exe


@functools.cache
def _has_libx264(exe: str) -> bool:
    try:
        listed = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(rb"\slibx264\s", listed) is not None


def check_request(perturbations: Sequence[str] | None) -> None:
    """The option's one rule, said before any work: sequences to encode, and an encoder to encode them."""
    if not perturbations:
        raise UsageError("--x264-roundtrip encodes ImageNet-P's sequences as the published videos: give "
                         "--perturbations too.")
    require_ffmpeg()
