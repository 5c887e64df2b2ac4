"""`fool`'s files: the photos read through the one decoder (a bad file is one sentence before any work),
the output names (one per photo and budget, never an input, never inside a labelled data set), and each
adversarial PNG written and read back, so every verdict is on the file the user gets."""
from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nnprobe.attacks.budget import format_eps
from nnprobe.data.decode import MAX_PIXELS, UndecodableImage, check_header, decode_rgb
from nnprobe.errors import InputError, UsageError
from nnprobe.io import atomic_write_bytes, png_bytes, refuse_out_among_inputs


def _image_error(path: str, exc) -> InputError:
    """One InputError sentence for every way an image file can be unusable (`UndecodableImage.kind`)."""
    kind, reason = exc.kind, str(exc)
    if kind == "missing":
        return InputError(f"Image {path!r} does not exist.")
    if kind == "folder":
        return InputError(f"{path!r} is a folder, not an image; give image files (e.g. {path}/*.jpg).")
    if kind == "special":
        return InputError(f"Image {path!r} is {reason.split(',')[0]}, not a regular file; give an image file.")
    if kind == "bomb":
        return InputError(f"Image {path!r} is too large to decode safely ({reason}; the limit is "
                          f"{MAX_PIXELS // 2} pixels).")
    return InputError(f"Image {path!r} cannot be decoded ({reason}); is it an image file?")


def read_rgb(path: str):
    """Decode an image file to 8-bit RGB through the one decoder every command uses (data/decode.py:
    16-bit scaled, bombs refused from the header, regular files only), or one-sentence InputError."""
    try:
        return decode_rgb(path)[0]
    except UndecodableImage as exc:
        raise _image_error(path, exc) from None


def check_readable(path: str) -> None:
    """Header check of every input before any work, so a bad file fails fast and nothing is written."""
    try:
        check_header(path)
    except UndecodableImage as exc:
        raise _image_error(path, exc) from None


def _stems(images: Sequence[str]) -> list[str]:
    """A distinct output stem per input, deterministic: the file's stem where no other input has it (any
    case: some file systems ignore case); otherwise `<parent folder>-<stem>`; where that still collides,
    a counter (`-2`, `-3`, ...) after the first (an input's own stem comes first), skipping names another
    input already has."""
    stems = [Path(p).stem for p in images]
    counts = Counter(s.casefold() for s in stems)
    wanted = []
    for path, stem in zip(images, stems):
        parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
        wanted.append(f"{parent}-{stem}" if counts[stem.casefold()] > 1 and parent else stem)
    counts = Counter(w.casefold() for w in wanted)
    taken = {w.casefold() for w in wanted if counts[w.casefold()] == 1}
    final = list(wanted)
    # a file's own stem before a folder-prefixed one, then input order: `a-cat.png` keeps `a-cat`
    for i in sorted(range(len(wanted)), key=lambda i: (wanted[i] != stems[i], i)):
        name = wanted[i]
        if counts[name.casefold()] > 1:
            base, number = name, 1
            while name.casefold() in taken:
                number += 1
                name = f"{base}-{number}"
            taken.add(name.casefold())
            final[i] = name
    return final


def output_names(images: Sequence[str], out_dir: str, eps: Sequence[float]) -> list[list[tuple[str, str]]]:
    """(adversarial PNG, panel PNG) per image and eps: unique among all outputs (see `_stems`), and never
    an input, by real path or by inode (a link in --out to an input is refused, not written through)."""
    inputs = {os.path.realpath(p): p for p in images}
    identities = {}
    for p in images:
        with contextlib.suppress(OSError):
            info = os.stat(p)
            identities[(info.st_dev, info.st_ino)] = p
    names, seen = [], set()
    for stem in _stems(images):
        row = []
        for e in eps:
            tag = "" if len(eps) == 1 else ".eps" + format_eps(e).replace("/", "-")
            adv = os.path.join(out_dir, f"{stem}{tag}.adv.png")
            pan = os.path.join(out_dir, f"{stem}{tag}.panel.png")
            for out in (adv, pan):
                assert out.casefold() not in seen, out  # _stems makes every stem distinct
                seen.add(out.casefold())
                hit = inputs.get(os.path.realpath(out))
                if hit is None:
                    with contextlib.suppress(OSError):
                        info = os.stat(out)
                        hit = identities.get((info.st_dev, info.st_ino))
                if hit is not None:
                    raise UsageError(f"Writing {out} would overwrite the input {hit}; choose another --out folder.")
            row.append((adv, pan))
        names.append(row)
    return names


def checked_outputs(paths: list[str], out: str, budgets) -> list[list[tuple[str, str]]]:
    """Refuse a bad --out and any unreadable photo before any work, so a failed run writes nothing."""
    refuse_out_among_inputs("--out", out, paths)
    for path in paths:
        check_readable(path)
    return output_names(paths, out, budgets)


def to_uint8_hwc(pixels: torch.Tensor) -> np.ndarray:
    return pixels.detach().cpu().squeeze(0).permute(1, 2, 0).numpy()


def u8_nchw(photo) -> torch.Tensor:
    """A decoded photo as a uint8 batch of one, the form quantizing and the read-back check compare."""
    return torch.from_numpy(np.asarray(photo, dtype=np.uint8).copy()).permute(2, 0, 1)[None]


def write_and_reread(adv_path: str, adv_u8: torch.Tensor):
    """Write the lossless PNG and read it back, so every verdict is on the file the user gets and a
    short write (a full disk) is an error rather than a wrong verdict."""
    from PIL import Image

    atomic_write_bytes(adv_path, png_bytes(Image.fromarray(to_uint8_hwc(adv_u8), "RGB")))
    reread = read_rgb(adv_path)  # judge exactly what was written
    reread_u8 = u8_nchw(reread)
    if not torch.equal(reread_u8, adv_u8):
        raise InputError(f"{adv_path} did not read back as written; is the disk full?")
    return reread, reread_u8
